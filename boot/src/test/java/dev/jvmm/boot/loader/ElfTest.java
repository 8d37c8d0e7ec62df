package dev.jvmm.boot.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Header fields of a kernel file are user input: every hostile value is the loader's own error, one line. */
class ElfTest {
    @Test
    void theTinyVmlinuxParses() {
        Elf elf = Elf.parse(LinuxLoaderTest.tinyVmlinux(), "kernel");
        assertEquals(1, elf.loadSegments().size());
    }

    @Test
    void programHeadersWhoseEndOverflowsAreTruncated() {
        for (long phoff : new long[] {Long.MAX_VALUE - 8, Long.MAX_VALUE, 0x7fff_ffff_0000_0000L, 1L << 40}) {
            byte[] image = LinuxLoaderTest.tinyVmlinux();
            ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN).putLong(32, phoff);
            BootException e = assertThrows(BootException.class, () -> Elf.parse(image, "kernel"), "phoff " + phoff);
            assertEquals(Kind.TRUNCATED, e.kind(), e.getMessage());
        }
    }

    @Test
    void segmentsWhoseEndOverflowsAreTruncated() {
        long[][] offsetAndSize = {{Long.MAX_VALUE, 1}, {1, Long.MAX_VALUE}, {Long.MAX_VALUE, Long.MAX_VALUE}, {-1, 1}};
        for (long[] s : offsetAndSize) {
            byte[] image = LinuxLoaderTest.tinyVmlinux();
            ByteBuffer.wrap(image)
                    .order(ByteOrder.LITTLE_ENDIAN)
                    .putLong(72, s[0])
                    .putLong(96, s[1]);
            BootException e = assertThrows(BootException.class, () -> Elf.parse(image, "kernel"));
            assertEquals(Kind.TRUNCATED, e.kind(), e.getMessage());
        }
    }
}
