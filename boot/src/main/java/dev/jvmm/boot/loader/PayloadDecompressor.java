package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import io.airlift.compress.zstd.ZstdInputStream;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.compressors.bzip2.BZip2CompressorInputStream;
import org.apache.commons.compress.compressors.lz4.BlockLZ4CompressorInputStream;
import org.tukaani.xz.LZMAInputStream;
import org.tukaani.xz.MemoryLimitException;
import org.tukaani.xz.SingleXZInputStream;

/**
 * Decompresses a bzImage's payload on the host, whatever format the kernel was built with (the formats
 * Linux's arch/x86/boot/compressed supports). The output is bounded: a payload cannot make jvmm allocate
 * much more than the size its trailer claims, which is at most the guest's memory and {@link #MAX_OUTPUT}, and
 * an xz or lzma dictionary no more than that or {@link #MAX_DICTIONARY}, whichever is larger.
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

    /** As {@link #decompress(byte[], long)} with no guest memory to fit: at most {@link #MAX_OUTPUT}. */
    public static byte[] decompress(byte[] payload) {
        return decompress(payload, MAX_OUTPUT);
    }

    /**
     * Decompresses a payload as Linux lays it out: the compressed stream followed by the decompressed size as
     * a little-endian u32 (arch/x86/boot/compressed's "_with_size" rules). That size must fit {@code guestMemory}
     * (the vmlinux is loaded there) and is checked while the stream inflates: a stream that runs past it is
     * stopped there, so a payload can make jvmm hold no more heap than what it claims and the guest could take.
     */
    public static byte[] decompress(byte[] payload, long guestMemory) {
        Format f = detect(payload);
        if (payload.length < 8) throw new BootException(Kind.BAD_COMPRESSION, "the bzImage's payload is truncated");
        long expected = ByteBuffer.wrap(payload, payload.length - 4, 4)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .getInt()
                & 0xffffffffL;
        if (expected > MAX_OUTPUT)
            throw new BootException(
                    Kind.BAD_COMPRESSION, "the bzImage's payload claims to decompress to more than 1 GiB");
        if (expected > guestMemory)
            throw new BootException(
                    Kind.KERNEL_DOES_NOT_FIT,
                    "the bzImage's payload decompresses to " + mib(expected) + " MiB, more than the guest's "
                            + mib(guestMemory) + " MiB of memory; give the guest more --memory");
        Recent.Key key = Recent.key(payload);
        byte[] known = Recent.get(key);
        if (known != null) return known.clone();
        ByteArrayInputStream stream = new ByteArrayInputStream(payload, 0, payload.length - 4);
        Output out = new Output((int) expected, payload.length, f);
        try {
            switch (f) {
                case GZIP -> out.readAll(new GZIPInputStream(stream, 1 << 16));
                case BZIP2 -> out.readAll(new BZip2CompressorInputStream(stream));
                case XZ -> out.readAll(new SingleXZInputStream(stream, dictionaryLimitKiB(expected)));
                case LZMA -> out.readAll(new LZMAInputStream(stream, dictionaryLimitKiB(expected)));
                case ZSTD -> out.readAll(new ZstdInputStream(stream));
                case LZ4 -> lz4Legacy(java.util.Arrays.copyOf(payload, payload.length - 4), out);
                case LZO ->
                    throw new BootException(
                            Kind.BOOT_PATH_UNSUPPORTED,
                            "the bzImage's payload is LZO-compressed, which jvmm cannot decompress on the host;"
                                    + " boot it with --boot-path=decompressor");
            }
        } catch (MemoryLimitException e) {
            throw new BootException(
                    Kind.BAD_COMPRESSION,
                    "the bzImage's " + f + " payload asks for " + mib(e.getMemoryNeeded() * 1024L)
                            + " MiB to decompress (its dictionary), more than its " + mib(expected)
                            + " MiB of output needs; jvmm allows " + mib(e.getMemoryLimit() * 1024L) + " MiB",
                    e);
        } catch (IOException | RuntimeException e) {
            if (e instanceof BootException b) throw b;
            throw new BootException(
                    Kind.BAD_COMPRESSION, "the bzImage's " + f + " payload is corrupt: " + e.getMessage(), e);
        }
        byte[] vmlinux = out.finish();
        Recent.put(key, vmlinux.clone());
        return vmlinux;
    }

    /**
     * The last payloads decompressed in this process, by their SHA-256: a process that boots the same kernel again
     * (a test suite starting a micro-VM per test, a machine rebooted) decompresses it once; with Debian's xz kernel
     * that saves 1-3 s of every launch after the first. Softly held (the GC may drop them), two at most.
     */
    private static final class Recent {
        record Key(byte[] sha256) {
            @Override
            public boolean equals(Object o) {
                return o instanceof Key k && java.util.Arrays.equals(sha256, k.sha256);
            }

            @Override
            public int hashCode() {
                return java.util.Arrays.hashCode(sha256);
            }
        }

        private static final int KEEP = 2;
        private static final java.util.Map<Key, java.lang.ref.SoftReference<byte[]>> PAYLOADS =
                new java.util.LinkedHashMap<>(4, 0.75f, true) {
                    @Override
                    protected boolean removeEldestEntry(
                            java.util.Map.Entry<Key, java.lang.ref.SoftReference<byte[]>> e) {
                        return size() > KEEP;
                    }
                };

        static Key key(byte[] payload) {
            try {
                return new Key(
                        java.security.MessageDigest.getInstance("SHA-256").digest(payload));
            } catch (java.security.NoSuchAlgorithmException e) {
                throw new IllegalStateException("every JDK has SHA-256", e);
            }
        }

        static synchronized byte[] get(Key key) {
            java.lang.ref.SoftReference<byte[]> ref = PAYLOADS.get(key);
            return ref == null ? null : ref.get();
        }

        static synchronized void put(Key key, byte[] vmlinux) {
            PAYLOADS.put(key, new java.lang.ref.SoftReference<>(vmlinux));
        }
    }

    /**
     * What an xz or lzma decoder may take, in KiB: xz-java allocates the whole dictionary the stream's header names,
     * up to 4 GiB, whatever it decodes. A dictionary is never read beyond the output, but Linux's are fixed
     * (32 MiB for xz, up to 64 MiB for lzma -9) whatever the kernel's size, so the output's size or 64 MiB,
     * whichever is larger, plus the decoder's tables (up to 6 MiB for lzma's literal coder).
     */
    static int dictionaryLimitKiB(long expected) {
        return (int) ((Math.max(expected, MAX_DICTIONARY) + (8 << 20)) >> 10);
    }

    /** The dictionary every payload may have, whatever its size: Linux's own lzma -9 uses 64 MiB. */
    static final long MAX_DICTIONARY = 64 << 20;

    private static long mib(long bytes) {
        return (bytes + (1 << 20) - 1) >> 20;
    }

    /**
     * The decompressed bytes, never more than the trailer's size: the array grows as output arrives (doubling,
     * from a guess at the compression ratio), so a payload that claims much and yields little costs little, and
     * one that yields more than it claims is stopped at the claim.
     */
    private static final class Output {
        /** Kernels compress 3-5x; a first array of 8x the payload usually holds the whole vmlinux. */
        private static final int FIRST_GUESS_RATIO = 8;

        private final int expected;
        private final Format format;
        private byte[] buf;
        private int size;

        Output(int expected, int payloadLength, Format format) {
            this.expected = expected;
            this.format = format;
            this.buf = new byte[(int) Math.min(expected, Math.max(1 << 20, (long) payloadLength * FIRST_GUESS_RATIO))];
        }

        void readAll(InputStream in) throws IOException {
            try (in) {
                while (true) {
                    if (size == buf.length && !grow()) {
                        if (in.read() >= 0) throw tooLong();
                        return;
                    }
                    int n = in.read(buf, size, buf.length - size);
                    if (n < 0) return;
                    size += n;
                }
            }
        }

        /** Room for more, up to the claimed size; false when the array already holds that much. */
        private boolean grow() {
            if (buf.length == expected) return false;
            buf = java.util.Arrays.copyOf(buf, (int) Math.min(expected, 2L * buf.length));
            return true;
        }

        private BootException tooLong() {
            return new BootException(
                    Kind.BAD_COMPRESSION,
                    "the bzImage's " + format + " payload decompresses to more than the " + expected
                            + " bytes its trailer says");
        }

        byte[] finish() {
            if (size != expected)
                throw new BootException(
                        Kind.BAD_COMPRESSION,
                        "the bzImage's " + format + " payload decompressed to " + size + " bytes, not the " + expected
                                + " its trailer says");
            return buf.length == size ? buf : java.util.Arrays.copyOf(buf, size);
        }
    }

    /**
     * The lz4 "legacy" frame Linux uses: magic, then blocks of (u32 compressed size, data) until the size field is
     * absent.
     */
    private static void lz4Legacy(byte[] payload, Output out) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
        b.position(4);
        while (b.remaining() >= 4) {
            int size = b.getInt();
            if (size == 0x184c2102) continue; // a second magic starts a new legacy stream
            if (size < 0 || size > b.remaining())
                throw new IOException("lz4 block of " + size + " bytes runs past the payload");
            out.readAll(new BlockLZ4CompressorInputStream(new ByteArrayInputStream(payload, b.position(), size)));
            b.position(b.position() + size);
        }
    }
}
