package dev.jvmm.microvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Micro-VMs of one configuration share one initramfs; a changed input makes a new one. */
class InitramfsCacheTest {
    @Test
    void oneInitramfsPerContent(@TempDir Path dir) throws Exception {
        Path extra = Files.writeString(dir.resolve("tool"), "v1");
        Path a = MicroVm.builder().noBusybox().file("/opt/tool", extra).initramfs(List.of());
        Path b = MicroVm.builder().noBusybox().file("/opt/tool", extra).initramfs(List.of());
        assertEquals(a, b);
        assertNotEquals(
                a,
                MicroVm.builder().noBusybox().network().file("/opt/tool", extra).initramfs(List.of()));
        Files.writeString(extra, "v2-longer");
        Files.setLastModifiedTime(
                extra, FileTime.fromMillis(Files.getLastModifiedTime(extra).toMillis() + 2000));
        Path c = MicroVm.builder().noBusybox().file("/opt/tool", extra).initramfs(List.of());
        assertNotEquals(a, c, "the file changed");
        assertEquals(true, Files.size(c) > 0);
    }
}
