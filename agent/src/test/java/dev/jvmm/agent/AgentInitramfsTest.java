package dev.jvmm.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The initramfs read back with commons-compress's cpio reader. */
class AgentInitramfsTest {
    @Test
    void holdsTheAgentAsInitTheModulesInOrderAndTheNetworkSetup(@TempDir Path dir) throws Exception {
        Path a = Files.write(dir.resolve("a.ko"), new byte[] {1, 2, 3});
        Path b = Files.write(dir.resolve("b.ko"), new byte[] {4});
        Path extra = Files.writeString(dir.resolve("hello.txt"), "hi");
        Path file = AgentInitramfs.builder()
                .modules(List.of(new KernelModule("b", List.of(), b), new KernelModule("a", List.of("b"), a)))
                .network(true)
                .file("/opt/x/hello.txt", extra, 0600)
                .write(dir.resolve("initrd.cpio"));
        Map<String, CpioArchiveEntry> entries = new HashMap<>();
        Map<String, byte[]> data = new HashMap<>();
        try (InputStream in = Files.newInputStream(file);
                CpioArchiveInputStream cpio = new CpioArchiveInputStream(in)) {
            CpioArchiveEntry e;
            while ((e = cpio.getNextEntry()) != null) {
                entries.put(e.getName(), e);
                data.put(e.getName(), cpio.readAllBytes());
            }
        }
        assertArrayEquals(AgentBinary.bytes(), data.get("init"));
        assertEquals(0100755, entries.get("init").getMode());
        assertEquals("/jvmm/lib/b.ko\n/jvmm/lib/a.ko\n", new String(data.get("jvmm/modules"), StandardCharsets.UTF_8));
        assertArrayEquals(new byte[] {1, 2, 3}, data.get("jvmm/lib/a.ko"));
        assertEquals(AgentInitramfs.GUEST_NET + "\n", new String(data.get("jvmm/net"), StandardCharsets.US_ASCII));
        assertEquals("hi", new String(data.get("opt/x/hello.txt"), StandardCharsets.UTF_8));
        assertEquals(0100600, entries.get("opt/x/hello.txt").getMode());
        assertTrue(entries.get("opt/x").isDirectory(), "parent folders come with a file");
        assertTrue(entries.get("dev/console").isCharacterDevice());
    }

    @Test
    void aStaticBusyboxComesWithItsAppletLinks(@TempDir Path dir) throws Exception {
        Path busybox = AgentInitramfs.hostBusybox().orElse(null);
        org.junit.jupiter.api.Assumptions.assumeTrue(busybox != null, "no static busybox on this host");
        Path file = AgentInitramfs.builder().busybox(busybox).write(dir.resolve("initrd.cpio"));
        Map<String, String> links = new HashMap<>();
        try (InputStream in = Files.newInputStream(file);
                CpioArchiveInputStream cpio = new CpioArchiveInputStream(in)) {
            CpioArchiveEntry e;
            while ((e = cpio.getNextEntry()) != null)
                if (e.isSymbolicLink()) links.put(e.getName(), new String(cpio.readAllBytes(), StandardCharsets.UTF_8));
        }
        assertEquals("/bin/busybox", links.get("bin/sh"));
        assertEquals("/bin/busybox", links.get("bin/uname"));
    }
}
