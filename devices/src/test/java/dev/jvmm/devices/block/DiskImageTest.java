package dev.jvmm.devices.block;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.DiskImage.BackingFiles;
import dev.jvmm.devices.block.DiskImage.Format;
import dev.jvmm.devices.block.DiskImage.Options;
import dev.jvmm.devices.block.qcow2.Qcow2Creator;
import dev.jvmm.devices.block.qcow2.Qcow2Exception;
import dev.jvmm.devices.block.qcow2.Qcow2Image;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DiskImageTest {
    @TempDir
    Path dir;

    Path raw(String name, int length, byte fill) throws IOException {
        byte[] b = new byte[length];
        Arrays.fill(b, fill);
        return Files.write(dir.resolve(name), b);
    }

    Path qcow2(String name, long size) throws IOException {
        Path p = dir.resolve(name);
        Qcow2Creator.create(p, Qcow2Creator.Options.of(size));
        return p;
    }

    Path qcow2(String name, String backing, String backingFormat) throws IOException {
        Path p = dir.resolve(name);
        Qcow2Creator.create(p, Qcow2Creator.Options.of(0).withBacking(backing, backingFormat));
        return p;
    }

    static byte[] read(BlockBackend b, long offset, int length) throws IOException {
        byte[] out = new byte[length];
        b.read(offset, MemorySegment.ofArray(out));
        return out;
    }

    static void write(BlockBackend b, long offset, int length, byte fill) throws IOException {
        byte[] data = new byte[length];
        Arrays.fill(data, fill);
        b.write(offset, MemorySegment.ofArray(data));
    }

    static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    static String oneLine(Exception e) {
        assertNotNull(e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        return e.getMessage();
    }

    @Test
    void probingTellsRawFromQcow2ByTheMagic() throws Exception {
        Path r = raw("disk.img", 4096, (byte) 0x5a);
        Path q = qcow2("disk.qcow2", 1 << 20);
        Path tiny = raw("tiny.img", 3, (byte) 'Q'); // too short for a magic: raw
        assertEquals(Format.RAW, DiskImage.probe(r));
        assertEquals(Format.QCOW2, DiskImage.probe(q));
        assertEquals(Format.RAW, DiskImage.probe(tiny));
        try (BlockBackend b = DiskImage.open(r, Options.DEFAULT)) {
            assertInstanceOf(RawFileBackend.class, b);
            assertEquals(4096, b.size());
            assertEquals(0x5a, read(b, 4000, 1)[0]);
        }
        try (BlockBackend b = DiskImage.open(q, Options.DEFAULT)) {
            assertInstanceOf(Qcow2Image.class, b);
            assertEquals(1 << 20, b.size());
        }
        assertThrows(NoSuchFileException.class, () -> DiskImage.probe(dir.resolve("none.img")));
        assertThrows(NoSuchFileException.class, () -> DiskImage.open(dir.resolve("none.img"), Options.DEFAULT));
        assertThrows(
                NoSuchFileException.class,
                () -> DiskImage.open(dir.resolve("none.img"), Options.DEFAULT.withFormat(Format.QCOW2)));
    }

    @Test
    void aForcedFormatIsNotProbed() throws Exception {
        Path q = qcow2("disk.qcow2", 1 << 20);
        try (BlockBackend b =
                DiskImage.open(q, Options.DEFAULT.withFormat(Format.RAW).withReadOnly(true))) {
            assertInstanceOf(RawFileBackend.class, b, "format=raw shows the qcow2 file's own bytes");
            assertEquals(Files.size(q), b.size());
            assertArrayEquals(Arrays.copyOf(Files.readAllBytes(q), 4), read(b, 0, 4));
        }
        Path r = raw("disk.img", 1 << 20, (byte) 0);
        Exception e =
                assertThrows(Qcow2Exception.class, () -> DiskImage.open(r, Options.DEFAULT.withFormat(Format.QCOW2)));
        assertEquals(r + ": not a qcow2 image (bad magic)", oneLine(e));
    }

    @Test
    void readOnlyRefusesWritesAndWritableImagesTakeThem() throws Exception {
        Path r = raw("disk.img", 1 << 20, (byte) 0);
        Path q = qcow2("disk.qcow2", 1 << 20);
        for (Path p : new Path[] {r, q}) {
            try (BlockBackend b = DiskImage.open(p, Options.DEFAULT.withReadOnly(true))) {
                assertTrue(b.readOnly(), p.toString());
                assertThrows(IOException.class, () -> write(b, 0, 512, (byte) 1), p.toString());
            }
            try (BlockBackend b = DiskImage.open(p, Options.DEFAULT)) {
                assertFalse(b.readOnly(), p.toString());
                write(b, 512, 512, (byte) 7);
                b.flush();
            }
            try (BlockBackend b = DiskImage.open(p, Options.SOURCE)) {
                assertTrue(b.readOnly(), "a source is read-only");
                assertEquals(7, read(b, 1000, 1)[0], p.toString());
            }
        }
    }

    @Test
    void rawSizeIsWholeSectorsForAGuestAndEveryByteForASource() throws Exception {
        Path odd = raw("odd.img", 1000, (byte) 3);
        try (BlockBackend b = DiskImage.open(odd, Options.DEFAULT)) {
            assertEquals(512, b.size());
        }
        try (BlockBackend b = DiskImage.open(odd, Options.SOURCE)) {
            assertEquals(1000, b.size());
            assertEquals(3, read(b, 999, 1)[0]);
        }
    }

    @Test
    void aBackingChainIsFollowedThroughEachFormat() throws Exception {
        // base.raw (no format named in mid: probed) <- mid.qcow2 <- top.qcow2 (format named: qcow2)
        Path base = raw("base.raw", 1 << 20, (byte) 0x11);
        Path mid = qcow2("mid.qcow2", "base.raw", null);
        try (BlockBackend b = DiskImage.open(mid, Options.DEFAULT.withFormat(Format.QCOW2))) {
            write(b, 64 << 10, 4096, (byte) 0x22);
        }
        Path top = qcow2("top.qcow2", "mid.qcow2", "qcow2");
        try (BlockBackend b = DiskImage.open(top, Options.DEFAULT.withFormat(Format.QCOW2))) {
            write(b, 128 << 10, 4096, (byte) 0x33);
        }
        try (BlockBackend b = DiskImage.open(top, Options.SOURCE)) {
            assertEquals(1 << 20, b.size());
            assertEquals(0x11, read(b, 0, 1)[0], "from base.raw");
            assertEquals(0x22, read(b, 64 << 10, 1)[0], "from mid.qcow2");
            assertEquals(0x33, read(b, 128 << 10, 1)[0], "from top.qcow2");
            Qcow2Image q = (Qcow2Image) b;
            assertInstanceOf(Qcow2Image.class, q.backing());
            assertInstanceOf(RawFileBackend.class, ((Qcow2Image) q.backing()).backing());
            assertTrue(((Qcow2Image) q.backing()).backing().readOnly(), "backing files are read-only");
        }
        byte[] untouched = new byte[1 << 20];
        Arrays.fill(untouched, (byte) 0x11);
        assertArrayEquals(untouched, Files.readAllBytes(base), "writes to the top never reach a backing file");
    }

    @Test
    void aProbedImageWithABackingFileIsRefusedUnlessThePolicyFollowsIt() throws Exception {
        raw("base.raw", 1 << 20, (byte) 0x11);
        Path top = qcow2("top.qcow2", "base.raw", "raw");
        BackingFileRefusedException e =
                assertThrows(BackingFileRefusedException.class, () -> DiskImage.open(top, Options.DEFAULT));
        assertEquals(top, e.image());
        assertTrue(oneLine(e).startsWith(top.toString()), e.getMessage());
        try (BlockBackend b = DiskImage.open(top, Options.DEFAULT.withFormat(Format.QCOW2))) {
            assertEquals(0x11, read(b, 0, 1)[0], "a named format follows the backing file");
        }
        try (BlockBackend b = DiskImage.open(top, Options.DEFAULT.withBackingFiles(BackingFiles.FOLLOW))) {
            assertEquals(0x11, read(b, 0, 1)[0], "FOLLOW follows it for a probed image too");
        }
        // Refused before the backing file is looked at: a missing one is not what the caller hears of.
        Files.delete(dir.resolve("base.raw"));
        assertThrows(BackingFileRefusedException.class, () -> DiskImage.open(top, Options.DEFAULT));
        assertThrows(NoSuchFileException.class, () -> DiskImage.open(top, Options.DEFAULT.withFormat(Format.QCOW2)));
        long before = openFds();
        for (int i = 0; i < 20; i++)
            assertThrows(BackingFileRefusedException.class, () -> DiskImage.open(top, Options.DEFAULT));
        assertTrue(openFds() - before < 20, "a refused image leaves no file open");
    }

    @Test
    void loopsAndUnknownBackingFormatsAreOneLineErrors() throws Exception {
        Path a = dir.resolve("a.qcow2");
        qcow2("b.qcow2", 1 << 20);
        Qcow2Creator.create(a, Qcow2Creator.Options.of(1 << 20).withBacking("b.qcow2", "qcow2"));
        // b.qcow2 now names a.qcow2 (a name of the same length, made by the creator): a -> b -> a.
        Qcow2Creator.create(
                dir.resolve("tmp.qcow2"), Qcow2Creator.Options.of(1 << 20).withBacking("a.qcow2", "qcow2"));
        Files.copy(dir.resolve("tmp.qcow2"), dir.resolve("b.qcow2"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Exception loop = assertThrows(Qcow2Exception.class, () -> DiskImage.open(a, Options.SOURCE));
        assertTrue(oneLine(loop).contains("backing chain loop"), loop.getMessage());

        Path vmdk = dir.resolve("v.qcow2");
        raw("base.raw", 1 << 20, (byte) 0);
        Qcow2Creator.create(vmdk, Qcow2Creator.Options.of(1 << 20).withBacking("base.raw", "vmdk"));
        Exception fmt = assertThrows(Qcow2Exception.class, () -> DiskImage.open(vmdk, Options.SOURCE));
        assertEquals(vmdk + ": unsupported backing file format 'vmdk'", oneLine(fmt));
    }

    @Test
    void aShortOrBadFileIsAOneLineErrorAndLeavesNothingOpen() throws Exception {
        Path shortFile = raw("short.img", 10, (byte) 0);
        Exception e = assertThrows(
                Qcow2Exception.class, () -> DiskImage.open(shortFile, Options.DEFAULT.withFormat(Format.QCOW2)));
        assertEquals(shortFile + ": file too short for a qcow2 header (10 bytes)", oneLine(e));
        // The magic and nothing more: probed as qcow2, then refused as a header.
        Path truncated = dir.resolve("truncated.qcow2");
        Files.write(truncated, Arrays.copyOf(Files.readAllBytes(qcow2("whole.qcow2", 1 << 20)), 40));
        Exception t = assertThrows(Qcow2Exception.class, () -> DiskImage.open(truncated, Options.DEFAULT));
        assertTrue(oneLine(t).startsWith(truncated + ": "), t.getMessage());
        long before = openFds();
        for (int i = 0; i < 20; i++) {
            assertThrows(Qcow2Exception.class, () -> DiskImage.open(truncated, Options.DEFAULT));
        }
        assertTrue(openFds() - before < 20, "a failed open leaves no file open");
    }

    @Test
    void aBackingFileOutsideTheImageDirectoryIsRefusedUnlessAllowed() throws Exception {
        // A hostile image naming a host file as its backing file: a guest opened with format=qcow2 would read it.
        Path secret = raw("secret.raw", 1 << 20, (byte) 0x42);
        Path vm = Files.createDirectory(dir.resolve("vm"));
        Path dotdot = vm.resolve("dotdot.qcow2");
        Qcow2Creator.create(dotdot, Qcow2Creator.Options.of(0).withBacking("../secret.raw", "raw"));
        Path absolute = vm.resolve("absolute.qcow2");
        Qcow2Creator.create(absolute, Qcow2Creator.Options.of(0).withBacking(secret.toString(), "raw"));
        Files.createSymbolicLink(vm.resolve("link.raw"), secret);
        Path link = vm.resolve("link.qcow2");
        Qcow2Creator.create(link, Qcow2Creator.Options.of(0).withBacking("link.raw", "raw"));
        Path missing = vm.resolve("missing.qcow2");
        Path gone = raw("gone.raw", 512, (byte) 0);
        Qcow2Creator.create(missing, Qcow2Creator.Options.of(1 << 20).withBacking(gone.toString(), "raw"));
        Files.delete(gone); // refused by its name: the answer does not tell whether such a file exists
        for (Path top : new Path[] {dotdot, absolute, link, missing}) {
            BackingFileRefusedException e = assertThrows(
                    BackingFileRefusedException.class,
                    () -> DiskImage.open(top, Options.DEFAULT.withFormat(Format.QCOW2))
                            .close(),
                    top + " must not read " + secret);
            assertEquals(BackingFileRefusedException.Reason.OUTSIDE_IMAGE_DIRECTORY, e.reason());
            assertEquals(top, e.image());
            assertTrue(oneLine(e).contains("outside " + vm), e.getMessage());
        }
        for (Path top : new Path[] {dotdot, absolute, link}) {
            try (BlockBackend b = DiskImage.open(
                    top, Options.DEFAULT.withFormat(Format.QCOW2).withBackingPaths(DiskImage.BackingPaths.ANY))) {
                assertEquals(0x42, read(b, 0, 1)[0], "ANY follows " + top + "'s backing file");
            }
        }
        // In the directory or below, by a relative or an absolute name, along a chain: followed.
        Path sub = Files.createDirectory(vm.resolve("base"));
        raw("vm/base/base.raw", 1 << 20, (byte) 0x11);
        Path mid = sub.resolve("mid.qcow2");
        Qcow2Creator.create(mid, Qcow2Creator.Options.of(0).withBacking("base.raw", "raw"));
        Path top = vm.resolve("top.qcow2");
        Qcow2Creator.create(top, Qcow2Creator.Options.of(0).withBacking(mid.toString(), "qcow2"));
        try (BlockBackend b = DiskImage.open(top, Options.DEFAULT.withFormat(Format.QCOW2))) {
            assertEquals(0x11, read(b, 0, 1)[0]);
        }
        // A chain link that climbs out of the opened image's directory is refused even though it stays beside
        // the image that names it.
        Path escape = sub.resolve("escape.qcow2");
        Qcow2Creator.create(escape, Qcow2Creator.Options.of(0).withBacking("../../secret.raw", "raw"));
        Qcow2Creator.create(top, Qcow2Creator.Options.of(0).withBacking("base/escape.qcow2", "qcow2"));
        assertThrows(
                BackingFileRefusedException.class,
                () -> DiskImage.open(top, Options.DEFAULT.withFormat(Format.QCOW2))
                        .close());
        try (BlockBackend b = DiskImage.open(top, Options.SOURCE)) {
            assertEquals(
                    0x42, read(b, 0, 1)[0], "a conversion source follows backing files anywhere, as qemu-img does");
        }
    }

    @Test
    void aGuestCannotMakeAProbedRawDiskLookLikeQcow2() throws Exception {
        // The write that opens the probing hole: a qcow2 header into sector 0 of a raw disk opened without
        // format=raw, which the next boot would probe as qcow2. QEMU refuses it; so does jvmm.
        Path r = raw("disk.img", 1 << 20, (byte) 0);
        byte[] header = Arrays.copyOf(Files.readAllBytes(qcow2("evil.qcow2", 1 << 20)), 512);
        try (BlockBackend b = DiskImage.open(r, Options.DEFAULT)) {
            IOException e = assertThrows(IOException.class, () -> b.write(0, MemorySegment.ofArray(header)));
            assertTrue(oneLine(e).contains("whose format was probed, look like a qcow2 image"), e.getMessage());
            // Split across buffers, the magic is still seen.
            assertThrows(
                    IOException.class,
                    () -> b.writev(
                            0,
                            java.util.List.of(
                                    MemorySegment.ofArray(header).asSlice(0, 2),
                                    MemorySegment.ofArray(header).asSlice(2, 510))));
            write(b, 0, 512, (byte) 0x55); // anything else goes
            b.write(512, MemorySegment.ofArray(header)); // and the magic elsewhere
        }
        assertEquals(Format.RAW, DiskImage.probe(r));
        assertEquals(0x55, Files.readAllBytes(r)[0]);
        try (BlockBackend b = DiskImage.open(r, Options.DEFAULT.withFormat(Format.RAW))) {
            b.write(0, MemorySegment.ofArray(header)); // a named format: the user knows it is raw
        }
        assertEquals(Format.QCOW2, DiskImage.probe(r));
    }
}
