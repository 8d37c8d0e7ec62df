package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import io.airlift.compress.zstd.ZstdInputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.compressors.bzip2.BZip2CompressorInputStream;
import org.apache.commons.compress.compressors.lz4.BlockLZ4CompressorInputStream;
import org.tukaani.xz.LZMAInputStream;
import org.tukaani.xz.SingleXZInputStream;

/**
 * Decompresses a bzImage's payload on the host, whatever format the kernel was built with (the formats
 * Linux's arch/x86/boot/compressed supports). The output is bounded: a payload cannot make jvmm allocate
 * more than {@link #MAX_OUTPUT}.
 */
public final class PayloadDecompressor {
    static final long MAX_OUTPUT = 1L << 30;

    public enum Format {
        GZIP,
        BZIP2,
        LZMA,
        XZ,
        LZO,
        LZ4,
        ZSTD
    }

    private PayloadDecompressor() {}

    public static Format detect(byte[] p) {
        if (p.length >= 2 && (p[0] & 0xff) == 0x1f && (p[1] & 0xff) == 0x8b) return Format.GZIP;
        if (p.length >= 3 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h') return Format.BZIP2;
        if (p.length >= 6
                && (p[0] & 0xff) == 0xfd
                && p[1] == '7'
                && p[2] == 'z'
                && p[3] == 'X'
                && p[4] == 'Z'
                && p[5] == 0) return Format.XZ;
        if (p.length >= 4
                && (p[0] & 0xff) == 0x28
                && (p[1] & 0xff) == 0xb5
                && (p[2] & 0xff) == 0x2f
                && (p[3] & 0xff) == 0xfd) return Format.ZSTD;
        if (p.length >= 4 && p[0] == 0x02 && p[1] == 0x21 && p[2] == 0x4c && p[3] == 0x18) return Format.LZ4;
        if (p.length >= 4 && (p[0] & 0xff) == 0x89 && p[1] == 'L' && p[2] == 'Z' && p[3] == 'O') return Format.LZO;
        if (p.length >= 3 && p[0] == 0x5d && p[1] == 0 && p[2] == 0) return Format.LZMA;
        throw new BootException(
                Kind.UNKNOWN_COMPRESSION, "the bzImage's payload is in a compression format jvmm does not know");
    }

    /**
     * Decompresses a payload as Linux lays it out: the compressed stream followed by the decompressed size as
     * a little-endian u32 (arch/x86/boot/compressed's "_with_size" rules); the size is checked.
     */
    public static byte[] decompress(byte[] payload) {
        Format f = detect(payload);
        if (payload.length < 8) throw new BootException(Kind.BAD_COMPRESSION, "the bzImage's payload is truncated");
        long expected = ByteBuffer.wrap(payload, payload.length - 4, 4)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .getInt()
                & 0xffffffffL;
        if (expected > MAX_OUTPUT)
            throw new BootException(
                    Kind.BAD_COMPRESSION, "the bzImage's payload claims to decompress to more than 1 GiB");
        ByteArrayInputStream stream = new ByteArrayInputStream(payload, 0, payload.length - 4);
        byte[] out;
        try {
            out = switch (f) {
                case GZIP -> readAll(new GZIPInputStream(stream, 1 << 16));
                case BZIP2 -> readAll(new BZip2CompressorInputStream(stream));
                case XZ -> readAll(new SingleXZInputStream(stream));
                case LZMA -> readAll(new LZMAInputStream(stream, -1));
                case ZSTD -> readAll(new ZstdInputStream(stream));
                case LZ4 -> lz4Legacy(java.util.Arrays.copyOf(payload, payload.length - 4));
                case LZO ->
                    throw new BootException(
                            Kind.BOOT_PATH_UNSUPPORTED,
                            "the bzImage's payload is LZO-compressed, which jvmm cannot decompress on the host;"
                                    + " boot it with --boot-path=decompressor");
            };
        } catch (IOException | RuntimeException e) {
            if (e instanceof BootException b) throw b;
            throw new BootException(
                    Kind.BAD_COMPRESSION, "the bzImage's " + f + " payload is corrupt: " + e.getMessage(), e);
        }
        if (out.length != expected)
            throw new BootException(
                    Kind.BAD_COMPRESSION,
                    "the bzImage's " + f + " payload decompressed to " + out.length + " bytes, not the " + expected
                            + " its trailer says");
        return out;
    }

    private static byte[] readAll(InputStream in) throws IOException {
        try (in) {
            ByteArrayOutputStream out = new ByteArrayOutputStream(1 << 24);
            byte[] buf = new byte[1 << 16];
            long total = 0;
            while (true) {
                int n = in.read(buf);
                if (n < 0) break;
                total += n;
                if (total > MAX_OUTPUT)
                    throw new BootException(
                            Kind.BAD_COMPRESSION, "the bzImage's payload decompresses to more than 1 GiB");
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    /** The lz4 "legacy" frame Linux uses: magic, then blocks of (u32 compressed size, data) until the size field is absent. */
    private static byte[] lz4Legacy(byte[] payload) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
        b.position(4);
        ByteArrayOutputStream out = new ByteArrayOutputStream(1 << 24);
        byte[] buf = new byte[1 << 16];
        while (b.remaining() >= 4) {
            int size = b.getInt();
            if (size == 0x184c2102) continue; // a second magic starts a new legacy stream
            if (size < 0 || size > b.remaining())
                throw new IOException("lz4 block of " + size + " bytes runs past the payload");
            try (InputStream block =
                    new BlockLZ4CompressorInputStream(new ByteArrayInputStream(payload, b.position(), size))) {
                int n;
                while ((n = block.read(buf)) > 0) {
                    out.write(buf, 0, n);
                    if (out.size() > MAX_OUTPUT)
                        throw new BootException(
                                Kind.BAD_COMPRESSION, "the bzImage's payload decompresses to more than 1 GiB");
                }
            }
            b.position(b.position() + size);
        }
        return out.toByteArray();
    }
}
