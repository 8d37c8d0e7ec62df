package dev.jvmm.agent;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.ar.ArArchiveEntry;
import org.apache.commons.compress.archivers.ar.ArArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.compressors.xz.XZCompressorInputStream;

/** Debian packages fetched with {@code apt-get download} into jvmm's cache, and files taken out of them. */
final class AptPackages {
    private AptPackages() {}

    /** {@code $JVMM_CACHE}, else {@code $XDG_CACHE_HOME/jvmm}, else {@code ~/.cache/jvmm} (as the scripts use). */
    static Path cacheDir() {
        String jvmm = System.getenv("JVMM_CACHE");
        if (jvmm != null && !jvmm.isEmpty()) return Path.of(jvmm);
        String xdg = System.getenv("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isEmpty()) return Path.of(xdg, "jvmm");
        return Path.of(System.getProperty("user.home"), ".cache", "jvmm");
    }

    /** Downloads a package's .deb into {@code debDir} and returns it. */
    static Path download(String pkg, Path debDir) throws IOException, InterruptedException {
        Files.createDirectories(debDir);
        Path tmp = Files.createTempDirectory(debDir, ".download");
        try {
            tmp.toFile().setWritable(true, false); // apt-get download runs as the _apt user when started as root
            run(List.of("apt-get", "download", "-q", pkg), tmp);
            try (Stream<Path> s = Files.list(tmp)) {
                Path got = s.filter(p -> p.toString().endsWith(".deb"))
                        .findFirst()
                        .orElseThrow(() -> new IOException("apt-get download " + pkg + " left no .deb"));
                return Files.move(got, debDir.resolve(got.getFileName()), StandardCopyOption.ATOMIC_MOVE);
            }
        } finally {
            try (Stream<Path> s = Files.walk(tmp)) {
                for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
            }
        }
    }

    /** One file of a package ({@code bin/busybox}), written to {@code target} through a temporary name. */
    static void extract(Path deb, String path, Path target) throws IOException {
        try (InputStream file = new BufferedInputStream(Files.newInputStream(deb));
                ArArchiveInputStream ar = new ArArchiveInputStream(file)) {
            ArArchiveEntry e;
            while ((e = ar.getNextEntry()) != null) {
                if (!e.getName().equals("data.tar.xz")) continue;
                try (TarArchiveInputStream tar =
                        new TarArchiveInputStream(new XZCompressorInputStream(new BufferedInputStream(ar, 1 << 16)))) {
                    TarArchiveEntry t;
                    while ((t = tar.getNextEntry()) != null) {
                        String name = t.getName().startsWith("./") ? t.getName().substring(2) : t.getName();
                        if (!t.isFile() || !name.equals(path)) continue;
                        Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName(), ".tmp");
                        try {
                            Files.copy(tar, tmp, StandardCopyOption.REPLACE_EXISTING);
                            Files.move(
                                    tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                        } finally {
                            Files.deleteIfExists(tmp);
                        }
                        return;
                    }
                }
            }
        }
        throw new IOException(deb + " has no " + path + " in a data.tar.xz");
    }

    static String run(List<String> command, Path dir) throws IOException, InterruptedException {
        Files.createDirectories(dir);
        Process p = new ProcessBuilder(command)
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0)
            throw new IOException(String.join(" ", command) + " failed: " + out.strip());
        return out;
    }
}
