package dev.jvmm.boot;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Kernels for the boot tests: test guests built from src/test/guest, and Debian's stock kernel from a cache. */
public final class TestKernels {
    private TestKernels() {}

    /** Copies a built test guest (e.g. "smp.elf") out of the classpath into dir. */
    public static Path guest(String name, Path dir) throws IOException {
        try (InputStream in = TestKernels.class.getResourceAsStream("/guests/" + name)) {
            if (in == null) throw new IllegalStateException("test guest " + name + " was not built");
            Path p = dir.resolve(name);
            Files.write(p, in.readAllBytes());
            return p;
        }
    }

    /**
     * Debian's linux-image-amd64 bzImage, fetched by scripts/debian-kernel.sh with apt-get download into a
     * cache when absent. Throws when it cannot be had: the caller decides whether that skips or fails.
     */
    public static Path debianKernel() throws IOException, InterruptedException {
        return scriptOutput("debian-kernel.sh", Duration.ofMinutes(10));
    }

    /** One module (NAME.ko) of that kernel, for a test's initramfs; fetched and cached the same way. */
    public static Path debianModule(String name) throws IOException, InterruptedException {
        return scriptOutput("debian-kernel.sh", Duration.ofMinutes(10), "--module", name);
    }

    /** Runs one of the project's scripts/ that make and cache a fixture, and returns the path it prints. */
    public static Path scriptOutput(String name, Duration timeout, String... args)
            throws IOException, InterruptedException {
        Path script = Path.of(System.getProperty("user.dir"))
                .getParent()
                .resolve("scripts")
                .resolve(name);
        List<String> command = new ArrayList<>(List.of("bash", script.toString()));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) || p.exitValue() != 0 || out.isEmpty())
            throw new IOException("could not make the fixture with " + String.join(" ", command));
        return Path.of(out);
    }
}
