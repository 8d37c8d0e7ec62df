package dev.jvmm.devices.virtio;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * One request taken from a virtqueue: the head index and its buffers as bounded views of guest memory, the
 * device-readable ones first, then the device-writable ones (the order the spec requires of drivers and
 * {@link Virtqueue} enforces). Every buffer has been checked to lie inside guest RAM.
 *
 * <p>A device keeps one instance per queue and refills it with {@link Virtqueue#pop}. A buffer is kept as its
 * RAM region's segment, an offset and a length, so taking a request allocates nothing: {@link #readFrom} and
 * {@link #writeTo} copy within those bounds, and only {@link #readable(int)} and {@link #writable(int)} make a
 * view (for zero-copy I/O).
 */
public final class DescriptorChain {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // Buffer i of each part: bytes [offset[i], offset[i] + length[i]) of the RAM region's segment base[i].
    private final MemorySegment[] readableBase, writableBase;
    private final long[] readableOffset, writableOffset, readableSize, writableSize;
    private int head = -1;
    private int readableCount;
    private int writableCount;
    private long readableLength;
    private long writableLength;

    /** A chain able to hold up to {@code capacity} buffers (the largest queue size it will serve). */
    public DescriptorChain(int capacity) {
        readableBase = new MemorySegment[capacity];
        writableBase = new MemorySegment[capacity];
        readableOffset = new long[capacity];
        writableOffset = new long[capacity];
        readableSize = new long[capacity];
        writableSize = new long[capacity];
    }

    void reset(int head) {
        this.head = head;
        // The regions' segments outlive any chain: nothing to clear for the garbage collector.
        readableCount = writableCount = 0;
        readableLength = writableLength = 0;
    }

    int capacity() {
        return readableBase.length;
    }

    /** Adds {@code length} bytes of {@code region} at {@code offset}; the caller checked they lie inside it. */
    void add(MemorySegment region, long offset, long length, boolean deviceWritable) {
        if (deviceWritable) {
            writableBase[writableCount] = region;
            writableOffset[writableCount] = offset;
            writableSize[writableCount++] = length;
            writableLength += length;
        } else {
            readableBase[readableCount] = region;
            readableOffset[readableCount] = offset;
            readableSize[readableCount++] = length;
            readableLength += length;
        }
    }

    boolean hasWritable() {
        return writableCount > 0;
    }

    /** The descriptor index of the chain's head: what goes back in the used ring. */
    public int head() {
        return head;
    }

    public int readableCount() {
        return readableCount;
    }

    public int writableCount() {
        return writableCount;
    }

    /** A bounded view of device-readable buffer {@code i} (a new one each call). */
    public MemorySegment readable(int i) {
        if (i < 0 || i >= readableCount) throw new IndexOutOfBoundsException(i);
        return readableBase[i].asSlice(readableOffset[i], readableSize[i]);
    }

    /** A bounded view of device-writable buffer {@code i} (a new one each call). */
    public MemorySegment writable(int i) {
        if (i < 0 || i >= writableCount) throw new IndexOutOfBoundsException(i);
        return writableBase[i].asSlice(writableOffset[i], writableSize[i]);
    }

    /** Total bytes of the device-readable buffers. */
    public long readableLength() {
        return readableLength;
    }

    /** Total bytes of the device-writable buffers. */
    public long writableLength() {
        return writableLength;
    }

    /** Copies {@code length} bytes starting at {@code offset} of the readable part (across buffers) into dst. */
    public void readFrom(long offset, MemorySegment dst, long dstOffset, long length) {
        if (offset < 0 || length < 0 || offset + length > readableLength)
            throw new IndexOutOfBoundsException(
                    "readable range " + offset + "+" + length + " beyond " + readableLength);
        for (int i = 0; i < readableCount && length > 0; i++) {
            long size = readableSize[i];
            if (offset >= size) {
                offset -= size;
                continue;
            }
            long n = Math.min(size - offset, length);
            MemorySegment.copy(readableBase[i], readableOffset[i] + offset, dst, dstOffset, n);
            dstOffset += n;
            length -= n;
            offset = 0;
        }
    }

    /** Copies {@code length} bytes of src into the writable part (across buffers) starting at {@code offset}. */
    public void writeTo(long offset, MemorySegment src, long srcOffset, long length) {
        if (offset < 0 || length < 0 || offset + length > writableLength)
            throw new IndexOutOfBoundsException(
                    "writable range " + offset + "+" + length + " beyond " + writableLength);
        for (int i = 0; i < writableCount && length > 0; i++) {
            long size = writableSize[i];
            if (offset >= size) {
                offset -= size;
                continue;
            }
            long n = Math.min(size - offset, length);
            MemorySegment.copy(src, srcOffset, writableBase[i], writableOffset[i] + offset, n);
            srcOffset += n;
            length -= n;
            offset = 0;
        }
    }

    /** Writes one byte at {@code offset} of the writable part. */
    public void writeByte(long offset, byte value) {
        if (offset < 0 || offset >= writableLength)
            throw new IndexOutOfBoundsException("writable offset " + offset + " beyond " + writableLength);
        for (int i = 0; i < writableCount; i++) {
            long size = writableSize[i];
            if (offset < size) {
                writableBase[i].set(ValueLayout.JAVA_BYTE, writableOffset[i] + offset, value);
                return;
            }
            offset -= size;
        }
    }

    /** A little-endian u32 at {@code offset} of the readable part, read through a scratch segment of 8+ bytes. */
    public int readInt(long offset, MemorySegment scratch) {
        readFrom(offset, scratch, 0, 4);
        return scratch.get(U32, 0);
    }

    /** A little-endian u64 at {@code offset} of the readable part, read through a scratch segment of 8+ bytes. */
    public long readLong(long offset, MemorySegment scratch) {
        readFrom(offset, scratch, 0, 8);
        return scratch.get(U64, 0);
    }
}
