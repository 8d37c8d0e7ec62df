package dev.jvmm.core.snapshot;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads a section's state written by {@link StateOutput}, never past the section's end: every read is bounds-checked
 * and every count or length is checked against what is left before anything is allocated for it, so a corrupt or
 * hostile file gives a {@link SnapshotException} of kind CORRUPT naming the section and the field.
 */
public final class StateInput {
    private final byte[] buf;
    private final int end;
    private final String where;
    private int pos;

    StateInput(byte[] buf, int offset, int length, String where) {
        if (offset < 0 || length < 0 || offset > buf.length - length)
            throw new IllegalArgumentException("slice " + offset + "+" + length + " of " + buf.length);
        this.buf = buf;
        this.pos = offset;
        this.end = offset + length;
        this.where = where;
    }

    /** A reader over {@code state}, named {@code where} in its errors (e.g. "device serial0"). */
    public static StateInput of(byte[] state, String where) {
        return new StateInput(state, 0, state.length, where);
    }

    public int remaining() {
        return end - pos;
    }

    private void need(int n, String field) {
        if (n < 0 || n > end - pos)
            throw SnapshotException.corrupt(
                    where + ": " + field + " needs " + n + " bytes, " + (end - pos) + " left in the section");
    }

    public int u8(String field) {
        need(1, field);
        return buf[pos++] & 0xff;
    }

    public boolean bool(String field) {
        int v = u8(field);
        if (v > 1) throw SnapshotException.corrupt(where + ": " + field + " is " + v + ", not 0 or 1");
        return v == 1;
    }

    public int u16(String field) {
        need(2, field);
        int v = (buf[pos] & 0xff) | (buf[pos + 1] & 0xff) << 8;
        pos += 2;
        return v;
    }

    public int u32(String field) {
        need(4, field);
        int v = 0;
        for (int i = 0; i < 4; i++) v |= (buf[pos + i] & 0xff) << (8 * i);
        pos += 4;
        return v;
    }

    public long u64(String field) {
        need(8, field);
        long v = 0;
        for (int i = 0; i < 8; i++) v |= (buf[pos + i] & 0xffL) << (8 * i);
        pos += 8;
        return v;
    }

    /**
     * A count of elements that follow, each at least {@code minElementBytes} long: refused when above {@code max}
     * or when that many could not fit in what is left.
     */
    public int count(String field, int max, int minElementBytes) {
        long n = u32(field) & 0xffffffffL;
        if (n > max) throw SnapshotException.corrupt(where + ": " + field + " count " + n + " is over " + max);
        if (n * minElementBytes > end - pos)
            throw SnapshotException.corrupt(where + ": " + field + " count " + n + " does not fit in the " + (end - pos)
                    + " bytes left in the section");
        return (int) n;
    }

    /** A u32-length-prefixed byte string of at most {@code max} bytes. */
    public byte[] bytes(String field, int max) {
        long n = u32(field) & 0xffffffffL;
        if (n > max) throw SnapshotException.corrupt(where + ": " + field + " length " + n + " is over " + max);
        return raw(field, (int) n);
    }

    /** A u32-length-prefixed byte string that must be exactly {@code size} bytes (a kernel struct). */
    public StructBytes struct(String field, long size) {
        long n = u32(field) & 0xffffffffL;
        if (n != size)
            throw SnapshotException.corrupt(where + ": " + field + " is " + n + " bytes, the struct is " + size);
        return StructBytes.of(raw(field, (int) n));
    }

    /** {@code n} bytes with no length prefix. */
    public byte[] raw(String field, int n) {
        need(n, field);
        byte[] b = Arrays.copyOfRange(buf, pos, pos + n);
        pos += n;
        return b;
    }

    /** UTF-8 with a u16 length, at most {@code max} bytes. */
    public String string(String field, int max) {
        int n = u16(field);
        if (n > max) throw SnapshotException.corrupt(where + ": " + field + " length " + n + " is over " + max);
        return new String(raw(field, n), StandardCharsets.UTF_8);
    }

    /** Refuses bytes left over: a reader that stops short would otherwise ignore state it does not understand. */
    public void expectEnd() {
        if (pos != end)
            throw SnapshotException.corrupt(where + ": " + (end - pos) + " bytes left over after the last field");
    }

    /** Where this input is, for a reader's own messages. */
    public String where() {
        return where;
    }
}
