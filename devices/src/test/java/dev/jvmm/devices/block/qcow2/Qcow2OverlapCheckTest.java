package dev.jvmm.devices.block.qcow2;

import static dev.jvmm.devices.block.qcow2.Qcow2HostileImageTest.CS;
import static dev.jvmm.devices.block.qcow2.Qcow2HostileImageTest.imageWithData;
import static dev.jvmm.devices.block.qcow2.Qcow2HostileImageTest.peekLong;
import static dev.jvmm.devices.block.qcow2.Qcow2HostileImageTest.poke;
import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Refcounts and L2 entries that lie about metadata never let a write land on it: every write of guest data or
 * of a fresh cluster is checked against where the metadata is (QEMU's overlap check); a hit fails the request,
 * marks the image corrupt and refuses later writes; cluster 0 is never allocated.
 */
class Qcow2OverlapCheckTest {
    @TempDir
    Path dir;

    Path image(String name) throws Exception {
        return imageWithData(dir.resolve(name), 8 << 20);
    }

    static byte[] head(Path p, int n) throws IOException {
        return Arrays.copyOf(Files.readAllBytes(p), n);
    }

    static MemorySegment sector(int fill) {
        byte[] b = new byte[512];
        Arrays.fill(b, (byte) fill);
        return MemorySegment.ofArray(b);
    }

    /** The cluster at {@code at}; for the header, without the corrupt bit (byte 79), which is meant to change. */
    static byte[] cluster(Path p, long at) throws IOException {
        byte[] c = Arrays.copyOfRange(Files.readAllBytes(p), (int) at, (int) at + CS);
        if (at == 0) c[79] &= ~2;
        return c;
    }

    /** The write fails, the cluster at {@code guarded} stays as it was, the image is marked corrupt. */
    static void assertRefusedAndMarked(Path p, long guestOffset, long guarded) throws Exception {
        byte[] before = cluster(p, guarded);
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            IOException e = assertThrows(IOException.class, () -> q.write(guestOffset, sector(0xee)));
            assertTrue(e.getMessage().contains("corrupt"), e.getMessage());
            assertEquals(1, e.getMessage().lines().count(), e.getMessage());
            IOException again = assertThrows(
                    IOException.class, () -> q.write(4 << 20, sector(0xdd)), "later writes are refused too");
            assertTrue(again.getMessage().contains("corrupt"), again.getMessage());
        } catch (Qcow2Exception closing) {
            // closing a corrupt image may report it again
        }
        assertArrayEquals(
                before, cluster(p, guarded), "metadata at 0x" + Long.toHexString(guarded) + " must be untouched");
        assertTrue(Qcow2Image.readHeader(p).corrupt(), "the header's corrupt bit is set");
        Exception reopen = assertThrows(
                Qcow2Exception.class, () -> Qcow2Image.open(p, false).close());
        assertTrue(reopen.getMessage().contains("marked corrupt"), reopen.getMessage());
        try (Qcow2Image q = Qcow2Image.open(p, true)) {
            byte[] b = new byte[512];
            q.read(guestOffset == 0 ? CS : 0, MemorySegment.ofArray(b)); // a cluster the poke left alone
            assertEquals(0x5a, b[0], "a corrupt image still reads");
        }
    }

    @Test
    void aZeroedRefcountBlockNeverLetsAGuestWriteReplaceTheHeader() throws Exception {
        Path p = image("z.qcow2");
        Qcow2Header h = Qcow2Image.readHeader(p);
        long block = peekLong(p, h.refcountTableOffset);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(block);
            f.write(new byte[CS]); // every cluster now reads as free, the header's cluster 0 first
        }
        assertRefusedAndMarked(p, 3 << 20, 0);
        QemuTools.requireQemu();
        String info = QemuTools.run("qemu-img", "info", "-U", p.toString()).out();
        assertTrue(info.contains("corrupt: true"), info);
    }

    @Test
    void anL2EntryMappingDataOntoARefcountBlockIsRefused() throws Exception {
        Path p = image("r.qcow2");
        Qcow2Header h = Qcow2Image.readHeader(p);
        long block = peekLong(p, h.refcountTableOffset);
        long l2 = peekLong(p, h.l1TableOffset) & Qcow2Image.L1_OFFSET_MASK;
        poke(p, l2, Qcow2Image.COPIED | block, 8);
        assertRefusedAndMarked(p, 0, block);
    }

    @Test
    void anL2EntryMappingDataOntoItsOwnL2TableIsRefused() throws Exception {
        Path p = image("l2.qcow2");
        Qcow2Header h = Qcow2Image.readHeader(p);
        long l2 = peekLong(p, h.l1TableOffset) & Qcow2Image.L1_OFFSET_MASK;
        poke(p, l2 + 8, Qcow2Image.COPIED | l2, 8); // guest cluster 1 onto the table itself
        assertRefusedAndMarked(p, CS, l2);
    }

    @Test
    void anL1EntryNamingTheRefcountTableAsItsL2TableNeverLetsL2EntriesOverwriteIt() throws Exception {
        // Two L1 entries (1 GiB of 64 KiB clusters): the data stays under the first, the second names the refcount
        // table's cluster as its L2 table. A write under it allocates a cluster and would then store the L2 entry
        // mapping it in the refcount table (entry 1 of the "L2 table" is the refcount table's empty entry 1).
        Path p = imageWithData(dir.resolve("l1rt.qcow2"), 1L << 30);
        Qcow2Header h = Qcow2Image.readHeader(p);
        poke(p, h.l1TableOffset + 8, Qcow2Image.COPIED | h.refcountTableOffset, 8);
        assertRefusedAndMarked(p, (512L << 20) + CS, h.refcountTableOffset);
    }

    @Test
    void anL1EntryNamingTheL1TableAsItsL2TableNeverLetsL2EntriesOverwriteIt() throws Exception {
        Path p = imageWithData(dir.resolve("l1l1.qcow2"), 1L << 30);
        Qcow2Header h = Qcow2Image.readHeader(p);
        poke(p, h.l1TableOffset + 8, Qcow2Image.COPIED | h.l1TableOffset, 8);
        assertRefusedAndMarked(p, (512L << 20) + 2 * CS, h.l1TableOffset);
    }

    @Test
    void anL1EntryNamingAClusterPastTheEndOfTheFileNeverGetsItAsTheFileGrows() throws Exception {
        // The second L1 entry names the cluster just past the end of the file as its L2 table: the next cluster
        // allocated (for data under the first entry) would be that table, shared by both entries.
        Path p = imageWithData(dir.resolve("past.qcow2"), 1L << 30);
        Qcow2Header h = Qcow2Image.readHeader(p);
        long end = (Files.size(p) + CS - 1) & -(long) CS;
        poke(p, h.l1TableOffset + 8, Qcow2Image.COPIED | end, 8);
        assertRefusedAndMarked(p, 4 << 20, end);
    }

    @Test
    void aRefcountTableEntryNamingABlockPastTheEndOfTheFileNeverGetsItAsTheFileGrows() throws Exception {
        Path p = imageWithData(dir.resolve("rtpast.qcow2"), 1L << 30);
        Qcow2Header h = Qcow2Image.readHeader(p);
        long end = (Files.size(p) + CS - 1) & -(long) CS;
        poke(p, h.refcountTableOffset + 8, end, 8);
        assertRefusedAndMarked(p, 4 << 20, end);
    }

    @Test
    void aRefcountTableEntryNamingAnL2TableNeverLetsRefcountsOverwriteIt() throws Exception {
        // The refcount table's second entry (clusters 32768 on, with 16-bit refcounts) names the active L2 table as
        // its block: a refcount of a cluster there would be written into the L2 table.
        Path p = imageWithData(dir.resolve("rtl2.qcow2"), 1L << 30);
        Qcow2Header h = Qcow2Image.readHeader(p);
        long l2 = peekLong(p, h.l1TableOffset) & Qcow2Image.L1_OFFSET_MASK;
        poke(p, h.refcountTableOffset + 8, l2, 8);
        byte[] before = cluster(p, l2);
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            // Reaching cluster 32768 by allocation takes 2 GiB of file: set its refcount as a flush would.
            q.refcounts.set(32768, 0); // its entry is the L2 table's first two bytes, COPIED among them
            fail("a refcount update was written into an L2 table");
        } catch (Qcow2Exception expected) {
            assertTrue(expected.getMessage().contains("corrupt"), expected.getMessage());
        }
        assertArrayEquals(before, cluster(p, l2), "the L2 table must be untouched");
    }

    @Test
    void anL2EntryMappingDataOntoASnapshotsTablesIsRefused() throws Exception {
        QemuTools.requireQemu();
        Path p = image("s.qcow2");
        QemuTools.ok("qemu-img", "snapshot", "-c", "one", p.toString());
        // After the snapshot the active L2 table is shared; copy it on a write first, as jvmm would.
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            q.write(0, sector(0x5a));
        }
        Qcow2Header h = Qcow2Image.readHeader(p);
        long l2 = peekLong(p, h.l1TableOffset) & Qcow2Image.L1_OFFSET_MASK;
        long snapshotL1;
        try (Qcow2Image q = Qcow2Image.open(p, true)) {
            snapshotL1 = q.snapshots().getFirst().l1TableOffset();
        }
        poke(p, l2 + 8, Qcow2Image.COPIED | snapshotL1, 8);
        assertRefusedAndMarked(p, CS, snapshotL1);
        poke(p, 72, 0, 8); // clear the corrupt bit, then aim at the snapshot table
        poke(p, l2 + 8, Qcow2Image.COPIED | h.snapshotsOffset, 8);
        assertRefusedAndMarked(p, CS, h.snapshotsOffset);
    }

    @Test
    void aVersion2ImageRefusesTheWriteAndLaterOnesWithoutAHeaderBit() throws Exception {
        Path p = dir.resolve("v2.qcow2");
        Qcow2Creator.create(p, Qcow2Creator.Options.of(8 << 20).withVersion(2));
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            q.write(0, sector(0x5a));
        }
        Qcow2Header h = Qcow2Image.readHeader(p);
        long block = peekLong(p, h.refcountTableOffset);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(block);
            f.write(new byte[CS]);
        }
        byte[] before = head(p, CS);
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            assertThrows(IOException.class, () -> q.write(3 << 20, sector(0xee)));
            assertThrows(IOException.class, () -> q.write(0, sector(0xee)), "even in place");
        } catch (Qcow2Exception closing) {
            // as above
        }
        assertArrayEquals(before, head(p, CS));
    }

    @Test
    void rangesAddRemoveAndOverlap() {
        MetadataRanges m = new MetadataRanges(CS);
        m.add(MetadataRanges.Kind.HEADER, 0, CS);
        m.add(MetadataRanges.Kind.L1, 3 * CS, 3 * CS);
        m.add(MetadataRanges.Kind.L2, 4 * CS, 8); // overlapping the L1 table (a corrupt image)
        m.add(MetadataRanges.Kind.L2, 4 * CS, CS); // named twice
        assertEquals(MetadataRanges.Kind.HEADER, m.overlap(0, 1));
        assertNull(m.overlap(CS, 2 * CS));
        assertEquals(MetadataRanges.Kind.L1, m.overlap(2 * CS, CS + 1));
        assertEquals(MetadataRanges.Kind.L1, m.overlap(5 * CS + 100, 10), "the L1 table's last cluster");
        assertNull(m.overlap(6 * CS, CS));
        m.remove(MetadataRanges.Kind.L2, 4 * CS, CS);
        assertEquals(MetadataRanges.Kind.L1, m.overlap(4 * CS, 1));
        m.remove(MetadataRanges.Kind.L1, 3 * CS, 3 * CS);
        assertEquals(MetadataRanges.Kind.L2, m.overlap(4 * CS, 1), "still named once");
        assertNull(m.overlap(3 * CS, CS));
        m.remove(MetadataRanges.Kind.L2, 4 * CS, CS);
        assertNull(m.overlap(CS, 100L * CS - CS));
        assertEquals(1, m.pieceCount());
    }
}
