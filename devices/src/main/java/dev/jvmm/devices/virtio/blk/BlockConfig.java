package dev.jvmm.devices.virtio.blk;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * virtio-blk's device configuration space (virtio 1.2, 5.2.4): {@link #LAYOUT} names every field at its
 * place, and a record holds the values the device offers. Fields jvmm leaves zero (geometry, alignment
 * offset, I/O sizes, writeback) are named in the layout all the same, so offsets are never counted by hand.
 *
 * @param capacity               disk size in 512-byte sectors
 * @param sizeMax                largest single buffer (VIRTIO_BLK_F_SIZE_MAX; 0: not offered)
 * @param segMax                 most data buffers per request (VIRTIO_BLK_F_SEG_MAX)
 * @param blkSize                logical block size (VIRTIO_BLK_F_BLK_SIZE)
 * @param physicalBlockExp       log2 of logical blocks per physical block (topology)
 * @param numQueues              request queues (VIRTIO_BLK_F_MQ)
 * @param maxDiscardSectors      largest discard segment
 * @param maxDiscardSeg          most discard segments per request
 * @param discardSectorAlignment discard granularity, in sectors
 * @param maxWriteZeroesSectors  largest write-zeroes segment
 * @param maxWriteZeroesSeg      most write-zeroes segments per request
 * @param writeZeroesMayUnmap    whether write-zeroes with unmap may deallocate
 */
public record BlockConfig(
        long capacity,
        int sizeMax,
        int segMax,
        int blkSize,
        int physicalBlockExp,
        int numQueues,
        int maxDiscardSectors,
        int maxDiscardSeg,
        int discardSectorAlignment,
        int maxWriteZeroesSectors,
        int maxWriteZeroesSeg,
        boolean writeZeroesMayUnmap) {
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** struct virtio_blk_config, up to write_zeroes_may_unmap and its padding (the fields jvmm's features reach). */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                    LE64.withName("capacity"),
                    LE32.withName("size_max"),
                    LE32.withName("seg_max"),
                    MemoryLayout.structLayout(LE16.withName("cylinders"), U8.withName("heads"), U8.withName("sectors"))
                            .withName("geometry"),
                    LE32.withName("blk_size"),
                    MemoryLayout.structLayout(
                                    U8.withName("physical_block_exp"), U8.withName("alignment_offset"),
                                    LE16.withName("min_io_size"), LE32.withName("opt_io_size"))
                            .withName("topology"),
                    U8.withName("writeback"),
                    U8.withName("unused0"),
                    LE16.withName("num_queues"),
                    LE32.withName("max_discard_sectors"),
                    LE32.withName("max_discard_seg"),
                    LE32.withName("discard_sector_alignment"),
                    LE32.withName("max_write_zeroes_sectors"),
                    LE32.withName("max_write_zeroes_seg"),
                    U8.withName("write_zeroes_may_unmap"),
                    MemoryLayout.sequenceLayout(3, U8).withName("unused1"))
            .withName("virtio_blk_config");

    public static final int SIZE = (int) LAYOUT.byteSize();

    private static final VarHandle CAPACITY = field("capacity");
    private static final VarHandle SIZE_MAX = field("size_max");
    private static final VarHandle SEG_MAX = field("seg_max");
    private static final VarHandle BLK_SIZE = field("blk_size");
    private static final VarHandle PHYSICAL_BLOCK_EXP =
            LAYOUT.varHandle(groupElement("topology"), groupElement("physical_block_exp"));
    private static final VarHandle NUM_QUEUES = field("num_queues");
    private static final VarHandle MAX_DISCARD_SECTORS = field("max_discard_sectors");
    private static final VarHandle MAX_DISCARD_SEG = field("max_discard_seg");
    private static final VarHandle DISCARD_SECTOR_ALIGNMENT = field("discard_sector_alignment");
    private static final VarHandle MAX_WRITE_ZEROES_SECTORS = field("max_write_zeroes_sectors");
    private static final VarHandle MAX_WRITE_ZEROES_SEG = field("max_write_zeroes_seg");
    private static final VarHandle WRITE_ZEROES_MAY_UNMAP = field("write_zeroes_may_unmap");

    private static VarHandle field(String name) {
        return LAYOUT.varHandle(groupElement(name));
    }

    /** Byte offset of a top-level field, e.g. {@code offsetOf("num_queues")} is 34. */
    public static long offsetOf(String field) {
        return LAYOUT.byteOffset(groupElement(field));
    }

    /** The configuration space as the guest reads it: {@link #SIZE} bytes, little-endian, unset fields zero. */
    public MemorySegment toSegment() {
        MemorySegment s = MemorySegment.ofArray(new byte[SIZE]);
        CAPACITY.set(s, 0L, capacity);
        SIZE_MAX.set(s, 0L, sizeMax);
        SEG_MAX.set(s, 0L, segMax);
        BLK_SIZE.set(s, 0L, blkSize);
        PHYSICAL_BLOCK_EXP.set(s, 0L, (byte) physicalBlockExp);
        NUM_QUEUES.set(s, 0L, (short) numQueues);
        MAX_DISCARD_SECTORS.set(s, 0L, maxDiscardSectors);
        MAX_DISCARD_SEG.set(s, 0L, maxDiscardSeg);
        DISCARD_SECTOR_ALIGNMENT.set(s, 0L, discardSectorAlignment);
        MAX_WRITE_ZEROES_SECTORS.set(s, 0L, maxWriteZeroesSectors);
        MAX_WRITE_ZEROES_SEG.set(s, 0L, maxWriteZeroesSeg);
        WRITE_ZEROES_MAY_UNMAP.set(s, 0L, (byte) (writeZeroesMayUnmap ? 1 : 0));
        return s;
    }
}
