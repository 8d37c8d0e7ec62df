package dev.jvmm.devices.block.qcow2;

import static dev.jvmm.devices.block.qcow2.QemuTools.*;
import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Images jvmm writes: `qemu-img check` finds them clean and `qemu-img compare` matches the expected bytes. */
class Qcow2WriteOracleTest extends QemuOracleTestBase {
    static final long SIZE = 6L << 20;

    static Stream<Arguments> layouts() {
        return Stream.of(
                Arguments.of(Qcow2Creator.Options.of(SIZE)),
                Arguments.of(Qcow2Creator.Options.of(SIZE).withVersion(2)),
                Arguments.of(Qcow2Creator.Options.of(SIZE).withClusterSize(512).withRefcountBits(64)),
                Arguments.of(Qcow2Creator.Options.of(SIZE).withClusterSize(512).withRefcountBits(1)),
                Arguments.of(Qcow2Creator.Options.of(SIZE).withClusterSize(4096).withRefcountBits(4)),
                Arguments.of(Qcow2Creator.Options.of(SIZE).withClusterSize(2 << 20)),
                Arguments.of(Qcow2Creator.Options.of(SIZE).withExtendedL2(true)),
                Arguments.of(
                        Qcow2Creator.Options.of(SIZE).withClusterSize(16384).withExtendedL2(true)));
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void randomOperationsWithoutBacking(Qcow2Creator.Options options) throws Exception {
        Path img = dir.resolve("w.qcow2");
        Qcow2Creator.create(img, options);
        assertCheckClean(img);
        byte[] expected = new byte[(int) SIZE];
        exercise(img, expected, new Random(options.hashCode()), 300);
        assertMatches(img, expected);
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void randomOperationsOverBacking(Qcow2Creator.Options options) throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] expected = new byte[(int) SIZE];
        byte[] baseData = new byte[(int) SIZE - 100 * 1024];
        new Random(3).nextBytes(baseData);
        Files.write(base, baseData);
        System.arraycopy(baseData, 0, expected, 0, baseData.length);
        Path img = dir.resolve("over.qcow2");
        Qcow2Creator.create(img, options.withBacking("base.raw", "raw"));
        exercise(img, expected, new Random(options.hashCode() + 1), 300);
        assertMatches(img, expected);
    }

    @Test
    void writesOverQemuSnapshotsAndCompressedClustersCopyThem() throws Exception {
        Path raw = dir.resolve("src.raw");
        byte[] data = Qcow2ReadOracleTest.mixedContent(SIZE);
        Files.write(raw, data);
        Path img = dir.resolve("snap.qcow2");
        ok("qemu-img", "convert", "-c", "-O", "qcow2", raw.toString(), img.toString());
        qemuIo(img, "write -P 0x33 3m 1m");
        ok("qemu-img", "snapshot", "-c", "before", img.toString());
        byte[] snapshotContent = qemuRaw(img, dir);
        byte[] expected = snapshotContent.clone();
        exercise(img, expected, new Random(11), 300);
        assertMatches(img, expected);
        Path snapRaw = dir.resolve("before.raw");
        ok("qemu-img", "convert", "-l", "snapshot.name=before", "-O", "raw", img.toString(), snapRaw.toString());
        assertArrayEquals(snapshotContent, Files.readAllBytes(snapRaw), "the snapshot must be untouched");
    }

    @Test
    void dirtyLazyRefcountImageLeftByACrashedQemuIsRepairedOnOpen() throws Exception {
        Path img = dir.resolve("lazy.qcow2");
        createQcow2(img, SIZE, "-o", "lazy_refcounts=on,cluster_size=4096");
        // qemu-io's abort leaves the image as a crash would: dirty bit set, refcounts not yet written.
        run("qemu-io", "-c", "write -P 0x42 0 1m", "-c", "write -P 0x43 3m 20k", "-c", "abort", img.toString());
        assertEquals(1, Qcow2Image.readHeader(img).incompatibleFeatures & 1, "qemu-io should have left it dirty");
        Result before = run("qemu-img", "check", img.toString());
        assertNotEquals(
                0, before.exit(), "a dirty lazy-refcount image is inconsistent until repaired:\n" + before.out());
        byte[] expected = new byte[(int) SIZE];
        Arrays.fill(expected, 0, 1 << 20, (byte) 0x42);
        Arrays.fill(expected, 3 << 20, (3 << 20) + 20 * 1024, (byte) 0x43);
        exercise(img, expected, new Random(21), 100);
        assertEquals(0, Qcow2Image.readHeader(img).incompatibleFeatures & 1, "the dirty bit is cleared after repair");
        assertMatches(img, expected);
    }

