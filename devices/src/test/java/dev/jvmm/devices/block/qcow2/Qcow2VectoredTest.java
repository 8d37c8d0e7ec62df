package dev.jvmm.devices.block.qcow2;

import static dev.jvmm.devices.block.qcow2.QemuTools.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Scatter-gather reads and writes of a qcow2 image whose clusters are of every kind (data, zero, compressed,
 * unallocated over a raw backing file, unallocated past the backing file's end), with qemu-img as the oracle.
 */
class Qcow2VectoredTest extends QemuOracleTestBase {
    static final long SIZE = 1L << 20;
    static final int BACKING = (int) SIZE - 96 * 1024; // shorter than the overlay: its last clusters read zero

    static List<String> layouts() {
        return List.of(
                "cluster_size=4096",
                "cluster_size=65536",
                "compat=0.10,cluster_size=4096",
                "cluster_size=65536,extended_l2=on");
    }

    Path image(String options) throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] pattern = new byte[BACKING];
        new Random(7).nextBytes(pattern);
        Files.write(base, pattern);
        Path img = dir.resolve("top.qcow2");
        createQcow2(img, SIZE, "-o", options, "-b", "base.raw", "-F", "raw");
        qemuIo(
                img,
                "write -P 0xa1 64k 20k",
                "write -P 0xa2 88k 8k",
                "write -z 128k 16k",
                "write -c -P 0xc3 192k 64k",
                "write -P 0xa4 300k 2k",
                "write -P 0xa5 940k 12k");
        return img;
    }

    /** Pieces of 1 to 5000 bytes (some empty) covering buf: they straddle every cluster and subcluster edge. */
    static List<MemorySegment> scatter(MemorySegment buf, long seed) {
        Random r = new Random(seed);
        List<MemorySegment> out = new ArrayList<>();
        for (long pos = 0; pos < buf.byteSize(); ) {
            int n = (int) Math.min(buf.byteSize() - pos, r.nextInt(10) == 0 ? 0 : 1 + r.nextInt(5000));
            out.add(buf.asSlice(pos, n));
            pos += n;
        }
        return out;
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void scatterReadSpanningClustersOfEveryKind(String options) throws Exception {
        Path img = image(options);
        byte[] expected = qemuRaw(img, dir);
        try (Qcow2Image q = Qcow2Image.open(img, true);
                Arena arena = Arena.ofConfined()) {
            long from = 60 * 1024 + 511, len = SIZE - from - 3;
            MemorySegment dst = arena.allocate(len).fill((byte) 0x5a);
            q.readv(from, scatter(dst, 1));
            assertArrayEquals(
                    Arrays.copyOfRange(expected, (int) from, (int) (from + len)), dst.toArray(ValueLayout.JAVA_BYTE));
        }
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void gatherWriteSpanningClustersOfEveryKind(String options) throws Exception {
        Path img = image(options);
        byte[] expected = qemuRaw(img, dir);
        byte[] data = new byte[700 * 1024 + 123];
        new Random(3).nextBytes(data);
        long at = 50 * 1024 + 7; // starts mid-cluster over backing data, ends mid-cluster in the unallocated tail
        try (Qcow2Image q = Qcow2Image.open(img, false);
                Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(data.length);
            MemorySegment.copy(data, 0, src, ValueLayout.JAVA_BYTE, 0, data.length);
            q.writev(at, scatter(src, 2));
            // Then over what it just allocated (owned clusters: the in-place path), in other pieces.
            byte[] again = new byte[100 * 1024];
            new Random(4).nextBytes(again);
            MemorySegment src2 = arena.allocate(again.length);
            MemorySegment.copy(again, 0, src2, ValueLayout.JAVA_BYTE, 0, again.length);
            q.writev(at + 4096, scatter(src2, 5));
            q.flush();
            System.arraycopy(data, 0, expected, (int) at, data.length);
            System.arraycopy(again, 0, expected, (int) at + 4096, again.length);

            MemorySegment back = arena.allocate(SIZE).fill((byte) 0x5a);
            q.readv(0, scatter(back, 6));
            assertArrayEquals(expected, back.toArray(ValueLayout.JAVA_BYTE), "jvmm reads back what it wrote");
        }
        assertArrayEquals(expected, qemuRaw(img, dir), "qemu-img reads what jvmm wrote");
        assertCheckClean(img);
    }
}
