package dev.jvmm.boot.loader;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import io.airlift.compress.zstd.ZstdCompressor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.compressors.bzip2.BZip2CompressorOutputStream;
import org.apache.commons.compress.compressors.lz4.BlockLZ4CompressorOutputStream;
import org.junit.jupiter.api.Test;
import org.tukaani.xz.LZMA2Options;
import org.tukaani.xz.LZMAOutputStream;
import org.tukaani.xz.XZOutputStream;

/** Every payload format Linux builds, round-tripped, with the 4-byte size Linux appends after the stream. */
class PayloadDecompressorTest {
    private static final byte[] DATA = sample();

    private static byte[] sample() {
        byte[] b = new byte[300_000];
        Random r = new Random(42);
        for (int i = 0; i < b.length; i++) b[i] = (byte) (i % 97 == 0 ? r.nextInt() : i / 1000);
        return b;
    }

    private interface Wrap {
        OutputStream wrap(OutputStream out) throws IOException;
    }

    private static byte[] compress(Wrap w) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (OutputStream o = w.wrap(bos)) {
            o.write(DATA);
        }
        bos.writeBytes(ByteBuffer.allocate(4)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(DATA.length)
                .array());
        return bos.toByteArray();
    }

    private static void roundTrip(PayloadDecompressor.Format f, byte[] payload) {
        assertEquals(f, PayloadDecompressor.detect(payload));
        assertArrayEquals(DATA, PayloadDecompressor.decompress(payload), f.name());
    }

    @Test
    void gzip() throws IOException {
        roundTrip(PayloadDecompressor.Format.GZIP, compress(GZIPOutputStream::new));
    }

    @Test
    void aPayloadDecompressedAgainGivesTheSameBytesAndACopyOfItsOwn() throws IOException {
        byte[] payload = compress(GZIPOutputStream::new);
        byte[] first = PayloadDecompressor.decompress(payload);
        first[0] ^= 1; // the caller's copy is its own: changing it changes nothing remembered
        byte[] second = PayloadDecompressor.decompress(payload);
        assertArrayEquals(DATA, second);
        assertArrayEquals(DATA, PayloadDecompressor.decompress(payload));
        // A remembered payload is still refused where it does not fit.
        BootException e = assertThrows(BootException.class, () -> PayloadDecompressor.decompress(payload, 4096));
        assertEquals(BootException.Kind.KERNEL_DOES_NOT_FIT, e.kind());
    }

    @Test
    void bzip2() throws IOException {
        roundTrip(PayloadDecompressor.Format.BZIP2, compress(BZip2CompressorOutputStream::new));
    }

    @Test
    void xz() throws IOException {
        roundTrip(PayloadDecompressor.Format.XZ, compress(o -> new XZOutputStream(o, new LZMA2Options())));
    }

    @Test
    void lzma() throws IOException {
        roundTrip(PayloadDecompressor.Format.LZMA, compress(o -> new LZMAOutputStream(o, new LZMA2Options(), -1)));
    }

    @Test
    void zstd() {
        ZstdCompressor c = new ZstdCompressor();
        byte[] out = new byte[c.maxCompressedLength(DATA.length) + 4];
        int n = c.compress(DATA, 0, DATA.length, out, 0, out.length - 4);
        ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putInt(n, DATA.length);
        roundTrip(PayloadDecompressor.Format.ZSTD, java.util.Arrays.copyOf(out, n + 4));
    }

    @Test
    void lz4LegacyFramesOfSeveralBlocks() throws IOException {
        // Linux's lz4 legacy format: magic, then (u32 size, block) pairs of at most 8 MiB input each.
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        bos.writeBytes(new byte[] {0x02, 0x21, 0x4c, 0x18});
        int half = DATA.length / 2;
        for (int[] range : new int[][] {{0, half}, {half, DATA.length}}) {
            ByteArrayOutputStream block = new ByteArrayOutputStream();
            try (OutputStream o = new BlockLZ4CompressorOutputStream(block)) {
                o.write(DATA, range[0], range[1] - range[0]);
            }
            bos.writeBytes(ByteBuffer.allocate(4)
                    .order(ByteOrder.LITTLE_ENDIAN)
                    .putInt(block.size())
                    .array());
            bos.writeBytes(block.toByteArray());
        }
        bos.writeBytes(ByteBuffer.allocate(4)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(DATA.length)
                .array());
        roundTrip(PayloadDecompressor.Format.LZ4, bos.toByteArray());
    }

    @Test
    void corruptOrUnknownPayloadsGetOneClearError() throws IOException {
        byte[] gz = compress(GZIPOutputStream::new);
        for (int i = 20; i < 60; i++) gz[i] ^= 0x5a;
        BootException e = assertThrows(BootException.class, () -> PayloadDecompressor.decompress(gz));
        assertEquals(Kind.BAD_COMPRESSION, e.kind(), e.getMessage());
        BootException unknown =
                assertThrows(BootException.class, () -> PayloadDecompressor.decompress(new byte[] {9, 9, 9, 9}));
        assertEquals(Kind.UNKNOWN_COMPRESSION, unknown.kind(), unknown.getMessage());
        BootException lzo = assertThrows(
                BootException.class,
                () -> PayloadDecompressor.decompress(new byte[] {(byte) 0x89, 'L', 'Z', 'O', 0, 0, 0, 0, 0, 0}));
        assertEquals(Kind.BOOT_PATH_UNSUPPORTED, lzo.kind(), lzo.getMessage());
    }

    /** A gzip stream of {@code zeros} zero bytes followed by a trailer that claims {@code claimed}. */
    private static byte[] zerosClaiming(int zeros, int claimed) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (OutputStream o = new GZIPOutputStream(bos, 1 << 16)) {
            byte[] chunk = new byte[1 << 20];
            for (int i = 0; i < zeros; i += chunk.length) o.write(chunk, 0, Math.min(chunk.length, zeros - i));
        }
        bos.writeBytes(ByteBuffer.allocate(4)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(claimed)
                .array());
        return bos.toByteArray();
    }

    private static long allocatedBytes() {
        return ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean())
                .getCurrentThreadAllocatedBytes();
    }

    @Test
    void aStreamLongerThanItsTrailerSaysStopsAtTheClaimedSize() throws IOException {
        byte[] bomb = zerosClaiming(64 << 20, 1 << 20); // 64 KiB that inflate to 64 MiB, claiming 1 MiB
        long before = allocatedBytes();
        BootException e = assertThrows(BootException.class, () -> PayloadDecompressor.decompress(bomb));
        long allocated = allocatedBytes() - before;
        assertEquals(Kind.BAD_COMPRESSION, e.kind(), e.getMessage());
        // The heap it took is about the claimed size, not the 64 MiB the stream would have produced.
        assertTrue(allocated < 8 << 20, "allocated " + (allocated >> 20) + " MiB");
    }

    @Test
    void aDictionaryFarLargerThanTheOutputIsRefusedBeforeItIsAllocated() throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (OutputStream o = new LZMAOutputStream(bos, new LZMA2Options(0), -1)) {
            o.write(new byte[100]);
        }
        bos.writeBytes(ByteBuffer.allocate(4)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(100)
                .array());
        byte[] payload = bos.toByteArray();
        ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).putInt(1, 1 << 30); // a 1 GiB dictionary
        long before = allocatedBytes();
        BootException e = assertThrows(BootException.class, () -> PayloadDecompressor.decompress(payload));
        long allocated = allocatedBytes() - before;
        assertEquals(Kind.BAD_COMPRESSION, e.kind(), e.getMessage());
        assertTrue(allocated < 8 << 20, "allocated " + (allocated >> 20) + " MiB");
    }

    @Test
    void aPayloadLargerThanGuestMemoryIsRefusedBeforeDecompressing() throws IOException {
        byte[] big = zerosClaiming(8 << 20, 8 << 20);
        assertEquals(8 << 20, PayloadDecompressor.decompress(big, 8 << 20).length);
        long before = allocatedBytes();
        BootException e = assertThrows(BootException.class, () -> PayloadDecompressor.decompress(big, 4 << 20));
        long allocated = allocatedBytes() - before;
        assertEquals(Kind.KERNEL_DOES_NOT_FIT, e.kind(), e.getMessage());
        assertTrue(allocated < 1 << 20, "allocated " + (allocated >> 10) + " KiB");
    }
}
