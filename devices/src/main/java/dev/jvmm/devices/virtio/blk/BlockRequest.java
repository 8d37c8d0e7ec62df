package dev.jvmm.devices.virtio.blk;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * One virtio-blk request, decoded and checked by {@link BlockRequestParser} and run by
 * {@link BlockRequestExecutor}. Buffers are views of guest memory that the virtqueue has already bounds-checked;
 * sectors and lengths have been checked against the disk, so the executor only moves bytes. {@code status} is
 * the one guest byte the completion status goes to (the last device-writable byte of the chain).
 */
public sealed interface BlockRequest {
    /** Where the status byte goes; null only for a {@link Refused} request that cannot be answered. */
    MemorySegment status();

    /** VIRTIO_BLK_T_IN: the disk from {@code sector} on into {@code data}, in order. */
    record Read(long sector, List<MemorySegment> data, MemorySegment status) implements BlockRequest {
        public Read {
            data = List.copyOf(data);
        }

        public long length() {
            return bytes(data);
        }
    }

    /** VIRTIO_BLK_T_OUT: {@code data}, back to back, onto the disk from {@code sector} on. */
    record Write(long sector, List<MemorySegment> data, MemorySegment status) implements BlockRequest {
        public Write {
            data = List.copyOf(data);
        }

        public long length() {
            return bytes(data);
        }
    }

    /** VIRTIO_BLK_T_FLUSH. */
    record Flush(MemorySegment status) implements BlockRequest {}

    /** VIRTIO_BLK_T_GET_ID: the serial into {@code data} (as much of its 20 bytes as fits). */
    record GetId(List<MemorySegment> data, MemorySegment status) implements BlockRequest {
        public GetId {
            data = List.copyOf(data);
        }
    }

    /** One discard/write-zeroes segment, copied out of guest memory so the guest cannot change it after the checks. */
    record Range(long sector, long sectors, boolean unmap) {}

    /** VIRTIO_BLK_T_DISCARD. */
    record Discard(List<Range> ranges, MemorySegment status) implements BlockRequest {
        public Discard {
            ranges = List.copyOf(ranges);
        }
    }

    /** VIRTIO_BLK_T_WRITE_ZEROES; a range's unmap lets the backend deallocate it. */
    record WriteZeroes(List<Range> ranges, MemorySegment status) implements BlockRequest {
        public WriteZeroes {
            ranges = List.copyOf(ranges);
        }
    }

    /** A request the device will not run, and why; the disk is not touched. */
    record Refused(Rejection reason, MemorySegment status) implements BlockRequest {
        public Refused {
            if (reason.answerable() && status == null)
                throw new IllegalArgumentException(reason + " needs a status byte");
        }
    }

    private static long bytes(List<MemorySegment> segments) {
        long n = 0;
        for (MemorySegment s : segments) n += s.byteSize();
        return n;
    }
}
