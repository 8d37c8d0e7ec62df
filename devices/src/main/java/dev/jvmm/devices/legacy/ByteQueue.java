package dev.jvmm.devices.legacy;

/**
 * A FIFO of bytes with a hard cap, grown on demand (an idle console costs a few bytes, a large paste up to
 * the cap). Not thread-safe: its owner guards it.
 */
final class ByteQueue {
    private static final int INITIAL = 256;
    private final int maxCapacity;
    private byte[] buf = new byte[0];
    private int head;
    private int size;

    ByteQueue(int maxCapacity) {
        if (maxCapacity < 1) throw new IllegalArgumentException("capacity " + maxCapacity);
        this.maxCapacity = maxCapacity;
    }

    int size() {
        return size;
    }

    int room() {
        return maxCapacity - size;
    }

    int maxCapacity() {
        return maxCapacity;
    }

    /** Appends as much of data[off, off+len) as fits; returns how many bytes were taken. */
    int offer(byte[] data, int off, int len) {
        int n = Math.min(len, room());
        if (n <= 0) return 0;
        ensureCapacity(size + n);
        int tail = (head + size) % buf.length;
        int first = Math.min(n, buf.length - tail);
        System.arraycopy(data, off, buf, tail, first);
        System.arraycopy(data, off + first, buf, 0, n - first);
        size += n;
        return n;
    }

    /** Removes and returns the oldest byte (0-255); the queue must not be empty. */
    int poll() {
        if (size == 0) throw new IllegalStateException("empty");
        int b = buf[head] & 0xff;
        head = (head + 1) % buf.length;
        size--;
        return b;
    }

    /** The bytes queued, oldest first, left in the queue. */
    byte[] toArray() {
        byte[] out = new byte[size];
        int first = Math.min(size, buf.length - head);
        if (size > 0) {
            System.arraycopy(buf, head, out, 0, first);
            System.arraycopy(buf, 0, out, first, size - first);
        }
        return out;
    }

    void clear() {
        head = 0;
        size = 0;
    }

    private void ensureCapacity(int needed) {
        if (needed <= buf.length) return;
        int cap = Math.max(Math.min(INITIAL, maxCapacity), buf.length);
        while (cap < needed) cap = (int) Math.min((long) cap * 2, maxCapacity);
        byte[] next = new byte[cap];
        int first = Math.min(size, buf.length - head);
        if (size > 0) {
            System.arraycopy(buf, head, next, 0, first);
            System.arraycopy(buf, 0, next, first, size - first);
        }
        buf = next;
        head = 0;
    }
}
