package dev.jvmm.devices.block;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * A scatter-gather list seen as one run of bytes: a backend that splits a request by its own boundaries
 * (qcow2 clusters) takes the part each piece covers as a smaller list for one vectored call, or copies and
 * fills across buffer edges, without ever gathering the buffers into one. Immutable; slices are views.
 */
public final class SegmentList {
    private final MemorySegment[] segments;
    private final long[] starts; // starts[i]: where segment i begins; starts[length]: the total

    private SegmentList(MemorySegment[] segments) {
        this.segments = segments;
        this.starts = new long[segments.length + 1];
        for (int i = 0; i < segments.length; i++) starts[i + 1] = starts[i] + segments[i].byteSize();
    }

    public static SegmentList of(MemorySegment segment) {
        return new SegmentList(new MemorySegment[] {segment});
    }

    public static SegmentList of(List<MemorySegment> segments) {
        return new SegmentList(segments.toArray(MemorySegment[]::new));
    }

    public long byteSize() {
        return starts[segments.length];
    }

    /** The buffers, in order (for a readv/writev of the whole list). */
    public List<MemorySegment> segments() {
        return Collections.unmodifiableList(Arrays.asList(segments));
    }

    /** The index of the segment holding byte {@code offset} (offset < byteSize()). */
    private int indexOf(long offset) {
        int i = Arrays.binarySearch(starts, 0, segments.length, offset);
        if (i < 0) return -i - 2;
        while (i + 1 < segments.length && starts[i + 1] == offset) i++; // skip empty segments at offset
        return i;
    }

    private void check(long offset, long length) {
        if (offset < 0 || length < 0 || offset > byteSize() || length > byteSize() - offset)
            throw new IndexOutOfBoundsException(
                    "range " + offset + "+" + length + " of a " + byteSize() + "-byte list");
    }

    /** Bytes [offset, offset + length) as a list of views of these buffers. */
    public SegmentList slice(long offset, long length) {
        check(offset, length);
        if (length == 0) return new SegmentList(new MemorySegment[0]);
        int first = indexOf(offset), last = indexOf(offset + length - 1);
        MemorySegment[] out = new MemorySegment[last - first + 1];
        int n = 0;
        for (int i = first; i <= last; i++) {
            if (segments[i].byteSize() == 0) continue; // empty buffers carry nothing: left out
            long from = Math.max(offset, starts[i]) - starts[i];
            long to = Math.min(offset + length, starts[i + 1]) - starts[i];
            out[n++] = from == 0 && to == segments[i].byteSize() ? segments[i] : segments[i].asSlice(from, to - from);
        }
        return new SegmentList(n == out.length ? out : Arrays.copyOf(out, n));
    }

    /** Bytes from offset to the end. */
    public SegmentList slice(long offset) {
        return slice(offset, byteSize() - offset);
    }

    /** Copies length bytes from offset of this list into dst at dstOffset. */
    public void copyTo(long offset, MemorySegment dst, long dstOffset, long length) {
        check(offset, length);
        for (MemorySegment s : slice(offset, length).segments) {
            MemorySegment.copy(s, 0, dst, dstOffset, s.byteSize());
            dstOffset += s.byteSize();
        }
    }

    /** Copies length bytes of src from srcOffset into this list at offset. */
    public void copyFrom(MemorySegment src, long srcOffset, long offset, long length) {
        check(offset, length);
        for (MemorySegment s : slice(offset, length).segments) {
            MemorySegment.copy(src, srcOffset, s, 0, s.byteSize());
            srcOffset += s.byteSize();
        }
    }

    /** Sets every byte to value. */
    public void fill(byte value) {
        for (MemorySegment s : segments) s.fill(value);
    }
}
