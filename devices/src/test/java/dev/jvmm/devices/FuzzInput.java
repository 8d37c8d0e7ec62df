package dev.jvmm.devices;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A fuzz input read front to back as little-endian numbers, for the structure-aware targets of this module: each
 * target decodes its own small language of choices from it. Past the end every read answers 0, so any input, the
 * empty one too, decodes to something. {@link Writer} builds inputs the same way, for the seed files.
 */
public final class FuzzInput {
    private final byte[] data;
    private int pos;

    public FuzzInput(byte[] data) {
        this.data = data;
    }

    /** Whether bytes are left; reads past the end answer 0. */
    public boolean more() {
        return pos < data.length;
    }

    public int u8() {
        return pos < data.length ? data[pos++] & 0xff : 0;
    }

    public int u16() {
        return u8() | u8() << 8;
    }

    public int u32() {
        return u16() | u16() << 16;
    }

    public long u64() {
        return (u32() & 0xffff_ffffL) | (long) u32() << 32;
    }

    public boolean bool() {
        return (u8() & 1) != 0;
    }

    /** A value from 0 to n - 1 (n from 1 to 65536). */
    public int below(int n) {
        if (n <= 1) return 0;
        return n <= 256 ? u8() % n : u16() % n;
    }

    /** Builds an input as {@link FuzzInput} reads it. */
    public static final class Writer {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        public Writer u8(int v) {
            out.write(v);
            return this;
        }

        public Writer u16(int v) {
            return u8(v).u8(v >>> 8);
        }

        public Writer u32(int v) {
            return u16(v).u16(v >>> 16);
        }

        public Writer u64(long v) {
            return u32((int) v).u32((int) (v >>> 32));
        }

        public Writer bytes(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        public byte[] bytes() {
            return out.toByteArray();
        }
    }

    /**
     * Writes seed inputs where Jazzer's JUnit integration replays them: {@code resources}/package/ClassInputs/method/,
     * one file per entry. For the seed writers of the fuzz targets ({@code main(src/test/resources)} of each).
     */
    public static void writeSeeds(Path resources, Class<?> target, String method, Map<String, byte[]> seeds)
            throws IOException {
        Path dir = resources
                .resolve(target.getPackageName().replace('.', '/'))
                .resolve(target.getSimpleName() + "Inputs")
                .resolve(method);
        Files.createDirectories(dir);
        for (Map.Entry<String, byte[]> e : seeds.entrySet()) Files.write(dir.resolve(e.getKey()), e.getValue());
    }
}
