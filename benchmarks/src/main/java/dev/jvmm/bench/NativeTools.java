package dev.jvmm.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Where the build put the native parts (target/native: bench.bin, bench.elf, refvmm) and where QEMU is.
 * Found next to this class's code source (target/classes or the module jar), or at -Djvmm.bench.native.
 */
public final class NativeTools {
    private final Path dir;

    private NativeTools(Path dir) {
        this.dir = dir;
    }

    public static NativeTools locate() {
        String configured = System.getProperty("jvmm.bench.native");
        Path dir;
        if (configured != null) {
            dir = Path.of(configured);
        } else {
            try {
                Path code = Path.of(NativeTools.class
                        .getProtectionDomain()
                        .getCodeSource()
                        .getLocation()
                        .toURI());
                dir = code.getParent().resolve("native");
            } catch (URISyntaxException e) {
                throw new IllegalStateException(e);
            }
        }
        if (!Files.isRegularFile(dir.resolve("bench.bin")) || !Files.isExecutable(dir.resolve("refvmm")))
            throw new IllegalStateException("the benchmark guest and refvmm are not built in " + dir
                    + ": build the benchmarks module (mvn -pl benchmarks -am package) or set -Djvmm.bench.native");
        return new NativeTools(dir);
    }

    public Path guestBinary() {
        return dir.resolve("bench.bin");
    }

    public Path guestElf() {
        return dir.resolve("bench.elf");
    }

    /** The snapshot benchmark's guest (snapbench.c, multiboot). */
    public Path snapshotGuest() {
        return dir.resolve("snapbench.elf");
    }

    /** The block benchmark's floor, a pread/pwrite loop (blkfloor.c). */
    public Path blkFloor() {
        return dir.resolve("blkfloor");
    }

    /** The lifecycle benchmark's floor (lifecycle.c). */
    public Path lifecycle() {
        return dir.resolve("lifecycle");
    }

    public Path refvmm() {
        return dir.resolve("refvmm");
    }

    public byte[] guestImage() {
        try {
            return Files.readAllBytes(guestBinary());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The staged distribution's launcher (cli/target/dist/jvmm-VERSION/bin/jvmm, next to this source tree's
     * benchmarks module, or -Djvmm.bench.dist=DIR), if the build staged one.
     */
    public Optional<Path> distributionLauncher() {
        String configured = System.getProperty("jvmm.bench.dist");
        Path dist = configured != null ? Path.of(configured) : null;
        if (dist == null) {
            Path staged = dir.toAbsolutePath()
                    .normalize()
                    .resolve("../../../cli/target/dist")
                    .normalize();
            try (var homes = Files.list(staged)) {
                dist = homes.filter(h -> h.getFileName().toString().startsWith("jvmm-"))
                        .findFirst()
                        .orElse(null);
            } catch (IOException e) {
                return Optional.empty();
            }
        }
        return Optional.ofNullable(dist).map(d -> d.resolve("bin/jvmm")).filter(Files::isExecutable);
    }

    /** qemu-system-x86_64 on PATH (or -Djvmm.bench.qemu), if installed. */
    public static Optional<Path> qemu() {
        String configured = System.getProperty("jvmm.bench.qemu");
        if (configured != null) return Optional.of(Path.of(configured)).filter(Files::isExecutable);
        return onPath("qemu-system-x86_64");
    }

    /** qemu-img on PATH, if installed (Debian's qemu-utils). */
    public static Optional<Path> qemuImg() {
        return onPath("qemu-img");
    }

    private static Optional<Path> onPath(String name) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String d : path.split(":")) {
            Path p = Path.of(d, name);
            if (Files.isExecutable(p)) return Optional.of(p);
        }
        return Optional.empty();
    }
}
