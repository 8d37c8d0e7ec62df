package dev.jvmm.devices.block.qcow2;

import static dev.jvmm.devices.block.qcow2.QemuTools.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.ImageFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.LongPredicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Host failures under a qcow2 image: chosen writes and syncs fail, and a failed sync drops what it did not
 * make durable (as Linux drops pages whose writeback failed, and reports it once). The caller gets an
 * I/O error for each, the image's tables in memory stay what the file says, a failed flush stays failed, and
 * no write a successful flush acknowledged is ever lost.
 */
class Qcow2FaultInjectionTest {
    @TempDir
    Path dir;

    static final int CS = 65536;

    /**
     * Fails the write number {@code failWrite} or the write the predicate picks (nothing of it written), or the
     * sync number {@code failSync}; a failed sync first puts the file back as the last successful sync left it.
     */
    static final class LosingDisk implements ImageFile.Faults {
        final Path path;
        final int failWrite, failSync;
        LongPredicate failWriteAt = off -> false;
        int writes, syncs;
        boolean triggered;
        byte[] durable;

        LosingDisk(Path path, int failWrite, int failSync) throws IOException {
            this.path = path;
            this.failWrite = failWrite;
            this.failSync = failSync;
            this.durable = Files.readAllBytes(path);
        }

        @Override
        public void beforeWrite(long offset, long length) throws IOException {
            if (++writes == failWrite || failWriteAt.test(offset)) {
                triggered = true;
                throw new IOException("injected EIO writing " + length + " bytes at " + offset);
            }
        }

        @Override
        public void beforeSync() throws IOException {
            if (++syncs == failSync) {
                triggered = true;
                Files.write(path, durable); // the pages that failed writeback are gone
                throw new IOException("injected EIO in fdatasync #" + syncs);
            }
            durable = Files.readAllBytes(path);
        }
    }

    static MemorySegment sectors(int n, int fill) {
        byte[] b = new byte[512 * n];
        Arrays.fill(b, (byte) fill);
        return MemorySegment.ofArray(b);
    }

    static byte[] read(Qcow2Image q, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        q.read(offset, MemorySegment.ofArray(b));
        return b;
    }

    static void assertCleanOrLeaks(Path p) throws Exception {
        Result r = run("qemu-img", "check", p.toString());
        assertTrue(r.exit() == 0 || r.exit() == 3, "qemu-img check exit " + r.exit() + ":\n" + r.out());
        assertFalse(r.out().contains("ERROR"), r.out());
    }

    Path image(String name) throws IOException {
        Path p = dir.resolve(name);
        Qcow2Creator.create(p, Qcow2Creator.Options.of(8 << 20));
        return p;
    }

