package dev.jvmm.devices.virtio.blk;

import static dev.jvmm.devices.virtio.blk.VirtioBlock.HEADER;
import static dev.jvmm.devices.virtio.blk.VirtioBlock.MAX_DISCARD_SECTORS;
import static dev.jvmm.devices.virtio.blk.VirtioBlock.MAX_DISCARD_SEG;
import static dev.jvmm.devices.virtio.blk.VirtioBlock.SECTOR;
import static dev.jvmm.devices.virtio.blk.VirtioBlock.SEGMENT;

import dev.jvmm.devices.virtio.DescriptorChain;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns a descriptor chain into a {@link BlockRequest}: the guest's side of the checks, all of them, before
 * anything reaches the disk. The chain is the 16-byte header (type, reserved, sector) in the device-readable
 * part, then the data (device-readable for writes and discard/write-zeroes segments, device-writable for reads
 * and get-id), and the status byte last in the device-writable part. Framing is free: a header, data and status
 * may share descriptors or be split over many (virtio 1.2, 2.6.4).
 *
 * <p>Every value read from guest memory is read once, here. One parser per queue (it keeps a scratch buffer).
 */
public final class BlockRequestParser {
    /**
     * What the requests are checked against.
     *
     * @param capacitySectors the disk's size in 512-byte sectors
     * @param readOnly        whether writes are refused
     * @param features        the negotiated feature bits (discard and write-zeroes are refused without theirs)
     */
    public record Limits(long capacitySectors, boolean readOnly, long features) {
        boolean has(int feature) {
            return (features & (1L << feature)) != 0;
        }
    }

    private final Limits limits;
    private final MemorySegment scratch = MemorySegment.ofArray(new byte[16]);

    public BlockRequestParser(Limits limits) {
        this.limits = limits;
    }

    public BlockRequest parse(DescriptorChain c) {
        if (c.readableLength() < HEADER) return new BlockRequest.Refused(Rejection.NO_HEADER, null);
        if (c.writableLength() < 1) return new BlockRequest.Refused(Rejection.NO_STATUS, null);
        int type = c.readInt(0, scratch);
        long sector = c.readLong(8, scratch);
        MemorySegment status = lastWritableByte(c);
        return switch (type) {
            case VirtioBlock.T_IN -> {
                long len = c.writableLength() - 1;
                Rejection r = checkRange(sector, len);
                yield r != null
                        ? new BlockRequest.Refused(r, status)
                        : new BlockRequest.Read(sector, writablePrefix(c, len), status);
            }
            case VirtioBlock.T_OUT -> {
                Rejection r = limits.readOnly() ? Rejection.READ_ONLY : checkRange(sector, c.readableLength() - HEADER);
                yield r != null
                        ? new BlockRequest.Refused(r, status)
                        : new BlockRequest.Write(sector, readableAfter(c, HEADER), status);
            }
            case VirtioBlock.T_FLUSH -> new BlockRequest.Flush(status);
            case VirtioBlock.T_GET_ID -> new BlockRequest.GetId(writablePrefix(c, c.writableLength() - 1), status);
            case VirtioBlock.T_DISCARD -> discardOrZeroes(c, true, status);
            case VirtioBlock.T_WRITE_ZEROES -> discardOrZeroes(c, false, status);
            default -> new BlockRequest.Refused(Rejection.UNSUPPORTED_TYPE, status);
        };
    }

    /** Null when {@code len} bytes from sector are whole sectors within the capacity. */
    private Rejection checkRange(long sector, long len) {
        if (len % SECTOR != 0) return Rejection.NOT_WHOLE_SECTORS;
        long capacity = limits.capacitySectors();
        if (sector < 0 || sector > capacity) return Rejection.OUT_OF_RANGE; // sector is a u64: negative means huge
        if (len / SECTOR > capacity - sector) return Rejection.OUT_OF_RANGE;
        return null;
    }

    private BlockRequest discardOrZeroes(DescriptorChain c, boolean discard, MemorySegment status) {
        if (!limits.has(discard ? VirtioBlock.F_DISCARD : VirtioBlock.F_WRITE_ZEROES))
            return new BlockRequest.Refused(Rejection.FEATURE_NOT_NEGOTIATED, status);
        if (limits.readOnly()) return new BlockRequest.Refused(Rejection.READ_ONLY, status);
        long data = c.readableLength() - HEADER;
        if (data == 0 || data % SEGMENT != 0) return new BlockRequest.Refused(Rejection.MALFORMED_SEGMENTS, status);
        if (data / SEGMENT > MAX_DISCARD_SEG) return new BlockRequest.Refused(Rejection.TOO_MANY_SEGMENTS, status);
        int segments = (int) (data / SEGMENT);
        // Every segment is checked before any is done, so a bad one leaves the disk as it was.
        List<BlockRequest.Range> ranges = new ArrayList<>(segments);
        for (int i = 0; i < segments; i++) {
            long off = HEADER + (long) i * SEGMENT;
            long sector = c.readLong(off, scratch);
            long count = c.readInt(off + 8, scratch) & 0xffffffffL;
            int flags = c.readInt(off + 12, scratch);
            Rejection r = null;
            if ((flags & ~1) != 0) r = Rejection.UNKNOWN_FLAGS;
            else if (discard && (flags & 1) != 0) r = Rejection.UNMAP_ON_DISCARD;
            else if (count > MAX_DISCARD_SECTORS) r = Rejection.SEGMENT_TOO_LARGE;
            else r = checkRange(sector, count * SECTOR);
            if (r != null) return new BlockRequest.Refused(r, status);
            ranges.add(new BlockRequest.Range(sector, count, (flags & 1) != 0));
        }
        return discard ? new BlockRequest.Discard(ranges, status) : new BlockRequest.WriteZeroes(ranges, status);
    }

    /** The chain's last device-writable byte. */
    private static MemorySegment lastWritableByte(DescriptorChain c) {
        for (int i = c.writableCount() - 1; ; i--) {
            MemorySegment s = c.writable(i);
            if (s.byteSize() > 0) return s.asSlice(s.byteSize() - 1, 1);
        }
    }

    /** The first {@code len} device-writable bytes, as views of the chain's buffers. */
    private static List<MemorySegment> writablePrefix(DescriptorChain c, long len) {
        List<MemorySegment> out = new ArrayList<>(c.writableCount());
        for (int i = 0; i < c.writableCount() && len > 0; i++) {
            MemorySegment s = c.writable(i);
            long n = Math.min(s.byteSize(), len);
            out.add(n == s.byteSize() ? s : s.asSlice(0, n));
            len -= n;
        }
        return out;
    }

    /** The device-readable bytes after the first {@code skip}, as views of the chain's buffers. */
    private static List<MemorySegment> readableAfter(DescriptorChain c, long skip) {
        List<MemorySegment> out = new ArrayList<>(c.readableCount());
        for (int i = 0; i < c.readableCount(); i++) {
            MemorySegment s = c.readable(i);
            if (skip >= s.byteSize()) {
                skip -= s.byteSize();
                continue;
            }
            out.add(skip == 0 ? s : s.asSlice(skip));
            skip = 0;
        }
        return out;
    }
}
