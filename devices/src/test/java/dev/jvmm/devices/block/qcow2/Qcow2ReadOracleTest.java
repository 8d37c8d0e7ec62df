package dev.jvmm.devices.block.qcow2;

import static dev.jvmm.devices.block.qcow2.QemuTools.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Images made by qemu-img and qemu-io read through jvmm exactly as `qemu-img convert -O raw` reads them. */
class Qcow2ReadOracleTest extends QemuOracleTestBase {
    static final long SIZE = 6L << 20;

    static Stream<Arguments> formats() {
        return Stream.of(
                Arguments.of("compat=0.10,cluster_size=65536"),
                Arguments.of("compat=0.10,cluster_size=512"),
                Arguments.of("compat=1.1,cluster_size=512,refcount_bits=1"),
                Arguments.of("compat=1.1,cluster_size=4096,refcount_bits=2"),
                Arguments.of("compat=1.1,cluster_size=16384,refcount_bits=8"),
                Arguments.of("compat=1.1,cluster_size=65536,refcount_bits=16"),
                Arguments.of("compat=1.1,cluster_size=65536,refcount_bits=64"),
                Arguments.of("compat=1.1,cluster_size=2097152,refcount_bits=32"),
                Arguments.of("compat=1.1,cluster_size=65536,extended_l2=on"),
                Arguments.of("compat=1.1,cluster_size=16384,extended_l2=on"),
                Arguments.of("compat=1.1,cluster_size=65536,lazy_refcounts=on"));
    }

    /** Data writes at odd offsets, zero writes (with and without unmap), discards. */
    @ParameterizedTest
    @MethodSource("formats")
    void writtenByQemuIo(String options) throws Exception {
        Path img = dir.resolve("a.qcow2");
        createQcow2(img, SIZE, "-o", options);
        qemuIo(
                img,
                "write -P 0xa1 0 100k",
                "write -P 0xb2 777k 3000",
                "write -P 0xc3 1m 1m",
                "write -z 1200k 300k",
                "write -z -u 1600k 64k",
                "discard 1800k 128k",
                "write -P 0xd4 5m 4k",
                "write -P 0xe5 6141k 3k");
        assertSameAsQemu(img);
    }

    @ParameterizedTest
    @MethodSource("formats")
    void backingChainRawAndQcow2(String options) throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] pattern = new byte[(int) SIZE - 1024 * 1024]; // shorter than the overlay: the rest reads zero
        new Random(1).nextBytes(pattern);
        Files.write(base, pattern);
        Path mid = dir.resolve("sub/mid.qcow2");
        Files.createDirectories(mid.getParent());
        // Relative names resolve against the image's own directory.
        createQcow2(mid, SIZE, "-o", options, "-b", "../base.raw", "-F", "raw");
        qemuIo(mid, "write -P 0x11 64k 64k", "write -z 300k 100k", "write -P 0x12 2001k 5k");
        Path top = dir.resolve("sub/top.qcow2");
        createQcow2(top, 0, "-o", options, "-b", "mid.qcow2", "-F", "qcow2");
        qemuIo(top, "write -P 0x21 100k 50k", "discard 2m 128k", "write -z 4m 8k", "write -P 0x22 6100k 44k");
        assertSameAsQemu(top);
        assertSameAsQemu(mid);
    }

    @ParameterizedTest
    @MethodSource("compression")
    void compressedClusters(String options) throws Exception {
        Path raw = dir.resolve("src.raw");
        byte[] data = mixedContent(SIZE);
        Files.write(raw, data);
        Path img = dir.resolve("c.qcow2");
        ok("qemu-img", "convert", "-c", "-O", "qcow2", "-o", options, raw.toString(), img.toString());
        byte[] got = readAll(img);
        assertArrayEquals(data, got, "decompressed content differs from the source");
        assertSameAsQemu(img);
    }

    static Stream<Arguments> compression() {
        return Stream.of(
                Arguments.of("compression_type=zlib,cluster_size=65536"),
                Arguments.of("compression_type=zlib,cluster_size=4096"),
                Arguments.of("compression_type=zlib,cluster_size=2097152"),
                Arguments.of("compat=0.10,cluster_size=65536"),
                Arguments.of("compression_type=zstd,cluster_size=65536"),
                Arguments.of("compression_type=zstd,cluster_size=512"),
                Arguments.of("compression_type=zstd,cluster_size=65536,extended_l2=on"));
    }

    @Test
    void internalSnapshotsListedAndReadable() throws Exception {
        Path img = dir.resolve("s.qcow2");
        createQcow2(img, SIZE);
        qemuIo(img, "write -P 0x01 0 1m");
        ok("qemu-img", "snapshot", "-c", "first", img.toString());
        qemuIo(img, "write -P 0x02 512k 1m");
        ok("qemu-img", "snapshot", "-c", "second", img.toString());
        qemuIo(img, "write -z 0 256k");
        try (Qcow2Image q = Qcow2Image.open(img, true)) {
            assertEquals(2, q.snapshots().size());
            assertEquals("first", q.snapshots().get(0).name());
            assertEquals("second", q.snapshots().get(1).name());
        }
        for (String snap : new String[] {"first", "second"}) {
            Path raw = dir.resolve(snap + ".raw");
            ok("qemu-img", "convert", "-l", "snapshot.name=" + snap, "-O", "raw", img.toString(), raw.toString());
            try (Qcow2Image q = Qcow2Image.openSnapshot(img, snap)) {
                byte[] got = new byte[(int) q.size()];
                q.read(0, MemorySegment.ofArray(got));
                assertArrayEquals(Files.readAllBytes(raw), got, "snapshot " + snap);
            }
        }
        assertSameAsQemu(img);
    }

    static byte[] mixedContent(long size) {
        byte[] data = new byte[(int) size];
        Random r = new Random(7);
        byte[] text = "the quick brown fox jumps over the lazy dog 0123456789\n".getBytes(StandardCharsets.US_ASCII);
        for (int off = 0; off < data.length; off += 64 * 1024) {
            int kind = (off / (64 * 1024)) % 4;
            int end = Math.min(data.length, off + 64 * 1024);
            for (int i = off; i < end; i++) {
                data[i] = switch (kind) {
                    case 0 -> text[(i + r.nextInt(3)) % text.length];
                    case 1 -> (byte) r.nextInt();
                    case 2 -> 0;
                    default -> (byte) (i % 7 == 0 ? r.nextInt(4) : 0);
                };
            }
        }
        return data;
    }

    static byte[] readAll(Path img) throws Exception {
        try (Qcow2Image q = Qcow2Image.open(img, true)) {
            byte[] got = new byte[(int) q.size()];
            // Odd chunk sizes cross cluster and subcluster boundaries.
            int chunk = 12345 * 3;
            for (long off = 0; off < got.length; off += chunk) {
                int n = (int) Math.min(chunk, got.length - off);
                q.read(off, MemorySegment.ofArray(got).asSlice(off, n));
            }
            return got;
        }
    }

    void assertSameAsQemu(Path img) throws Exception {
        byte[] expected = qemuRaw(img, dir);
        byte[] got = readAll(img);
        assertEquals(expected.length, got.length);
        if (!Arrays.equals(expected, got)) {
            int i = Arrays.mismatch(expected, got);
            fail(img + ": first difference at byte " + i + " (expected " + expected[i] + ", got " + got[i] + ")");
        }
    }
}
