package dev.jvmm.agent;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.stream.Stream;

/**
 * A static busybox for a micro-VM's userland: this host's (Debian's busybox-static installs /bin/busybox), else
 * the one in Debian's busybox-static package, fetched with {@code apt-get download} into jvmm's cache
 * ({@code busybox-static/} beside {@code debian-kernel/}).
 */
public final class DebianBusybox {
    private DebianBusybox() {}

    public static Path resolve() throws IOException, InterruptedException {
        var host = AgentInitramfs.hostBusybox();
        if (host.isPresent()) return host.get();
        Path dir = AptPackages.cacheDir().resolve("busybox-static");
        Path busybox = dir.resolve("busybox");
        if (Files.isRegularFile(busybox)) return busybox;
        Path debDir = dir.resolve("deb");
        Path deb = null;
        if (Files.isDirectory(debDir))
            try (Stream<Path> s = Files.list(debDir)) {
                deb = s.filter(p -> p.toString().endsWith(".deb")).findFirst().orElse(null);
            }
        if (deb == null) deb = AptPackages.download("busybox-static", debDir);
        AptPackages.extract(deb, "bin/busybox", busybox);
        Files.setPosixFilePermissions(busybox, PosixFilePermissions.fromString("rwxr-xr-x"));
        return busybox;
    }
}
