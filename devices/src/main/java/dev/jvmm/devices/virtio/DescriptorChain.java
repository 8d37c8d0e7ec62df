package dev.jvmm.devices.virtio;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * One request taken from a virtqueue: the head index and its buffers as bounded views of guest memory, the
 * device-readable ones first, then the device-writable ones (the order the spec requires of drivers and
 * {@link Virtqueue} enforces). Every buffer has been checked to lie inside guest RAM.
 *
 * <p>A device keeps one instance per queue and refills it with {@link Virtqueue#pop}, so taking a request
 * allocates nothing but the segment views.
 */
public final class DescriptorChain {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final MemorySegment[] readable;
    private final MemorySegment[] writable;
    private int head = -1;
    private int readableCount;
    private int writableCount;
    private long readableLength;
    private long writableLength;

    /** A chain able to hold up to {@code capacity} buffers (the largest queue size it will serve). */
    public DescriptorChain(int capacity) {
        readable = new MemorySegment[capacity];
        writable = new MemorySegment[capacity];
    }

    void reset(int head) {
        this.head = head;
        for (int i = 0; i < readableCount; i++) readable[i] = null;
        for (int i = 0; i < writableCount; i++) writable[i] = null;
        readableCount = writableCount = 0;
        readableLength = writableLength = 0;
    }

    int capacity() {
        return readable.length;
    }

    void add(MemorySegment buffer, boolean deviceWritable) {
        if (deviceWritable) {
            writable[writableCount++] = buffer;
            writableLength += buffer.byteSize();
        } else {
            readable[readableCount++] = buffer;
            readableLength += buffer.byteSize();
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

    public MemorySegment readable(int i) {
        if (i >= readableCount) throw new IndexOutOfBoundsException(i);
        return readable[i];
    }

    public MemorySegment writable(int i) {
        if (i >= writableCount) throw new IndexOutOfBoundsException(i);
        return writable[i];
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
            long size = readable[i].byteSize();
            if (offset >= size) {
                offset -= size;
                continue;
            }
            long n = Math.min(size - offset, length);
            MemorySegment.copy(readable[i], offset, dst, dstOffset, n);
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
            long size = writable[i].byteSize();
            if (offset >= size) {
                offset -= size;
                continue;
            }
            long n = Math.min(size - offset, length);
            MemorySegment.copy(src, srcOffset, writable[i], offset, n);
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
            long size = writable[i].byteSize();
            if (offset < size) {
                writable[i].set(ValueLayout.JAVA_BYTE, offset, value);
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