    @Test
    void refcountTableGrowsAndImageGrowsByResize() throws Exception {
        Path img = dir.resolve("grow.qcow2");
        Qcow2Creator.create(
                img, Qcow2Creator.Options.of(1 << 20).withClusterSize(512).withRefcountBits(64));
        long table0 = Qcow2Image.readHeader(img).refcountTableOffset;
        long newSize = 12L << 20;
        try (Qcow2Image q = Qcow2Image.open(img, false)) {
            q.resize(newSize);
        }
        byte[] expected = new byte[(int) newSize];
        Random r = new Random(5);
        r.nextBytes(expected);
        try (Qcow2Image q = Qcow2Image.open(img, false)) {
            assertEquals(newSize, q.size());
            q.write(0, MemorySegment.ofArray(expected));
            q.flush();
        }
        assertNotEquals(table0, Qcow2Image.readHeader(img).refcountTableOffset, "the refcount table should have moved");
        assertMatches(img, expected);
    }

    @Test
    void concurrentWritersAndReaders() throws Exception {
        Path img = dir.resolve("mt.qcow2");
        Path base = dir.resolve("mtbase.raw");
        byte[] expected = new byte[(int) SIZE];
        new Random(9).nextBytes(expected);
        Files.write(base, expected);
        Qcow2Creator.create(
                img, Qcow2Creator.Options.of(SIZE).withClusterSize(4096).withBacking("mtbase.raw", "raw"));
        int threads = 4;
        long stripe = SIZE / threads;
        try (Qcow2Image q = Qcow2Image.open(img, false);
                ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                fs.add(pool.submit(() -> {
                    Random r = new Random(id);
                    for (int i = 0; i < 400; i++) {
                        long off = id * stripe + r.nextInt((int) stripe - 9000);
                        int len = 1 + r.nextInt(9000);
                        byte[] b = new byte[len];
                        r.nextBytes(b);
                        q.write(off, MemorySegment.ofArray(b));
                        System.arraycopy(b, 0, expected, (int) off, len);
                        byte[] back = new byte[len];
                        q.read(off, MemorySegment.ofArray(back));
                        assertArrayEquals(b, back);
                        if (i % 50 == 0) q.flush();
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) f.get();
        }
        assertMatches(img, expected);
    }

    /** Random writes, zero writes and discards through jvmm, mirrored into expected. */
    static void exercise(Path img, byte[] expected, Random r, int ops) throws Exception {
        try (Qcow2Image q = Qcow2Image.open(img, false)) {
            for (int i = 0; i < ops; i++) {
                int kind = r.nextInt(10);
                long off;
                int len;
                if (r.nextBoolean()) {
                    off = r.nextInt((int) (SIZE / 512)) * 512L;
                    len = 512 * (1 + r.nextInt(300));
                } else {
                    off = r.nextInt((int) SIZE);
                    len = 1 + r.nextInt(70000);
                }
                len = (int) Math.min(len, SIZE - off);
                if (len == 0) continue;
                if (kind < 6) {
                    byte[] b = new byte[len];
                    r.nextBytes(b);
                    q.write(off, MemorySegment.ofArray(b));
                    System.arraycopy(b, 0, expected, (int) off, len);
                } else if (kind < 8) {
                    q.writeZeroes(off, len, kind == 7);
                    Arrays.fill(expected, (int) off, (int) off + len, (byte) 0);
                } else if (kind == 8) {
                    q.discard(off, len);
                    Arrays.fill(expected, (int) off, (int) off + len, (byte) 0);
                } else {
                    q.flush();
                }
                if (i % 37 == 0) {
                    byte[] back = new byte[len];
                    q.read(off, MemorySegment.ofArray(back));
                    assertArrayEquals(
                            Arrays.copyOfRange(expected, (int) off, (int) off + len), back, "read-back at " + off);
                }
            }
        }
    }

    void assertMatches(Path img, byte[] expected) throws Exception {
        assertCheckClean(img);
        Path ref = dir.resolve("expected.raw");
        Files.write(ref, expected);
        Result r = run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", ref.toString(), img.toString());
        assertEquals(0, r.exit(), () -> "qemu-img compare: " + r.out());
        assertArrayEquals(expected, Qcow2ReadOracleTest.readAll(img));
    }
}
