package dev.jvmm.core.snapshot;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Writes a section's state: little-endian integers, length-prefixed byte strings and text. What a section writes
 * here its reader reads back with {@link StateInput} in the same order; the section's version says which layout.
 */
public final class StateOutput {
    private byte[] buf = new byte[256];
    private int len;

    private void ensure(int more) {
        if (buf.length - len < more) {
            long want = Math.max((long) buf.length * 2, (long) len + more);
            if (want > Integer.MAX_VALUE - 8) throw new IllegalStateException("section state over 2 GiB");
            buf = Arrays.copyOf(buf, (int) want);
        }
    }

    public StateOutput u8(int v) {
        ensure(1);
        buf[len++] = (byte) v;
        return this;
    }

    public StateOutput bool(boolean v) {
        return u8(v ? 1 : 0);
    }

    public StateOutput u16(int v) {
        ensure(2);
        buf[len++] = (byte) v;
        buf[len++] = (byte) (v >>> 8);
        return this;
    }

    public StateOutput u32(int v) {
        ensure(4);
        for (int i = 0; i < 4; i++) buf[len++] = (byte) (v >>> (8 * i));
        return this;
    }

    public StateOutput u64(long v) {
        ensure(8);
        for (int i = 0; i < 8; i++) buf[len++] = (byte) (v >>> (8 * i));
        return this;
    }

    /** A u32 length, then the bytes. */
    public StateOutput bytes(byte[] b) {
        u32(b.length);
        return raw(b);
    }

    public StateOutput bytes(StructBytes b) {
        return bytes(b.toArray());
    }

    /** The bytes alone, for a fixed-size field the reader knows the size of. */
    public StateOutput raw(byte[] b) {
        ensure(b.length);
        System.arraycopy(b, 0, buf, len, b.length);
        len += b.length;
        return this;
    }

    /** UTF-8 with a u16 length. */
    public StateOutput string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > 0xffff) throw new IllegalArgumentException("string of " + b.length + " bytes is over 65535");
        u16(b.length);
        return raw(b);
    }

    public int size() {
        return len;
    }

    public byte[] toByteArray() {
        return Arrays.copyOf(buf, len);
    }
}