    @Test
    void aFailedFlushStaysFailedAndTheImageTakesNoMoreWrites() throws Exception {
        requireQemu();
        Path p = image("f.qcow2");
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            q.write(0, sectors(8, 0x11));
            q.flush();
            LosingDisk disk = new LosingDisk(p, -1, 1);
            q.file.imageFile().injectFaults(disk);
            q.write(CS, sectors(8, 0x22));
            assertThrows(IOException.class, q::flush);
            disk.beforeSync(); // the host's next fdatasync would succeed, as Linux's does after reporting once
            IOException again = assertThrows(IOException.class, q::flush, "a failed flush stays failed");
            assertEquals(1, again.getMessage().lines().count(), again.getMessage());
            IOException write = assertThrows(IOException.class, () -> q.write(0, sectors(1, 0x33)));
            assertTrue(write.getMessage().contains("no more writes"), write.getMessage());
            assertEquals(0x11, read(q, 0, 1)[0], "reads go on");
        }
        assertCleanOrLeaks(p);
        try (Qcow2Image q = Qcow2Image.open(p, true)) {
            assertEquals(0x11, read(q, 0, 1)[0], "the flushed write survived");
        }
    }

    @Test
    void aFailedL2UpdateLeavesTheCachedTableAsTheFileHasIt() throws Exception {
        requireQemu();
        Path p = image("l2.qcow2");
        long l2;
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            q.write(0, sectors(1, 0x11)); // makes the L2 table
            q.flush();
            l2 = q.l1[0] & Qcow2Image.L1_OFFSET_MASK;
            LosingDisk disk = new LosingDisk(p, -1, -1);
            disk.failWriteAt = off -> off >= l2 && off < l2 + CS; // every write into the L2 table
            q.file.imageFile().injectFaults(disk);
            assertThrows(IOException.class, () -> q.write(3L * CS, sectors(1, 0x22)));
            assertTrue(disk.triggered);
            assertArrayEquals(new byte[512], read(q, 3L * CS, 512), "the guest range still reads as the file maps it");
            assertThrows(IOException.class, () -> q.write(0, sectors(1, 0x33)), "the image takes no more writes");
            q.file.imageFile().injectFaults(null);
        }
        assertCleanOrLeaks(p);
        try (Qcow2Image q = Qcow2Image.open(p, true)) {
            assertArrayEquals(new byte[512], read(q, 3L * CS, 512));
            assertEquals(0x11, read(q, 0, 1)[0]);
        }
    }

    @Test
    void aFailedRefcountUpdateLeavesTheCachedBlockAsTheFileHasIt() throws Exception {
        requireQemu();
        Path p = image("rc.qcow2");
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            long block = q.refcounts.table[0];
            long end = Files.size(p) / CS; // the first free cluster
            LosingDisk disk = new LosingDisk(p, -1, -1);
            disk.failWriteAt = off -> off >= block && off < block + CS;
            q.file.imageFile().injectFaults(disk);
            assertThrows(IOException.class, () -> q.write(0, sectors(1, 0x22)));
            assertEquals(0, q.refcounts.get(end), "the cached refcount is the file's");
            ByteBuffer onDisk = ByteBuffer.wrap(Files.readAllBytes(p));
            assertEquals(0, onDisk.getShort((int) (block + 2 * end)));
            assertThrows(IOException.class, () -> q.write(0, sectors(1, 0x33)));
            q.file.imageFile().injectFaults(null);
        }
        assertCleanOrLeaks(p);
    }

    /** One operation of the random workload, as CrashWriter makes them: kind 0 data, 1 write zeroes, 2 discard. */
    record Op(int kind, long sector, int sectors) {}

    @Test
    void randomFaultsNeverLoseAnAcknowledgedWrite() throws Exception {
        requireQemu();
        long size = 2L << 20;
        int sizeSectors = (int) (size / 512);
        byte[] baseData = new byte[(int) size];
        new Random(7).nextBytes(baseData);
        Files.write(dir.resolve("base.raw"), baseData);
        Random master = new Random(20260113);
        int surfaced = 0;
        for (int run = 0; run < 24; run++) {
            Path p = dir.resolve("run" + run + ".qcow2");
            Qcow2Creator.Options o = switch (run % 4) {
                case 0 -> Qcow2Creator.Options.of(size).withClusterSize(4096);
                case 1 -> Qcow2Creator.Options.of(size).withClusterSize(512).withRefcountBits(64);
                case 2 -> Qcow2Creator.Options.of(size).withExtendedL2(true).withClusterSize(16384);
                default -> Qcow2Creator.Options.of(size).withVersion(2).withClusterSize(8192);
            };
            boolean withBacking = run % 2 == 1;
            if (withBacking) o = o.withBacking("base.raw", "raw");
            Qcow2Creator.create(p, o);
            Random r = new Random(master.nextLong());
            boolean failASync = r.nextBoolean();
            LosingDisk disk =
                    new LosingDisk(p, failASync ? -1 : 1 + r.nextInt(300), failASync ? 1 + r.nextInt(40) : -1);

            // Per sector: what a successful flush acknowledged (a set: a failed write may or may not have landed)
            // and what was written since; tag 0 is zeroes, -1 the initial content, n > 0 operation n's data.
            List<Set<Long>> acked = new ArrayList<>(), current = new ArrayList<>(), since = new ArrayList<>();
            for (int s = 0; s < sizeSectors; s++) {
                acked.add(Set.of(withBacking ? -1L : 0L));
                current.add(acked.get(s));
                since.add(new HashSet<>());
            }
            byte[] buf = new byte[512 * 300];
            boolean surfacedHere = false;
            try (Qcow2Image q = Qcow2Image.open(p, false)) {
                q.file.imageFile().injectFaults(disk);
                for (long i = 1; i <= 400; i++) {
                    int kind = r.nextInt(10) < 7 ? 0 : 1 + r.nextInt(2);
                    int n = 1 + (r.nextBoolean() ? r.nextInt(16) : r.nextInt(200));
                    long sector = (long) (r.nextDouble() * (sizeSectors - n));
                    boolean before = disk.triggered, ok = true;
                    try {
                        if (kind == 0) {
                            for (int s = 0; s < n; s++) CrashWriter.fillSector(buf, s * 512, i, sector + s);
                            q.write(sector * 512, MemorySegment.ofArray(buf).asSlice(0, n * 512L));
                        } else if (kind == 1) {
                            q.writeZeroes(sector * 512, n * 512L, false);
                        } else {
                            q.discard(sector * 512, n * 512L);
                        }
                    } catch (IOException e) {
                        ok = false;
                    }
                    if (disk.triggered && !before) {
                        assertFalse(ok, "run " + run + ": the injected failure reached the caller of op " + i);
                        surfacedHere = true;
                    }
                    long tag = kind == 0 ? i : 0;
                    for (long s = sector; s < sector + n; s++) {
                        since.get((int) s).add(tag);
                        if (ok) current.set((int) s, Set.of(tag));
                        else current.set((int) s, union(current.get((int) s), tag));
                    }
                    if (i % 8 == 0) {
                        before = disk.triggered;
                        boolean flushed = true;
                        try {
                            q.flush();
                            for (int s = 0; s < sizeSectors; s++) {
                                acked.set(s, current.get(s));
                                since.get(s).clear();
                            }
                        } catch (IOException e) {
                            flushed = false;
                        }
                        if (disk.triggered && !before) {
                            assertFalse(flushed, "run " + run + ": the failed sync reached the flush's caller");
                            surfacedHere = true;
                        }
                    }
                }
                q.file.imageFile().injectFaults(null);
            } catch (IOException closing) {
                // closing may report the failure again
            }
            if (disk.triggered) {
                assertTrue(surfacedHere, "run " + run + ": the injected failure surfaced");
                surfaced++;
            }
            assertCleanOrLeaks(p);
            byte[] actual = qemuRaw(p, dir);
            byte[] sectorBuf = new byte[512];
            for (int s = 0; s < sizeSectors; s++) {
                Set<Long> allowed = new HashSet<>(acked.get(s));
                allowed.addAll(since.get(s));
                long tag = tagOf(actual, s, baseData, sectorBuf);
                assertTrue(
                        allowed.contains(tag),
                        "run " + run + " (" + o + "): sector " + s + " holds " + tag + ", but only " + allowed
                                + " may be there (acknowledged: " + acked.get(s) + ")");
            }
        }
        assertTrue(surfaced >= 12, "most runs hit their fault: " + surfaced);
    }

    static Set<Long> union(Set<Long> a, long tag) {
        Set<Long> u = new HashSet<>(a);
        u.add(tag);
        return u;
    }

    /** Which write a sector's content came from: 0 zeroes, -1 the initial content, n operation n, MIN_VALUE none. */
    static long tagOf(byte[] image, int sector, byte[] base, byte[] scratch) {
        int at = sector * 512;
        boolean zero = true;
        for (int k = at; k < at + 512 && zero; k++) zero = image[k] == 0;
        if (zero) return 0;
        if (Arrays.equals(image, at, at + 512, base, at, at + 512)) return -1;
        long op = ByteBuffer.wrap(image, at, 8).getLong();
        if (op <= 0 || op > 400) return Long.MIN_VALUE;
        CrashWriter.fillSector(scratch, 0, op, sector);
        return Arrays.equals(image, at, at + 512, scratch, 0, 512) ? op : Long.MIN_VALUE;
    }
}
