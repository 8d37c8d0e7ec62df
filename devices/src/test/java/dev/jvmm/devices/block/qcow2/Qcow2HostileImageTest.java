package dev.jvmm.devices.block.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Corrupt and hostile images fail with a message that names what is wrong; nothing hangs or escapes. */
class Qcow2HostileImageTest {
    @TempDir
    Path dir;

    static final int CS = 65536;

    Path image(String name) throws Exception {
        return imageWithData(dir.resolve(name), 4 << 20);
    }

    /** A jvmm-made image (64 KiB clusters) with 0x5a bytes in its first two clusters; returns its path. */
    static Path imageWithData(Path p, long virtualSize) throws Exception {
        Qcow2Creator.create(p, Qcow2Creator.Options.of(virtualSize));
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            byte[] b = new byte[2 * CS];
            Arrays.fill(b, (byte) 0x5a);
            q.write(0, MemorySegment.ofArray(b));
        }
        return p;
    }

    static void poke(Path p, long offset, long value, int width) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(offset);
            switch (width) {
                case 1 -> f.writeByte((int) value);
                case 4 -> f.writeInt((int) value);
                default -> f.writeLong(value);
            }
        }
    }

    static long peekLong(Path p, long offset) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "r")) {
            f.seek(offset);
            return f.readLong();
        }
    }

    static String openError(Path p) {
        Exception e = assertThrows(
                Qcow2Exception.class, () -> Qcow2Image.open(p, true).close());
        return e.getMessage();
    }

    static String readError(Path p, long offset) throws Exception {
        try (Qcow2Image q = Qcow2Image.open(p, true)) {
            return assertThrows(Qcow2Exception.class, () -> q.read(offset, MemorySegment.ofArray(new byte[4096])))
                    .getMessage();
        }
    }

    long l2Offset(Path p) throws Exception {
        Qcow2Header h = Qcow2Image.readHeader(p);
        return peekLong(p, h.l1TableOffset) & Qcow2Image.L1_OFFSET_MASK;
    }

    @Test
    void headerFieldsOutOfRange() throws Exception {
        Path p = image("h.qcow2");
        byte[] good = Files.readAllBytes(p);
        Object[][] cases = {
            {0L, 0x12345678L, 4, "bad magic"},
            {4L, 4L, 4, "unsupported qcow2 version 4"},
            {20L, 30L, 4, "cluster_bits 30 out of range"},
            {20L, 8L, 4, "cluster_bits 8 out of range"},
            {36L, 0x7fffffffL, 4, "exceeds the 32 MiB limit"},
            {36L, 0L, 4, "L1 table of 0 entries is too small"},
            {40L, 0x7000_0000L, 8, "L1 table at 0x70000000"},
            {40L, 0x10001L, 8, "L1 table offset 0x10001 is not"},
            {48L, 1L << 40, 8, "refcount table at"},
            {56L, 100000L, 4, "refcount_table_clusters"},
            {60L, 1_000_000L, 4, "snapshots exceed the limit"},
            {96L, 7L, 4, "refcount_order 7"},
            {100L, 100L, 4, "header_length 100 invalid"},
            {24L, -1L, 8, "virtual size"},
            {32L, 1L, 4, "encrypted images are not supported"},
            {72L, 1L << 2, 8, "'external data file' (bit 2)"},
            {72L, 1L << 40, 8, "unsupported incompatible feature(s): unnamed bit 40"},
        };
        for (Object[] c : cases) {
            Files.write(p, good);
            poke(p, (Long) c[0], (Long) c[1], (Integer) c[2]);
            String msg = openError(p);
            assertTrue(msg.contains((String) c[3]), "expected '" + c[3] + "' in: " + msg);
            assertTrue(msg.startsWith(p.toString()), "the message names the file: " + msg);
        }
    }

    @Test
    void aBackingFileNameWhoseEndOverflowsIsAFormatError() throws Exception {
        Path p = image("o.qcow2");
        for (long offset : new long[] {Long.MAX_VALUE - 4, Long.MAX_VALUE, 1L << 62, 0x7fff_ffffL}) {
            poke(p, 8, offset, 8);
            poke(p, 16, 10, 4);
            String msg = openError(p);
            assertTrue(msg.startsWith(p + ": backing file name at offset " + offset), msg);
            assertEquals(1, msg.lines().count(), msg);
        }
    }

    @Test
    void aBackingFileNameWithANulByteIsAFormatError() throws Exception {
        // No path holds a NUL: the name must be refused as the header's, not fail to become a path later.
        Path p = image("nul.qcow2");
        poke(p, 8, CS - 16, 8); // after the header extensions
        poke(p, 16, 4, 4);
        poke(p, CS - 16, 0x6100_6200L, 4); // "a\0b\0"
        String msg = openError(p);
        assertTrue(msg.startsWith(p + ": backing file name"), msg);
        assertTrue(msg.contains("NUL"), msg);
        assertThrows(Qcow2Exception.class, () -> Qcow2Image.readHeader(p));
    }

    @Test
    void unknownIncompatibleFeatureIsRefusedByItsName() throws Exception {
        Path p = image("f.qcow2");
        // The feature name table (written by jvmm) lists bits 0-4; rename entry 4 to a future bit 9.
        byte[] b = Files.readAllBytes(p);
        int table = indexOf(b, "extended L2 entries".getBytes()) - 2;
        b[table + 1] = 9;
        byte[] name = "time travel\0\0\0\0\0\0\0\0".getBytes();
        System.arraycopy(name, 0, b, table + 2, name.length);
        Files.write(p, b);
        poke(p, 72, 1L << 9, 8);
        assertTrue(openError(p).contains("'time travel' (bit 9)"));
    }

    static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        throw new AssertionError("not found");
    }

    @Test
    void truncatedFiles() throws Exception {
        Path p = image("t.qcow2");
        byte[] good = Files.readAllBytes(p);
        long l2 = l2Offset(p);
        for (int len : new int[] {0, 3, 50, 100, 104, 4096, CS, 3 * CS + 4}) {
            Files.write(p, Arrays.copyOf(good, len));
            assertThrows(Qcow2Exception.class, () -> Qcow2Image.open(p, true).close(), "length " + len);
        }
        // Cut inside the data: the L2 table points past the end.
        Files.write(p, Arrays.copyOf(good, (int) l2 + CS));
        assertTrue(readError(p, 0).contains("past the end of the file"));
    }

    @Test
    void tableEntriesPointingAnywhere() throws Exception {
        Path p = image("e.qcow2");
        byte[] good = Files.readAllBytes(p);
        Qcow2Header h = Qcow2Image.readHeader(p);
        long l2 = l2Offset(p);
        poke(p, l2, Qcow2Image.COPIED | (1L << 40), 8);
        assertTrue(readError(p, 0).contains("past the end of the file"));
        Files.write(p, good);
        poke(p, l2, Qcow2Image.COPIED | (l2 + 512), 8);
        assertTrue(readError(p, 0).contains("not aligned to a cluster"));
        Files.write(p, good);
        poke(p, h.l1TableOffset, Qcow2Image.COPIED | 0x1200, 8);
        assertTrue(readError(p, 0).contains("L1 entry 0"));
        Files.write(p, good);
        // Data mapped onto the L1 table: writing there would destroy metadata, so it is refused.
        poke(p, l2, Qcow2Image.COPIED | h.l1TableOffset, 8);
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            Exception e = assertThrows(Qcow2Exception.class, () -> q.write(0, MemorySegment.ofArray(new byte[512])));
            assertTrue(e.getMessage().contains("metadata"), e.getMessage());
        }
        Files.write(p, good);
        // Extended-L2 nonsense is not possible here; a compressed entry with garbage behind it is.
        poke(p, l2, Qcow2Image.COMPRESSED | (l2 + CS), 8);
        String msg = readError(p, 0);
        assertTrue(msg.contains("compressed cluster"), msg);
        // Refcount table entry pointing past the end: found when a write needs a refcount.
        Files.write(p, good);
        poke(p, h.refcountTableOffset, 1L << 45, 8);
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            Exception e =
                    assertThrows(Qcow2Exception.class, () -> q.write(3 << 20, MemorySegment.ofArray(new byte[512])));
            assertTrue(e.getMessage().contains("refcount table entry 0"), e.getMessage());
        }
    }

    @Test
    void emptyRefcountTableEntryNeverTurnsMetadataIntoAFreshBlock() throws Exception {
        Path p = image("r.qcow2");
        Qcow2Header h = Qcow2Image.readHeader(p);
        poke(p, h.refcountTableOffset, 0, 8);
        byte[] before = Arrays.copyOf(Files.readAllBytes(p), CS);
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            Exception e =
                    assertThrows(Qcow2Exception.class, () -> q.write(3 << 20, MemorySegment.ofArray(new byte[512])));
            assertTrue(e.getMessage().contains("refcount table entry 0 is empty"), e.getMessage());
        } catch (Qcow2Exception closing) {
            // close may report the same corruption
        }
        byte[] after = Arrays.copyOf(Files.readAllBytes(p), CS);
        assertEquals(2, after[79] & 2, "the corrupt bit is set");
        after[79] &= ~2;
        assertArrayEquals(before, after, "the header cluster is otherwise untouched");
    }

    @Test
    void backingLoopsAndMissingBackingFiles() throws Exception {
        Path a = dir.resolve("a.qcow2"), b = dir.resolve("b.qcow2");
        Qcow2Creator.create(b, Qcow2Creator.Options.of(1 << 20));
        Qcow2Creator.create(a, Qcow2Creator.Options.of(1 << 20).withBacking("b.qcow2", "qcow2"));
        Path c = dir.resolve("c.qcow2");
        Files.copy(a, c);
        // b now names a as its backing file (same length name, patched in place): a -> b -> a.
        Qcow2Creator.create(
                dir.resolve("tmp.qcow2"), Qcow2Creator.Options.of(1 << 20).withBacking("a.qcow2", "qcow2"));
        Files.copy(dir.resolve("tmp.qcow2"), b, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        String msg = openError(a);
        assertTrue(msg.contains("backing chain loop"), msg);
        Path self = dir.resolve("self.qcow2");
        Qcow2Creator.create(dir.resolve("x.qcow2"), Qcow2Creator.Options.of(1 << 20));
        Qcow2Creator.create(self, Qcow2Creator.Options.of(1 << 20).withBacking("x.qcow2", "qcow2"));
        byte[] s = Files.readAllBytes(self);
        int at = indexOf(s, "x.qcow2".getBytes());
        System.arraycopy("s.qcow2".getBytes(), 0, s, at, 7);
        Files.write(dir.resolve("s.qcow2"), s);
        assertTrue(openError(dir.resolve("s.qcow2")).contains("backing chain loop"));
        Files.delete(dir.resolve("x.qcow2"));
        Exception e = assertThrows(java.nio.file.NoSuchFileException.class, () -> Qcow2Image.open(self, true));
        assertTrue(e.getMessage().contains("x.qcow2"), e.getMessage());
    }

    @Test
    void hostileSnapshotTable() throws Exception {
        Path p = image("s.qcow2");
        long end = Files.size(p);
        poke(p, 60, 1, 4);
        poke(p, 64, end - CS, 8); // the data cluster: 0x5a bytes as a snapshot entry
        String msg = openError(p);
        assertTrue(msg.contains("snapshot"), msg);
    }

    @Test
    void dirtyImageIsRepairedOnWritableOpen() throws Exception {
        Path p = image("d.qcow2");
        poke(p, 72, 1, 8); // dirty bit, as lazy refcounts leave it after a crash
        // And a refcount too low for the data cluster, as if the refcount update had been postponed.
        long l2 = l2Offset(p);
        long data = peekLong(p, l2) & Qcow2Image.L2_OFFSET_MASK;
        Qcow2Header h = Qcow2Image.readHeader(p);
        long block = peekLong(p, h.refcountTableOffset);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(block + 2 * (data / CS));
            f.writeShort(0);
        }
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            assertFalse(q.header().dirty());
            Qcow2Checker.Result r = new Qcow2Checker(q).run(Qcow2Checker.Repair.NONE);
            assertEquals(0, r.corruptions(), r.messages().toString());
        }
        assertEquals(0, Qcow2Image.readHeader(p).incompatibleFeatures & 1);
    }
}
