package dev.jvmm.devices.block;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.qcow2.Qcow2Creator;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two processes never write one image at once: jvmm takes QEMU's OFD byte-range locks (permission bytes 100+,
 * unshared-permission bytes 200+), so jvmm, qemu-img and qemu-io see each other's claims.
 */
class ImageLockTest {
    @TempDir
    Path dir;

    Path raw() throws IOException {
        return Files.write(dir.resolve("disk.raw"), new byte[1 << 20]);
    }

    Path qcow2() throws IOException {
        Path p = dir.resolve("disk.qcow2");
        Qcow2Creator.create(p, Qcow2Creator.Options.of(1 << 20));
        return p;
    }

    static DiskImage.Options rw() {
        return DiskImage.Options.DEFAULT;
    }

    static DiskImage.Options ro() {
        return DiskImage.Options.DEFAULT.withReadOnly(true);
    }

    static void requireQemu() {
        boolean present =
                Files.isExecutable(Path.of("/usr/bin/qemu-io")) && Files.isExecutable(Path.of("/usr/bin/qemu-img"));
        if (!present) {
            if ("true".equals(System.getenv("CI"))) Assertions.fail("qemu-io/qemu-img not installed");
            Assumptions.abort("qemu-io/qemu-img not installed (Debian package qemu-utils)");
        }
    }

    record Run(int exit, String out) {}

    static Run run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), String.join(" ", cmd));
        return new Run(p.exitValue(), out);
    }

    @Test
    void twoWritableOpensOfOneImageConflictEvenInOneProcess() throws Exception {
        for (Path p : List.of(raw(), qcow2())) {
            try (BlockBackend first = DiskImage.open(p, rw())) {
                IOException e = assertThrows(
                        IOException.class, () -> DiskImage.open(p, rw()).close(), p.toString());
                assertEquals(1, e.getMessage().lines().count(), e.getMessage());
                assertTrue(e.getMessage().contains("in use"), e.getMessage());
                assertThrows(
                        IOException.class,
                        () -> DiskImage.open(p, ro()).close(),
                        "a reader does not share writing, as QEMU's read-only disks do not");
            }
            DiskImage.open(p, rw()).close(); // released on close
        }
    }

    @Test
    void readersShareAnImage() throws Exception {
        for (Path p : List.of(raw(), qcow2())) {
            try (BlockBackend a = DiskImage.open(p, ro());
                    BlockBackend b = DiskImage.open(p, ro())) {
                assertThrows(IOException.class, () -> DiskImage.open(p, rw()).close(), "no writer while they read");
            }
        }
    }

    @Test
    void qemuSeesTheLockWhileJvmmHoldsAnImage() throws Exception {
        requireQemu();
        Path p = qcow2();
        try (BlockBackend b = DiskImage.open(p, rw())) {
            Run write = run("qemu-io", "-f", "qcow2", "-c", "write 0 512", p.toString());
            assertNotEquals(0, write.exit(), write.out());
            assertTrue(write.out().contains("Failed to get \"write\" lock"), write.out());
            Run info = run("qemu-img", "info", p.toString());
            assertNotEquals(0, info.exit(), info.out());
            assertTrue(info.out().contains("Failed to get shared \"write\" lock"), info.out());
            assertEquals(0, run("qemu-img", "info", "-U", p.toString()).exit(), "force-share still reads");
        }
        try (BlockBackend b = DiskImage.open(p, ro())) {
            Run write = run("qemu-io", "-f", "qcow2", "-c", "write 0 512", p.toString());
            assertTrue(
                    write.out().contains("Failed to get \"write\" lock"),
                    "jvmm's reader does not share writing: " + write.out());
            assertEquals(0, run("qemu-img", "info", p.toString()).exit(), "but shares reading");
        }
        Run write = run("qemu-io", "-f", "qcow2", "-c", "write 0 512", p.toString());
        assertEquals(0, write.exit(), write.out());
    }

    @Test
    void jvmmRefusesAnImageQemuHoldsForWriting() throws Exception {
        requireQemu();
        Path p = raw();
        Process qemu = new ProcessBuilder("qemu-io", "-f", "raw", p.toString())
                .redirectErrorStream(true)
                .start();
        try {
            qemu.getOutputStream().write("write 0 512\n".getBytes());
            qemu.getOutputStream().flush();
            BufferedReader r = new BufferedReader(new InputStreamReader(qemu.getInputStream()));
            String line;
            while ((line = r.readLine()) != null && !line.contains("wrote 512/512")) {}
            assertNotNull(line, "qemu-io wrote");
            IOException e = assertThrows(
                    IOException.class, () -> DiskImage.open(p, rw()).close());
            assertTrue(e.getMessage().contains("in use"), e.getMessage());
            assertThrows(IOException.class, () -> DiskImage.open(p, ro()).close());
        } finally {
            qemu.getOutputStream().write("quit\n".getBytes());
            qemu.getOutputStream().close();
            assertTrue(qemu.waitFor(30, TimeUnit.SECONDS));
        }
        DiskImage.open(p, rw()).close();
    }

    @Test
    void aSecondProcessCannotOpenAnImageOneHolds() throws Exception {
        Path p = qcow2();
        String java = ProcessHandle.current().info().command().orElse("java");
        Process child = new ProcessBuilder(
                        java, "-cp", System.getProperty("java.class.path"), LockHolder.class.getName(), p.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        try {
            BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream()));
            assertEquals("OPEN", r.readLine());
            IOException e = assertThrows(
                    IOException.class, () -> DiskImage.open(p, rw()).close());
            assertTrue(e.getMessage().contains("in use"), e.getMessage());
        } finally {
            child.getOutputStream().close();
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        }
        // And the other way round: this process holds it, the child is refused.
        try (BlockBackend b = DiskImage.open(p, rw())) {
            Process second = new ProcessBuilder(
                            java,
                            "-cp",
                            System.getProperty("java.class.path"),
                            LockHolder.class.getName(),
                            p.toString())
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
            second.getOutputStream().close();
            String out = new String(second.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(second.waitFor(30, TimeUnit.SECONDS));
            assertTrue(out.startsWith("FAILED") && out.contains("in use"), out);
        }
    }
}
