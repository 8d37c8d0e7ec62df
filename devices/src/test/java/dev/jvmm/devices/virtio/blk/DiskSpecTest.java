package dev.jvmm.devices.virtio.blk;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class DiskSpecTest {
    @Test
    void parsesEveryOption() {
        DiskSpec d = DiskSpec.parse("/img/a.raw,readonly,serial=disk-1,transport=pci,queues=4");
        assertEquals(Path.of("/img/a.raw"), d.path());
        assertTrue(d.readOnly());
        assertEquals("disk-1", d.serial());
        assertEquals(DiskSpec.Transport.PCI, d.transport());
        assertEquals(4, d.queues());
        assertEquals(4, d.options().queues());
    }

    @Test
    void defaultsToAWritableMmioDisk() {
        DiskSpec d = DiskSpec.parse("disk.raw");
        assertFalse(d.readOnly());
        assertEquals("", d.serial());
        assertEquals(DiskSpec.Transport.MMIO, d.transport());
        assertEquals(1, d.queues());
    }

    @Test
    void badValuesAreOneClearLine() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse(",readonly")).getMessage().contains("path is missing"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse("a,transport=usb")).getMessage().contains("mmio or pci"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse("a,cache=none")).getMessage().contains("unknown option 'cache=none'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse("a,serial=" + "x".repeat(21))).getMessage().contains("at most 20"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse("a,queues=0")).getMessage().contains("1 to 64"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse("a,queues=x")).getMessage().contains("a number"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiskSpec.parse("a,serial")).getMessage().contains("needs a value"));
    }
}
