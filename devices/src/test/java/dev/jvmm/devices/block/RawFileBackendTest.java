package dev.jvmm.devices.block;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import dev.jvmm.kvm.Libc;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RawFileBackendTest {
    @TempDir
    Path dir;

    Path sparseFile(String name, long size) throws IOException {
        Path p = dir.resolve(name);
        try (var ch = java.nio.channels.FileChannel.open(
                p, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
            ch.truncate(size);
            ch.position(size - 1).write(java.nio.ByteBuffer.wrap(new byte[1]));
        }
        return p;
    }

    @Test
    void writeFlushReadRoundTripThroughNativeSegments() throws Exception {
        Path p = sparseFile("disk.raw", 1 << 20);
        byte[] data = new byte[8192];
        new Random(3).nextBytes(data);
        try (RawFileBackend b = RawFileBackend.open(p, false);
                Arena arena = Arena.ofConfined()) {
            assertEquals(1 << 20, b.size());
            assertFalse(b.readOnly());
            MemorySegment src = arena.allocate(data.length);
            MemorySegment.copy(data, 0, src, ValueLayout.JAVA_BYTE, 0, data.length);
            b.write(4096, src);
            b.flush();
            MemorySegment dst = arena.allocate(data.length);
            b.read(4096, dst);
            assertArrayEquals(data, dst.toArray(ValueLayout.JAVA_BYTE));
        }
        byte[] onDisk = Files.readAllBytes(p);
        assertArrayEquals(
                data, java.util.Arrays.copyOfRange(onDisk, 4096, 4096 + data.length), "the host file holds the bytes");
    }

    @Test
    void heapBuffersWorkLikeNativeOnes() throws Exception {
        // Tools (jvmm img, a qcow2 image reading its raw backing file) pass byte[] views, larger than the bounce
        // buffer.
        Path p = sparseFile("disk.raw", 4 << 20);
        byte[] data = new byte[(2 << 20) + 4096];
        new Random(5).nextBytes(data);
        try (RawFileBackend b = RawFileBackend.open(p, false)) {
            b.write(512, MemorySegment.ofArray(data));
            byte[] back = new byte[data.length];
            b.read(512, MemorySegment.ofArray(back));
            assertArrayEquals(data, back);
            byte[] tail = new byte[1024];
            b.read((4 << 20) - 1024, MemorySegment.ofArray(tail).asSlice(0, 1024));
            assertArrayEquals(new byte[1024], tail);
        }
        assertArrayEquals(data, java.util.Arrays.copyOfRange(Files.readAllBytes(p), 512, 512 + data.length));
    }

    @Test
    void discardPunchesHolesAndKeepsTheSize() throws Exception {
        Path p = sparseFile("disk.raw", 4 << 20);
        try (RawFileBackend b = RawFileBackend.open(p, false);
                Arena arena = Arena.ofConfined()) {
            MemorySegment ones = arena.allocate(1 << 20).fill((byte) 1);
            b.write(1 << 20, ones);
            b.flush();
            assertFalse(SparseFiles.isHole(p, 1 << 20, 1 << 20));
            b.discard(1 << 20, 1 << 20);
            assertTrue(SparseFiles.isHole(p, 1 << 20, 1 << 20), "discarded range is a hole: the file stays sparse");
            MemorySegment back = arena.allocate(4096).fill((byte) 9);
            b.read((1 << 20) + 8192, back);
            assertEquals(-1, back.mismatch(arena.allocate(4096)), "reads as zeroes");
            assertEquals(4 << 20, Files.size(p), "size kept");
        }
    }

    @Test
    void writeZeroesWithAndWithoutUnmap() throws Exception {
        Path p = sparseFile("disk.raw", 4 << 20);
        try (RawFileBackend b = RawFileBackend.open(p, false);
                Arena arena = Arena.ofConfined()) {
            b.write(0, arena.allocate(2 << 20).fill((byte) 7));
            b.writeZeroes(0, 1 << 20, false);
            b.writeZeroes(1 << 20, 1 << 20, true);
            assertTrue(SparseFiles.isHole(p, 1 << 20, 1 << 20), "mayUnmap lets the range become a hole");
            MemorySegment back = arena.allocate(2 << 20).fill((byte) 9);
            b.read(0, back);
            assertEquals(-1, back.mismatch(arena.allocate(2 << 20)), "both ranges read as zeroes");
        }
    }

    @Test
    void sizeIsRoundedDownToWholeSectors() throws Exception {
        Path p = dir.resolve("odd.raw");
        Files.write(p, new byte[1000]);
        try (RawFileBackend b = RawFileBackend.open(p, true)) {
            assertEquals(512, b.size());
            assertTrue(b.readOnly());
            assertThrows(IOException.class, () -> b.write(0, MemorySegment.ofArray(new byte[512])));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> b.read(512, MemorySegment.ofArray(new byte[512])),
                    "beyond size");
        }
    }

    @Test
    void missingFileNamesThePath() {
        IOException e = assertThrows(IOException.class, () -> RawFileBackend.open(dir.resolve("nope.raw"), false));
        assertTrue(e.getMessage().contains("nope.raw") && e.getMessage().contains("ENOENT"), e.getMessage());
    }

    /** A tiny tmpfs: writing past its capacity fails with ENOSPC on the host. */
    Path tinyTmpfs() throws Exception {
        Path mnt = Files.createDirectories(dir.resolve("tiny"));
        Process proc = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt.toString())
                .redirectErrorStream(true)
                .start();
        boolean ok = proc.waitFor(10, TimeUnit.SECONDS) && proc.exitValue() == 0;
        Assumptions.assumeTrue(
                ok,
                "skipped: cannot mount a tmpfs here (needs root): "
                        + new String(proc.getInputStream().readAllBytes()));
        return mnt;
    }

    static void unmount(Path mnt) throws Exception {
        new ProcessBuilder("umount", mnt.toString()).start().waitFor(10, TimeUnit.SECONDS);
    }

    static Path sparseImage(Path p, long size) throws IOException {
        try (var f = new java.io.RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size); // sparse: may be larger than the file system
        }
        return p;
    }

    @Test
    void enospcBecomesAnIoExceptionNamingErrno() throws Exception {
        Path mnt = tinyTmpfs();
        try {
            Path img = sparseImage(mnt.resolve("disk.raw"), 1 << 20);
            try (RawFileBackend b = RawFileBackend.open(img, false);
                    Arena arena = Arena.ofConfined()) {
                IOException e = assertThrows(IOException.class, () -> b.write(0, arena.allocate(512 << 10)));
                assertTrue(e.getMessage().contains("ENOSPC") && e.getMessage().contains("disk.raw"), e.getMessage());
            }
        } finally {
            unmount(mnt);
        }
    }

    @Test
    void hostEnospcReachesTheGuestAsIoErrAndTheDeviceCarriesOn() throws Exception {
        Path mnt = tinyTmpfs();
        try (GuestRam ram = new GuestRam()) {
            RawFileBackend backend = RawFileBackend.open(sparseImage(mnt.resolve("disk.raw"), 1 << 20), false);
            try (TestDriver drv = Transport.MMIO.attach(ram, new VirtioBlock(backend, VirtioBlock.Options.DEFAULT))) {
                DriverQueue q = new DriverQueue(ram, 16);
                drv.init(VirtioFeatures.bit(VirtioFeatures.VERSION_1) | (1L << VirtioBlock.F_FLUSH), q);
                long big = ram.alloc(256 << 10, 4096);
                int[] statuses = new int[2];
                for (int i = 0; i < 2; i++) {
                    long hdr = ram.alloc(16, 8), s = ram.alloc(1, 1);
                    ram.memory.writeInt(hdr, i == 0 ? VirtioBlock.T_OUT : VirtioBlock.T_IN);
                    ram.memory.writeLong(hdr + 8, 0);
                    q.add(in(hdr, 16), new DriverQueue.Buf(big, 256 << 10, i == 1), out(s, 1));
                    drv.notifyQueue(0);
                    assertTrue(TestDriver.awaitUsed(q, 1, 5000));
                    q.takeUsed();
                    statuses[i] = ram.memory.readByte(s);
                }
                assertEquals(VirtioBlock.S_IOERR, statuses[0], "256 KiB on a 64 KiB file system: ENOSPC -> IOERR");
                assertEquals(VirtioBlock.S_OK, statuses[1], "the next request is served");
                assertEquals(
                        0,
                        drv.status() & dev.jvmm.devices.virtio.DeviceStatus.DEVICE_NEEDS_RESET,
                        "the device keeps running");
            } finally {
                backend.close();
            }
        } finally {
            unmount(mnt);
        }
    }

    /**
     * Cuts {@code total} bytes of {@code buf} into pieces of 1 to 700 bytes, with some empty ones and some on the heap.
     */
    static List<MemorySegment> scatter(MemorySegment buf, long seed) {
        Random r = new Random(seed);
        List<MemorySegment> out = new ArrayList<>();
        long pos = 0;
        while (pos < buf.byteSize()) {
            int n = (int) Math.min(buf.byteSize() - pos, r.nextInt(8) == 0 ? 0 : 1 + r.nextInt(700));
            MemorySegment piece = buf.asSlice(pos, n);
            out.add(r.nextInt(16) == 0 ? MemorySegment.ofArray(piece.toArray(ValueLayout.JAVA_BYTE)) : piece);
            pos += n;
        }
        return out;
    }

    static byte[] concat(List<MemorySegment> segs) {
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        for (MemorySegment s : segs) b.writeBytes(s.toArray(ValueLayout.JAVA_BYTE));
        return b.toByteArray();
    }

    @Test
    void vectoredWriteAndReadOfMoreThanIovMaxSegments() throws Exception {
        Path p = sparseFile("disk.raw", 4 << 20);
        try (RawFileBackend b = RawFileBackend.open(p, false);
                Arena arena = Arena.ofConfined()) {
            byte[] data = new byte[(3 << 20) / 2];
            new Random(11).nextBytes(data);
            MemorySegment src = arena.allocate(data.length);
            MemorySegment.copy(data, 0, src, ValueLayout.JAVA_BYTE, 0, data.length);
            List<MemorySegment> out = scatter(src, 1);
            assertTrue(out.size() > 2 * Libc.IOV_MAX, "several iovec arrays: " + out.size());
            b.writev(4096, out);
            assertArrayEquals(data, java.util.Arrays.copyOfRange(Files.readAllBytes(p), 4096, 4096 + data.length));

            MemorySegment dst = arena.allocate(data.length).fill((byte) 0x55);
            List<MemorySegment> in = scatter(dst, 2); // another cut, heap pieces are copies filled separately
            b.readv(4096, in);
            assertArrayEquals(data, concat(in));
        }
    }

    @Test
    void vectoredReadPastTheEndOfAShrunkFileReadsZeroes() throws Exception {
        Path p = sparseFile("disk.raw", 1 << 20);
        try (RawFileBackend b = RawFileBackend.open(p, false);
                Arena arena = Arena.ofConfined()) {
            MemorySegment ones = arena.allocate(1 << 20).fill((byte) 1);
            b.write(0, ones);
            try (var f = new java.io.RandomAccessFile(p.toFile(), "rw")) {
                f.setLength(700_000); // shrunk under the open image: the read below comes back short, then at EOF
            }
            MemorySegment dst = arena.allocate(400 << 10).fill((byte) 0x55);
            List<MemorySegment> in = new ArrayList<>();
            for (long off = 0; off < dst.byteSize(); off += 4096) in.add(dst.asSlice(off, 4096));
            long from = (1 << 20) - (400 << 10);
            b.readv(from, in);
            byte[] got = dst.toArray(ValueLayout.JAVA_BYTE);
            int present = (int) (700_000 - from);
            for (int i = 0; i < got.length; i++) assertEquals(i < present ? 1 : 0, got[i], "byte " + i);
        }
    }

    @Test
    void vectoredWritesAreRefusedOnReadOnlyImagesAndOutsideTheDisk() throws Exception {
        Path p = sparseFile("disk.raw", 1 << 20),
                q = sparseFile("other.raw", 1 << 20); // one image cannot be both (locks)
        try (RawFileBackend ro = RawFileBackend.open(p, true);
                RawFileBackend rw = RawFileBackend.open(q, false)) {
            List<MemorySegment> two =
                    List.of(MemorySegment.ofArray(new byte[512]), MemorySegment.ofArray(new byte[512]));
            assertThrows(IOException.class, () -> ro.writev(0, two));
            assertThrows(IllegalArgumentException.class, () -> rw.writev((1 << 20) - 512, two));
            assertThrows(IllegalArgumentException.class, () -> rw.readv((1 << 20) - 512, two));
        }
    }

    /** Counts syncs and fails the ones asked to, as a disk whose writeback failed would. */
    static final class FailingSyncs implements ImageFile.Faults {
        int syncs;
        final java.util.Set<Integer> failing;

        FailingSyncs(Integer... failing) {
            this.failing = java.util.Set.of(failing);
        }

        @Override
        public void beforeSync() throws IOException {
            if (failing.contains(++syncs)) throw new IOException("injected EIO in fdatasync #" + syncs);
        }
    }

    @Test
    void aFailedFlushStaysFailed() throws Exception {
        Path p = sparseFile("sticky.img", 1 << 20);
        RawFileBackend b = RawFileBackend.open(p, false);
        FailingSyncs faults = new FailingSyncs(1);
        b.imageFile().injectFaults(faults);
        b.write(0, MemorySegment.ofArray(new byte[512]));
        assertThrows(IOException.class, b::flush);
        // Linux reports a failed writeback once; the dropped pages stay dropped. A flush that succeeded now
        // would tell the guest its writes are durable.
        IOException again = assertThrows(IOException.class, b::flush, "the second flush fails too");
        assertTrue(again.getMessage().contains("earlier flush failed"), again.getMessage());
        assertEquals(1, again.getMessage().lines().count());
        assertThrows(IOException.class, b::close, "and closing, which syncs, reports it");
    }

    @Test
    void aWritableImageIsSyncedOnClose() throws Exception {
        Path p = sparseFile("close.img", 1 << 20);
        FailingSyncs faults = new FailingSyncs();
        try (RawFileBackend b = RawFileBackend.open(p, false)) {
            b.imageFile().injectFaults(faults);
            b.write(0, MemorySegment.ofArray(new byte[512]));
        }
        assertEquals(1, faults.syncs, "close syncs what was written");
        FailingSyncs readOnly = new FailingSyncs();
        try (RawFileBackend b = RawFileBackend.open(p, true)) {
            b.imageFile().injectFaults(readOnly);
        }
        assertEquals(0, readOnly.syncs, "nothing to sync on a read-only image");
    }
}
