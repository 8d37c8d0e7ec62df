package dev.jvmm.devices.virtio.blk;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BlockConfigTest {
    @Test
    void fieldsSitWhereTheSpecPutsThem() {
        // virtio 1.2, 5.2.4: struct virtio_blk_config.
        Map<String, Integer> spec = Map.ofEntries(
                Map.entry("capacity", 0),
                Map.entry("size_max", 8),
                Map.entry("seg_max", 12),
                Map.entry("geometry", 16),
                Map.entry("blk_size", 20),
                Map.entry("topology", 24),
                Map.entry("writeback", 32),
                Map.entry("num_queues", 34),
                Map.entry("max_discard_sectors", 36),
                Map.entry("max_discard_seg", 40),
                Map.entry("discard_sector_alignment", 44),
                Map.entry("max_write_zeroes_sectors", 48),
                Map.entry("max_write_zeroes_seg", 52),
                Map.entry("write_zeroes_may_unmap", 56));
        spec.forEach((field, offset) -> assertEquals((long) offset, BlockConfig.offsetOf(field), field));
        assertEquals(60, BlockConfig.SIZE);
        assertEquals(VirtioBlock.CONFIG_SIZE, BlockConfig.SIZE);
    }

    @Test
    void serialisesLittleEndianWithUnsetFieldsZero() {
        MemorySegment s =
                new BlockConfig(0x1_0000_0002L, 0, 254, 4096, 3, 4, 1 << 21, 32, 8, 1 << 20, 16, true).toSegment();
        ValueLayout.OfInt le32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0x1_0000_0002L, s.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0));
        assertEquals(2, s.get(ValueLayout.JAVA_BYTE, 0), "little-endian");
        assertEquals(254, s.get(le32, 12));
        assertEquals(4096, s.get(le32, 20));
        assertEquals(3, s.get(ValueLayout.JAVA_BYTE, 24), "physical_block_exp");
        assertEquals(4, s.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 34));
        assertEquals(1 << 21, s.get(le32, 36));
        assertEquals(32, s.get(le32, 40));
        assertEquals(8, s.get(le32, 44));
        assertEquals(1 << 20, s.get(le32, 48));
        assertEquals(16, s.get(le32, 52));
        assertEquals(1, s.get(ValueLayout.JAVA_BYTE, 56));
        for (int off : new int[] {8, 9, 10, 11, 16, 17, 18, 19, 25, 26, 27, 28, 29, 30, 31, 32, 33, 57, 58, 59})
            assertEquals(0, s.get(ValueLayout.JAVA_BYTE, off), "byte " + off);
    }
}
