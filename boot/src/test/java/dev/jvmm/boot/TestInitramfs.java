package dev.jvmm.boot;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveOutputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;

/**
 * A minimal initramfs for the Linux boot tests: Debian's static busybox (package busybox-static) as /bin/busybox
 * and a shell script as /init, in the kernel's newc cpio format (written with commons-compress).
 */
final class TestInitramfs {
    static final Path BUSYBOX = Path.of("/bin/busybox");

    private TestInitramfs() {}

    /** Writes the initramfs to file; the script runs as /init under busybox's sh. */
    static Path write(Path file, String initScript) throws IOException {
        return write(file, initScript, Map.of());
    }

    /** The same, with more files at the root (a kernel module for insmod, say), named by their file names. */
    static Path write(Path file, String initScript, Map<String, Path> rootFiles) throws IOException {
        if (!Files.isRegularFile(BUSYBOX))
            throw new IOException(BUSYBOX + " is missing: install Debian's busybox-static (.ci/run does)");
        try (OutputStream out = Files.newOutputStream(file);
                CpioArchiveOutputStream cpio = new CpioArchiveOutputStream(out, CpioConstants.FORMAT_NEW)) {
            for (String dir : new String[] {"bin", "dev", "proc", "sys"}) {
                CpioArchiveEntry e = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, dir);
                e.setMode(CpioConstants.C_ISDIR | 0755);
                e.setNumberOfLinks(2);
                cpio.putArchiveEntry(e);
                cpio.closeArchiveEntry();
            }
            // The kernel opens /dev/console for init before any devtmpfs exists.
            CpioArchiveEntry console = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, "dev/console");
            console.setMode(CpioConstants.C_ISCHR | 0600);
            console.setRemoteDeviceMaj(5);
            console.setRemoteDeviceMin(1);
            cpio.putArchiveEntry(console);
            cpio.closeArchiveEntry();
            add(cpio, "bin/busybox", Files.readAllBytes(BUSYBOX));
            add(cpio, "init", ("#!/bin/busybox sh\n" + initScript).getBytes(StandardCharsets.UTF_8));
            for (Map.Entry<String, Path> f : rootFiles.entrySet())
                add(cpio, f.getKey(), Files.readAllBytes(f.getValue()));
        }
        return file;
    }

    private static void add(CpioArchiveOutputStream cpio, String name, byte[] data) throws IOException {
        CpioArchiveEntry e = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, name);
        e.setMode(CpioConstants.C_ISREG | 0755);
        e.setSize(data.length);
        cpio.putArchiveEntry(e);
        cpio.write(data);
        cpio.closeArchiveEntry();
    }
}
