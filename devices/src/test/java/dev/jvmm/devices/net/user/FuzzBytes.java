package dev.jvmm.devices.net.user;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;

/**
 * The byte format the user network's fuzz targets read their inputs in: fields front to back, big-endian, and
 * zeros once the input runs out, so that the all-zero choice of every field is the ordinary one (a short input
 * means "the usual") and a seed is written field by field with {@link Writer}. (Jazzer's FuzzedDataProvider takes
 * numbers from the end of the input, which makes seeds hard to write by hand.)
 */
final class FuzzBytes {
    private FuzzBytes() {}

    static final class Reader {
        private final byte[] b;
        private int i;

        Reader(byte[] b) {
            this.b = b;
        }

        boolean more() {
            return i < b.length;
        }

        int u8() {
            return i < b.length ? b[i++] & 0xff : 0;
        }

        int u16() {
            return (u8() << 8) | u8();
        }

        int u32() {
            return (u16() << 16) | u16();
        }

        /** Up to {@code n} bytes, fewer if the input ends first. */
        byte[] bytes(int n) {
            int k = Math.max(0, Math.min(n, b.length - i));
            byte[] r = Arrays.copyOfRange(b, i, i + k);
            i += k;
            return r;
        }
    }

    /** Writes what a {@link Reader} reads back, for seeds. */
    static final class Writer {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Writer u8(int v) {
            out.write(v);
            return this;
        }

        Writer u16(int v) {
            return u8(v >>> 8).u8(v);
        }

        Writer u32(int v) {
            return u16(v >>> 16).u16(v);
        }

        Writer bytes(byte[] v) {
            out.writeBytes(v);
            return this;
        }

        byte[] toByteArray() {
            return out.toByteArray();
        }
    }
}
