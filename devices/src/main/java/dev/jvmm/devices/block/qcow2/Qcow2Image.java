package dev.jvmm.devices.block.qcow2;

import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.DiskImage;
import dev.jvmm.devices.block.SegmentList;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A qcow2 image (versions 2 and 3) as a {@link BlockBackend}.
 *
 * <p>Concurrency: a read-write lock guards the mapping. Reads, and writes to clusters this image already owns,
 * hold it shared, so they run in parallel; anything that changes L1/L2/refcount metadata holds it exclusively.
 *
 * <p>Crash safety (a process killed at any point leaves an image that {@code qemu-img check} finds clean or
 * with leaked clusters only):
 * <ul>
 *   <li>clusters are reserved in batches: their refcounts are written and synced before any table points at
 *       them (an unused reservation is a leak, never a dangling reference);</li>
 *   <li>a new or copied L2 table is written and synced before the L1 entry points at it;</li>
 *   <li>guest data reaches the file before the L2 entry that maps it;</li>
 *   <li>refcounts are lowered only after the table change that dropped the reference is synced (at flush),
 *       so a crash can leak a cluster but never free one still in use;</li>
 *   <li>{@link #flush()} is fdatasync: an acknowledged flush covers every completed write and its metadata.</li>
 * </ul>
 * The rules above hold for a killed process (writes reach the page cache in program order). Against power
 * loss, the refcount and table ordering is enforced with fdatasync; the order of guest data before its L2
 * entry is not (as for any unflushed write, a copy-on-write cluster written since the last flush may then
 * read back incomplete), and metadata is never left pointing at unwritten metadata.
 *
 * <p>Lazy refcounts: jvmm always updates refcounts at once (allowed by the format); an image left dirty by
 * QEMU has its refcounts rebuilt when opened writable, as QEMU does.
 */
public final class Qcow2Image implements BlockBackend {
    static final long L1_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    static final long L2_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    static final long COPIED = 1L << 63, COMPRESSED = 1L << 62, ZERO = 1L;
    private static final int TYPE_UNALLOCATED = 0, TYPE_ZERO = 1, TYPE_DATA = 2, TYPE_COMPRESSED = 3;
    private static final int MAX_RUN = 16 << 20;

    final HostFile file;
    final Qcow2Header header;
    final String name;
    private final boolean readOnly;
    final int clusterBits, cs, l2Entries, subclusterSize;
    final boolean extL2;
    /** A compressed cluster's L2 entry holds its host offset below this bit and its extra sectors from it up. */
    private final int compressedOffsetBits;

    long[] l1;
    private volatile long size;
    private volatile long freeGeneration;
    final List<Snapshot> snapshots;
    private final BlockBackend backing;
    private final long backingSize;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final L2Cache l2Cache;
    Refcounts refcounts;
    private final ThreadLocal<DecompressBuffer> decompressBuffers;
    private long poolNext, poolEnd;
    private final long poolBatch;
    private final int maxRun;
    private List<Long> pendingFrees = new ArrayList<>();
    private volatile boolean closed;
    /**
     * Where metadata lies (writable images only): every write of guest data or of a fresh cluster is checked, and
     * every entry written into a table, against metadata of the other kinds.
     */
    private final MetadataRanges metadata;
    /**
     * Cluster-aligned tables that L1 or refcount table entries name past the end of the file (writable images only),
     * sorted: a corrupt image's. They stay out of {@link #metadata}, which the file then bounds, but the file grows:
     * a cluster allocated there would become that table, so the overlap check refuses them too.
     */
    private long[] namedPastEnd = new long[0];
    /** Set when a write would have hit metadata: from then on writes are refused (QEMU's corrupt state). */
    private volatile String corruption;

    private static final class DecompressBuffer {
        final byte[] out, in;
        long entry = -1, generation = -1;

        DecompressBuffer(int cs) {
            out = new byte[cs];
            in = new byte[2 * cs + 1024];
        }
    }

    /** Where a guest range maps: filled by {@link #classify}. */
    private static final class Mapping {
        int type;
        long host; // for TYPE_DATA: host offset of the guest offset; for TYPE_COMPRESSED: the L2 entry
        int length;
    }

    private Qcow2Image(
            HostFile file,
            Qcow2Header header,
            String name,
            boolean readOnly,
            long[] l1,
            long size,
            List<Snapshot> snapshots,
            BlockBackend backing)
            throws IOException {
        this.file = file;
        this.header = header;
        this.name = name;
        this.readOnly = readOnly;
        this.clusterBits = header.clusterBits;
        this.cs = header.clusterSize();
        this.extL2 = header.extendedL2();
        this.l2Entries = header.l2Entries();
        this.subclusterSize = extL2 ? cs / 32 : cs;
        this.compressedOffsetBits = 62 - (clusterBits - 8);
        this.l1 = l1;
        this.size = size;
        this.snapshots = snapshots;
        this.backing = backing;
        this.backingSize = backing == null ? 0 : backing.size();
        this.l2Cache = new L2Cache(Math.max(16, Math.min(4096, (32 << 20) / cs)));
        this.decompressBuffers = ThreadLocal.withInitial(() -> new DecompressBuffer(cs));
        this.metadata = new MetadataRanges(cs);
        this.refcounts = new Refcounts(file, header, name, metadata, new Refcounts.Guard() {
            @Override
            public void checkFresh(long offset, long length, String what) throws IOException {
                checkOverlap(offset, length, what);
            }

            @Override
            public Qcow2Exception corrupt(String problem) {
                return markCorrupt(problem);
            }
        });
        if (!readOnly) recordMetadata();
        // A contiguous run must fit between two refcount blocks (each sits at the start of the range it covers).
        this.maxRun = (int) Math.min(4096, refcounts.entriesPerBlock / 2);
        this.poolBatch = Math.max(1, Math.min(maxRun, (8L << 20) / cs));
    }

    /**
     * Opens the backing file an image's header names. {@link DiskImage} decides whether it is followed, in which
     * format, and refuses loops; this class only asks, right after the header is read.
     */
    @FunctionalInterface
    public interface BackingOpener {
        BlockBackend open(Path image, Qcow2Header header) throws IOException;
    }

    /** Opens an image and its backing chain; a writable image opens its backing files read-only. */
    public static Qcow2Image open(Path path, boolean readOnly) throws IOException {
        return open(path, readOnly, null, DiskImage.backingChain());
    }

    /** Opens an internal snapshot (by ID or name) read-only. */
    public static Qcow2Image openSnapshot(Path path, String snapshot) throws IOException {
        return open(path, true, snapshot, DiskImage.backingChain());
    }

    /** Reads only the header of a qcow2 file (for info; {@link DiskImage#probe} tells the format). */
    public static Qcow2Header readHeader(Path path) throws IOException {
        requireExists(path);
        try (HostFile headerFile = new HostFile(path, true, false)) { // a header peek takes no image locks
            return parseHeader(headerFile, path.toString());
        }
    }

    private static void requireExists(Path path) throws NoSuchFileException {
        if (!Files.exists(path)) throw new NoSuchFileException(path.toString(), null, "no such file");
    }

    /** The header, parsed from the first 2 MiB of the file at most. */
    private static Qcow2Header parseHeader(HostFile file, String name) throws IOException {
        return Qcow2Header.parse(file.readBytes(0, (int) Math.min(file.length(), 2 << 20)), file.length(), name);
    }

    /**
     * Opens an image (at an internal snapshot, read-only, where {@code snapshot} is not null); {@code backing}
     * is asked for the backing file, if the header names one, before anything but the header is read.
     * {@link DiskImage#open} is the way to open a disk: it probes the format and chooses {@code backing}.
     */
    public static Qcow2Image open(Path path, boolean readOnly, String snapshot, BackingOpener backing)
            throws IOException {
        String name = path.toString();
        requireExists(path);
        HostFile file = new HostFile(path, readOnly);
        BlockBackend backingFile = null;
        try {
            Qcow2Header header = parseHeader(file, name);
            if (header.backingFile != null) backingFile = backing.open(path, header);
            if (!readOnly && header.corrupt()) {
                throw new Qcow2Exception(name
                        + ": image is marked corrupt; open it read-only or repair it with 'qemu-img check -r all'");
            }
            List<Snapshot> snaps = readSnapshots(file, header, name);
            long[] l1;
            long size = header.size;
            if (snapshot == null) {
                l1 = readTable(file, header.l1TableOffset, header.l1Size);
            } else {
                Snapshot chosen = snaps.stream()
                        .filter(candidate -> candidate.id().equals(snapshot))
                        .findFirst()
                        .or(() -> snaps.stream()
                                .filter(candidate -> candidate.name().equals(snapshot))
                                .findFirst())
                        .orElseThrow(() -> new Qcow2Exception(name + ": no snapshot '" + snapshot + "'"));
                l1 = readTable(file, chosen.l1TableOffset(), chosen.l1Size());
                if (chosen.diskSize() > 0) size = chosen.diskSize();
                if (Qcow2Header.l1EntriesFor(size, header.clusterBits, header.extendedL2()) > l1.length) {
                    throw new Qcow2Exception(name + ": snapshot '" + snapshot + "' L1 table too small for its size");
                }
            }
            Qcow2Image img = new Qcow2Image(file, header, name, readOnly, l1, size, snaps, backingFile);
            if (!readOnly) img.prepareForWriting();
            return img;
        } catch (IOException | RuntimeException e) {
            if (backingFile != null)
                try {
                    backingFile.close();
                } catch (IOException ignored) {
                }
            file.close();
            throw e;
        }
    }

    static long[] readTable(HostFile file, long offset, int entries) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(file.readBytes(offset, entries * 8));
        long[] table = new long[entries];
        for (int i = 0; i < entries; i++) table[i] = bytes.getLong(i * 8);
        return table;
    }

    static List<Snapshot> readSnapshots(HostFile file, Qcow2Header header, String name) throws IOException {
        List<Snapshot> out = new ArrayList<>();
        if (header.nbSnapshots == 0) return out;
        long pos = header.snapshotsOffset;
        long limit = Math.min(file.length(), pos + (64L << 20));
        for (int i = 0; i < header.nbSnapshots; i++) {
            if (pos + 40 > limit)
                throw new Qcow2Exception(name + ": snapshot table entry " + i + " past the end of the file");
            ByteBuffer entry = ByteBuffer.wrap(file.readBytes(pos, 40));
            long l1Off = entry.getLong(0);
            int l1Size = entry.getInt(8);
            int idLen = entry.getShort(12) & 0xffff, nameLen = entry.getShort(14) & 0xffff;
            long sec = entry.getInt(16) & 0xffff_ffffL, nsec = entry.getInt(20) & 0xffff_ffffL;
            long vmClock = entry.getLong(24);
            long vmState = entry.getInt(32) & 0xffff_ffffL;
            int extra = entry.getInt(36);
            if (extra < 0 || extra > 1024)
                throw new Qcow2Exception(name + ": snapshot " + i + " extra data size " + extra + " too large");
            long total = 40L + extra + idLen + nameLen;
            if (pos + total > limit)
                throw new Qcow2Exception(name + ": snapshot table entry " + i + " past the end of the file");
            byte[] rest = file.readBytes(pos + 40, (int) (total - 40));
            ByteBuffer extraData = ByteBuffer.wrap(rest);
            long diskSize = 0, icount = -1;
            if (extra >= 8) vmState = extraData.getLong(0);
            if (extra >= 16) diskSize = extraData.getLong(8);
            if (extra >= 24) icount = extraData.getLong(16);
            String id = new String(rest, extra, idLen, StandardCharsets.UTF_8);
            String snapshotName = new String(rest, extra + idLen, nameLen, StandardCharsets.UTF_8);
            if ((l1Off & (header.clusterSize() - 1)) != 0
                    || l1Size < 0
                    || (long) l1Size * 8 > Qcow2Header.MAX_L1_BYTES
                    || (l1Size > 0 && (l1Off <= 0 || l1Off + l1Size * 8L > file.length()))) {
                throw new Qcow2Exception(name + ": snapshot '" + snapshotName + "' has an invalid L1 table (offset 0x"
                        + Long.toHexString(l1Off) + ", " + l1Size + " entries)");
            }
            out.add(new Snapshot(id, snapshotName, l1Off, l1Size, vmState, diskSize, sec, nsec, vmClock, icount, (int)
                    ((total + 7) & ~7L)));
            pos += (total + 7) & ~7L;
        }
        return out;
    }

    /**
     * Notes where every structure the overlap check guards lies. Misaligned entries are left out: using them fails
     * on its own. Entries that point past the end of the file are left out of the map, which the file then bounds
     * (a hostile L1 table could name millions of clusters), and kept in {@link #namedPastEnd}: using them fails only
     * until the file grows over them.
     */
    private void recordMetadata() {
        long end = file.length();
        TreeSet<Long> pastEnd = new TreeSet<>();
        metadata.add(MetadataRanges.Kind.HEADER, 0, cs);
        metadata.add(MetadataRanges.Kind.L1, header.l1TableOffset, header.l1Size * 8L);
        metadata.add(
                MetadataRanges.Kind.REFCOUNT_TABLE,
                header.refcountTableOffset,
                (long) header.refcountTableClusters * cs);
        for (long off : refcounts.table) {
            if (off != 0 && plausibleCluster(off & Refcounts.OFFSET_MASK, end))
                metadata.add(MetadataRanges.Kind.REFCOUNT_BLOCK, off & Refcounts.OFFSET_MASK, cs);
            else if (off != 0 && (off & ~Refcounts.OFFSET_MASK) == 0 && (off & (cs - 1)) == 0) pastEnd.add(off);
        }
        for (long l1Entry : l1) {
            long off = l1Entry & L1_OFFSET_MASK;
            if (off != 0 && plausibleCluster(off, end)) metadata.add(MetadataRanges.Kind.L2, off, cs);
            else if (off != 0 && (off & (cs - 1)) == 0) pastEnd.add(off);
        }
        namedPastEnd = pastEnd.stream().mapToLong(Long::longValue).toArray();
        long snapshotTable = 0;
        for (Snapshot snapshot : snapshots) {
            snapshotTable += snapshot.tableEntryBytes();
            metadata.add(MetadataRanges.Kind.SNAPSHOT_L1, snapshot.l1TableOffset(), snapshot.l1Size() * 8L);
        }
        if (snapshotTable > 0) metadata.add(MetadataRanges.Kind.SNAPSHOT_TABLE, header.snapshotsOffset, snapshotTable);
    }

    private boolean plausibleCluster(long off, long fileEnd) {
        return (off & (cs - 1)) == 0 && off < fileEnd;
    }

    /**
     * The overlap check (QEMU's qcow2_pre_write_overlap_check): guest data or a fresh cluster about to be written
     * at [host, host + length) must not touch metadata, and nothing is ever written to cluster 0 but the header.
     * A hit means the refcounts or an L2 entry lie: the image is marked corrupt and the request fails unwritten.
     */
    private void checkOverlap(long host, long length, String what) throws Qcow2Exception {
        MetadataRanges.Kind hit = metadata.overlap(host, length);
        if (hit == null && host >= cs) {
            long named = namedPastEnd(host, length);
            if (named < 0) return;
            throw markCorrupt(what + " at host offset 0x" + Long.toHexString(host) + " would overwrite metadata (a"
                    + " table an L1 or refcount table entry names at 0x" + Long.toHexString(named)
                    + ", past the end of the file)");
        }
        if (hit == null) hit = MetadataRanges.Kind.HEADER;
        long at = Math.max(0, metadata.overlapStart(host, length));
        throw markCorrupt(what + " at host offset 0x" + Long.toHexString(host) + " would overwrite metadata ("
                + hit.description + " at 0x" + Long.toHexString(at) + ")");
    }

    /** The first table in {@link #namedPastEnd} that [host, host + length) overlaps, or -1. */
    private long namedPastEnd(long host, long length) {
        long[] named = namedPastEnd;
        int i = Arrays.binarySearch(named, host - cs + 1);
        if (i < 0) i = -i - 1;
        return i < named.length && named[i] < host + length ? named[i] : -1;
    }

    /**
     * An update in place of metadata of kind {@code own} at [host, host + length) (an L2 entry into its table, an L1
     * entry into the L1 table) must not touch metadata of another kind: an L1 entry that names the refcount table,
     * the L1 table or a refcount block as its L2 table would otherwise have L2 entries written over it. A hit means
     * the image's tables lie: it is marked corrupt and the update fails unwritten (QEMU checks its metadata writes
     * the same way, leaving out the kind being written).
     */
    private void checkUpdate(long host, long length, MetadataRanges.Kind own, String what) throws Qcow2Exception {
        MetadataRanges.Kind hit = metadata.overlapOther(host, length, own);
        if (hit != null) {
            throw markCorrupt(what + " at host offset 0x" + Long.toHexString(host) + " would overwrite metadata ("
                    + hit.description + ")");
        }
    }

    /**
     * Refuses every later write and, where the image is writable and its version has the bit, sets the header's
     * corrupt bit so no one opens it for writing before it is repaired (as QEMU does). Returns the error to throw.
     */
    private synchronized Qcow2Exception markCorrupt(String problem) {
        Qcow2Exception error = new Qcow2Exception(name + ": " + problem + "; the image is corrupt: writes refused"
                + (header.version >= 3 && !readOnly ? " and the image marked corrupt" : "")
                + " (repair it with 'qemu-img check -r all')");
        if (corruption != null) return error;
        corruption = problem;
        if (!readOnly && header.version >= 3) {
            try {
                file.writeLong(72, header.incompatibleFeatures | Qcow2Header.INCOMPAT_CORRUPT);
                file.sync();
                header.incompatibleFeatures |= Qcow2Header.INCOMPAT_CORRUPT;
            } catch (IOException failed) {
                error.addSuppressed(failed);
            }
        }
        return error;
    }

    /** Dirty images get their refcounts rebuilt (as QEMU does); unknown autoclear bits are cleared. */
    private void prepareForWriting() throws IOException {
        if (header.dirty()) {
            Qcow2Checker.Result repair = new Qcow2Checker(this).run(Qcow2Checker.Repair.ALL);
            if (repair.corruptions() > repair.corruptionsFixed()) {
                throw new Qcow2Exception(name + ": dirty image could not be repaired: "
                        + (repair.corruptions() - repair.corruptionsFixed()) + " errors remain");
            }
            file.sync();
            file.writeLong(72, header.incompatibleFeatures & ~Qcow2Header.INCOMPAT_DIRTY);
            file.sync();
            header.incompatibleFeatures &= ~Qcow2Header.INCOMPAT_DIRTY;
        }
        if (header.version >= 3 && header.autoclearFeatures != 0) {
            // jvmm keeps no bitmaps up to date, so their consistency bit must go before the first write.
            file.writeLong(88, 0);
            file.sync();
            header.autoclearFeatures = 0;
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    public Qcow2Header header() {
        return header;
    }

    public List<Snapshot> snapshots() {
        return List.copyOf(snapshots);
    }

    public BlockBackend backing() {
        return backing;
    }

    private void checkRange(long offset, long length) throws IOException {
        if (closed) throw new IOException(name + ": image is closed");
        if (offset < 0 || length < 0 || offset + length > size || offset + length < 0) {
            throw new IOException(
                    name + ": request [" + offset + ", +" + length + ") outside the virtual size " + size);
        }
    }

    // ---------------------------------------------------------------- reads

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        read(offset, SegmentList.of(dst));
    }

    /** A scatter read: each host-contiguous run of data clusters is one preadv into the buffers it covers. */
    @Override
    public void readv(long offset, List<MemorySegment> dst) throws IOException {
        read(offset, SegmentList.of(dst));
    }

    private void read(long offset, SegmentList dst) throws IOException {
        checkRange(offset, dst.byteSize());
        lock.readLock().lock();
        try {
            readUnlocked(offset, dst);
        } finally {
            lock.readLock().unlock();
        }
    }

    private void readUnlocked(long offset, MemorySegment dst) throws IOException {
        readUnlocked(offset, SegmentList.of(dst));
    }

    private void readUnlocked(long offset, SegmentList dst) throws IOException {
        Mapping mapping = new Mapping();
        long len = dst.byteSize(), pos = 0;
        while (pos < len) {
            classify(offset + pos, len - pos, mapping);
            long runLength = mapping.length;
            if (mapping.type == TYPE_DATA) {
                // Coalesce host-contiguous data so sequential reads become one pread.
                Mapping next = new Mapping();
                while (pos + runLength < len && runLength < MAX_RUN) {
                    classify(offset + pos + runLength, len - pos - runLength, next);
                    if (next.type != TYPE_DATA || next.host != mapping.host + runLength) break;
                    runLength += next.length;
                }
            }
            SegmentList part = dst.slice(pos, runLength);
            switch (mapping.type) {
                case TYPE_DATA -> file.readv(mapping.host, part.segments());
                case TYPE_ZERO -> part.fill((byte) 0);
                case TYPE_UNALLOCATED -> readBacking(offset + pos, part);
                default -> readCompressed(mapping.host, (int) ((offset + pos) & (cs - 1)), part);
            }
            pos += runLength;
        }
    }

    private void readBacking(long guestOffset, SegmentList part) throws IOException {
        long fromBacking = 0;
        if (backing != null && guestOffset < backingSize) {
            fromBacking = Math.min(part.byteSize(), backingSize - guestOffset);
            backing.readv(guestOffset, part.slice(0, fromBacking).segments());
        }
        if (fromBacking < part.byteSize()) part.slice(fromBacking).fill((byte) 0);
    }

    private void readCompressed(long entry, int inCluster, SegmentList part) throws IOException {
        DecompressBuffer buf = decompressBuffers.get();
        long gen = freeGeneration;
        if (buf.entry != entry || buf.generation != gen) {
            decompressCluster(entry, buf);
            buf.entry = entry;
            buf.generation = gen; // freed and reused compressed space must not be served from this cache
        }
        part.copyFrom(MemorySegment.ofArray(buf.out), inCluster, 0, part.byteSize());
    }

    /** Host byte offset and length of a compressed cluster's data. */
    long[] compressedExtent(long entry) {
        long host = entry & ((1L << compressedOffsetBits) - 1);
        long sectors = (entry >>> compressedOffsetBits) & ((1L << (62 - compressedOffsetBits)) - 1);
        long len = (sectors + 1) * 512 - (host & 511);
        return new long[] {host, len};
    }

    private void decompressCluster(long entry, DecompressBuffer buf) throws IOException {
        long[] ext = compressedExtent(entry);
        long host = ext[0];
        if (host >= file.length() || host < cs) {
            throw new Qcow2Exception(name + ": compressed cluster at host offset 0x" + Long.toHexString(host)
                    + " lies outside the file");
        }
        int len = (int) Math.min(Math.min(ext[1], buf.in.length), file.length() - host);
        file.read(host, buf.in, 0, len);
        buf.entry = -1;
        Compression.decompress(
                header.compressionType,
                buf.in,
                len,
                buf.out,
                cs,
                name + ": compressed cluster at 0x" + Long.toHexString(host));
    }

    private long[] l2Table(long l1Index) throws IOException {
        long l2Offset = l1[(int) l1Index] & L1_OFFSET_MASK;
        long[] cached = l2Cache.get(l2Offset);
        if (cached != null) return cached;
        if ((l2Offset & (cs - 1)) != 0 || l2Offset >= file.length()) {
            throw new Qcow2Exception(name + ": L1 entry " + l1Index + " points to L2 table at 0x"
                    + Long.toHexString(l2Offset)
                    + (l2Offset >= file.length() ? ", past the end of the file" : ", not aligned to a cluster"));
        }
        return l2Cache.put(l2Offset, readTable(file, l2Offset, cs / 8));
    }

    /** Classifies the mapping of the guest range starting at guestOffset (at most len bytes, one cluster). */
    private void classify(long guestOffset, long len, Mapping mapping) throws IOException {
        long cluster = guestOffset >>> clusterBits;
        int inCluster = (int) (guestOffset & (cs - 1));
        long l1Index = cluster / l2Entries;
        int l2Index = (int) (cluster % l2Entries);
        int avail = (int) Math.min(len, cs - inCluster);
        mapping.length = avail;
        if (l1Index >= l1.length || (l1[(int) l1Index] & L1_OFFSET_MASK) == 0) {
            mapping.type = TYPE_UNALLOCATED;
            return;
        }
        long[] l2 = l2Table(l1Index);
        long entry = l2[entryIndex(l2Index)];
        if ((entry & COMPRESSED) != 0) {
            mapping.type = TYPE_COMPRESSED;
            mapping.host = entry;
            return;
        }
        long host = entry & L2_OFFSET_MASK;
        if (!extL2) {
            if (header.version >= 3 && (entry & ZERO) != 0) {
                mapping.type = TYPE_ZERO;
            } else if (host == 0) {
                mapping.type = TYPE_UNALLOCATED;
            } else {
                mapping.type = TYPE_DATA;
                mapping.host = checkedHost(host, guestOffset) + inCluster;
            }
            return;
        }
        long bitmap = l2[2 * l2Index + 1];
        int alloc = (int) bitmap, zero = (int) (bitmap >>> 32);
        if ((alloc & zero) != 0) {
            throw new Qcow2Exception(name + ": L2 entry for guest offset 0x" + Long.toHexString(guestOffset)
                    + " marks subclusters both allocated and zero");
        }
        int subcluster = inCluster / subclusterSize;
        int type = subclusterType(alloc, zero, subcluster);
        int run = (subcluster + 1) * subclusterSize - inCluster;
        for (int next = subcluster + 1; next < 32 && run < avail; next++) {
            if (subclusterType(alloc, zero, next) != type) break;
            run += subclusterSize;
        }
        mapping.type = type;
        mapping.length = Math.min(run, avail);
        if (type == TYPE_DATA) {
            if (host == 0) {
                throw new Qcow2Exception(name + ": L2 entry for guest offset 0x" + Long.toHexString(guestOffset)
                        + " has allocated subclusters but no host offset");
            }
            mapping.host = checkedHost(host, guestOffset) + inCluster;
        }
    }

    /** The type of one subcluster of an extended L2 entry, from its allocation and zero bitmaps. */
    private static int subclusterType(int allocBitmap, int zeroBitmap, int subcluster) {
        if ((allocBitmap >>> subcluster & 1) != 0) return TYPE_DATA;
        return (zeroBitmap >>> subcluster & 1) != 0 ? TYPE_ZERO : TYPE_UNALLOCATED;
    }

    /** Where the entry for L2 index {@code l2Index} sits in a cached table (extended entries take two longs). */
    private int entryIndex(int l2Index) {
        return extL2 ? 2 * l2Index : l2Index;
    }

    /** Subclusters {@code first} to {@code last} (inclusive) as a bitmap mask. */
    private static long subclusterMask(int first, int last) {
        return ((1L << (last + 1)) - 1) & ~((1L << first) - 1);
    }

    private long checkedHost(long host, long guestOffset) throws Qcow2Exception {
        if ((host & (cs - 1)) != 0) {
            throw new Qcow2Exception(name + ": L2 entry for guest offset 0x" + Long.toHexString(guestOffset)
                    + " has host offset 0x" + Long.toHexString(host) + " not aligned to a cluster");
        }
        if (host >= file.length()) {
            throw new Qcow2Exception(name + ": L2 entry for guest offset 0x" + Long.toHexString(guestOffset)
                    + " points to 0x" + Long.toHexString(host) + ", past the end of the file");
        }
        return host;
    }

    // ---------------------------------------------------------------- writes

    private void checkWritable() throws IOException {
        if (readOnly) throw new IOException(name + ": image is open read-only");
        String problem = corruption;
        if (problem != null) throw new Qcow2Exception(name + ": image is corrupt (" + problem + "); writes refused");
        IOException failure = file.failure();
        if (failure != null) {
            throw new IOException(
                    name + ": takes no more writes since a write of its metadata or a flush failed ("
                            + failure.getMessage() + ")",
                    failure);
        }
    }

    /** Guest data to host offset {@code host}, after the overlap check. */
    private void writeData(long host, SegmentList data) throws IOException {
        checkOverlap(host, data.byteSize(), "guest data");
        file.writevData(host, data.segments());
    }

    private void writeData(long host, byte[] data, int length) throws IOException {
        checkOverlap(host, length, "guest data");
        file.writeData(host, data, 0, length);
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        write(offset, SegmentList.of(src));
    }

    /** A gather write: each run of clusters this image owns, host-contiguous, is one pwritev from the buffers. */
    @Override
    public void writev(long offset, List<MemorySegment> src) throws IOException {
        write(offset, SegmentList.of(src));
    }

    private void write(long offset, SegmentList src) throws IOException {
        checkRange(offset, src.byteSize());
        checkWritable();
        long len = src.byteSize(), pos = 0;
        while (pos < len) {
            long runLength = 0;
            lock.readLock().lock();
            try {
                long runHost = -1;
                while (pos + runLength < len && runLength < MAX_RUN) {
                    long guestOffset = offset + pos + runLength;
                    int piece = (int) Math.min(len - pos - runLength, cs - (guestOffset & (cs - 1)));
                    long host = ownedHost(guestOffset, piece);
                    if (host < 0 || (runHost >= 0 && host != runHost + runLength)) break;
                    if (runHost < 0) runHost = host;
                    runLength += piece;
                }
                if (runLength > 0) writeData(runHost, src.slice(pos, runLength));
            } finally {
                lock.readLock().unlock();
            }
            if (runLength == 0) {
                lock.writeLock().lock();
                try {
                    runLength = writeAllocating(offset + pos, src, pos, len - pos);
                } finally {
                    lock.writeLock().unlock();
                }
            }
            pos += runLength;
        }
    }

    /**
     * The host offset for guest range [guestOffset, guestOffset + len) within one cluster if this image owns that
     * cluster (refcount 1, allocated, every touched subcluster allocated) so the data may be written in place;
     * else -1.
     */
    private long ownedHost(long guestOffset, int len) throws IOException {
        long cluster = guestOffset >>> clusterBits;
        long l1Index = cluster / l2Entries;
        long l1Entry = l1[(int) l1Index];
        if ((l1Entry & COPIED) == 0 || (l1Entry & L1_OFFSET_MASK) == 0) return -1;
        long[] l2 = l2Table(l1Index);
        int l2Index = (int) (cluster % l2Entries);
        long entry = l2[entryIndex(l2Index)];
        if ((entry & COPIED) == 0 || (entry & COMPRESSED) != 0) return -1;
        long host = entry & L2_OFFSET_MASK;
        if (host == 0) return -1;
        int inCluster = (int) (guestOffset & (cs - 1));
        if (extL2) {
            int alloc = (int) l2[2 * l2Index + 1];
            int first = inCluster / subclusterSize, last = (inCluster + len - 1) / subclusterSize;
            int mask = (int) subclusterMask(first, last);
            if ((alloc & mask) != mask) return -1;
        } else if ((entry & ZERO) != 0 && header.version >= 3) {
            return -1;
        }
        checkedHost(host, guestOffset);
        return host + inCluster;
    }

    /**
     * Slow path under the write lock: writes from src[srcPos..] starting at {@code guestOffset}, for the first
     * cluster and any following whole clusters that need a fresh allocation (allocated as one contiguous run).
     * Returns the number of bytes written.
     */
    private long writeAllocating(long guestOffset, SegmentList src, long srcPos, long remaining) throws IOException {
        int inCluster = (int) (guestOffset & (cs - 1));
        int piece = (int) Math.min(remaining, cs - inCluster);
        long cluster = guestOffset >>> clusterBits;
        long l1Index = cluster / l2Entries;
        long[] l2 = writableL2(l1Index);
        int l2Index = (int) (cluster % l2Entries);
        int entryIndex = entryIndex(l2Index);
        long entry = l2[entryIndex];
        long host = entry & L2_OFFSET_MASK;
        boolean compressed = (entry & COMPRESSED) != 0;
        if (!compressed && host != 0 && (entry & COPIED) == 0 && refcounts.get(host >>> clusterBits) == 1) {
            entry |= COPIED; // the flag was merely stale: the cluster is ours
        }
        boolean owned = !compressed && host != 0 && (entry & COPIED) != 0;
        if (owned) {
            checkedHost(host, guestOffset);
            if (extL2) {
                writeSubclusters(guestOffset, src, srcPos, piece, host, l1Index, l2, l2Index, entry);
            } else {
                if ((entry & ZERO) != 0 && header.version >= 3) {
                    byte[] buf = new byte[cs];
                    src.copyTo(srcPos, MemorySegment.ofArray(buf), inCluster, piece);
                    writeData(host, buf, cs);
                    setL2(l1Index, l2, l2Index, entry & ~ZERO, 0);
                } else {
                    writeData(host + inCluster, src.slice(srcPos, piece));
                    if (entry != l2[entryIndex]) setL2(l1Index, l2, l2Index, entry, 0);
                }
            }
            return piece;
        }
        // A fresh cluster is needed. Whole clusters that follow in the same L2 table and are unallocated
        // (or zero) join the allocation so sequential writes land contiguously.
        int clusters = 1;
        if (!extL2 && !compressed && host == 0 && piece == cs) {
            while (clusters < maxRun && remaining - (long) clusters * cs >= cs && l2Index + clusters < l2Entries) {
                long next = l2[l2Index + clusters];
                if ((next & (L2_OFFSET_MASK | COMPRESSED)) != 0) break;
                clusters++;
            }
        }
        long newHost = allocate(clusters);
        if (clusters > 1) {
            writeData(newHost, src.slice(srcPos, (long) clusters * cs));
            for (int i = 0; i < clusters; i++) setL2(l1Index, l2, l2Index + i, (newHost + (long) i * cs) | COPIED, 0);
            return (long) clusters * cs;
        }
        long clusterStart = cluster << clusterBits;
        if (extL2 && host == 0 && !compressed) {
            // Only the touched subclusters are allocated; the others keep reading from backing / zero.
            writeSubclusters(guestOffset, src, srcPos, piece, newHost, l1Index, l2, l2Index, newHost | COPIED);
            return piece;
        }
        byte[] buf = new byte[cs];
        MemorySegment whole = MemorySegment.ofArray(buf);
        if (piece < cs) {
            long visible = Math.min(cs, size - clusterStart);
            readUnlocked(clusterStart, whole.asSlice(0, visible));
        }
        src.copyTo(srcPos, whole, inCluster, piece);
        writeData(newHost, buf, cs);
        setL2(l1Index, l2, l2Index, newHost | COPIED, extL2 ? 0xffff_ffffL : 0);
        releaseOld(entry);
        return piece;
    }

    /**
     * Writes the subclusters a piece of guest data touches, in a cluster at {@code host}: the data plus, at the
     * edges, the current content; then maps them with {@code entry}, marked allocated in the L2 bitmap.
     */
    private void writeSubclusters(
            long guestOffset,
            SegmentList src,
            long srcPos,
            int piece,
            long host,
            long l1Index,
            long[] l2,
            int l2Index,
            long entry)
            throws IOException {
        long bitmap = l2[2 * l2Index + 1];
        long clusterStart = guestOffset & ~(long) (cs - 1);
        int inCluster = (int) (guestOffset - clusterStart);
        int first = inCluster / subclusterSize, last = (inCluster + piece - 1) / subclusterSize;
        int spanStart = first * subclusterSize, spanLen = (last + 1 - first) * subclusterSize;
        if (spanStart == inCluster && spanLen == piece) {
            writeData(host + spanStart, src.slice(srcPos, piece));
        } else {
            byte[] buf = new byte[spanLen];
            MemorySegment span = MemorySegment.ofArray(buf);
            long visible = Math.min(spanLen, size - clusterStart - spanStart);
            if (visible > 0) readUnlocked(clusterStart + spanStart, span.asSlice(0, visible));
            src.copyTo(srcPos, span, inCluster - spanStart, piece);
            writeData(host + spanStart, buf, spanLen);
        }
        long mask = subclusterMask(first, last);
        setL2(l1Index, l2, l2Index, entry, (bitmap | mask) & ~(mask << 32));
    }

    /** Updates an L2 entry in the file and then, once that succeeded, in the cache. */
    private void setL2(long l1Index, long[] l2, int l2Index, long entry, long bitmap) throws IOException {
        long l2Offset = l1[(int) l1Index] & L1_OFFSET_MASK;
        checkUpdate(l2Offset + (extL2 ? 16L : 8L) * l2Index, extL2 ? 16 : 8, MetadataRanges.Kind.L2, "an L2 entry");
        if (extL2) {
            file.write(
                    l2Offset + 16L * l2Index,
                    ByteBuffer.allocate(16).putLong(0, entry).putLong(8, bitmap));
            l2[2 * l2Index] = entry;
            l2[2 * l2Index + 1] = bitmap;
        } else {
            file.writeLong(l2Offset + 8L * l2Index, entry);
            l2[l2Index] = entry;
        }
    }

    /** Queues the refcount decrements for what an overwritten L2 entry referenced (applied at flush). */
    private void releaseOld(long entry) {
        if ((entry & COMPRESSED) != 0) {
            long[] ext = compressedExtent(entry);
            long firstCluster = ext[0] >>> clusterBits, lastCluster = (ext[0] + ext[1] - 1) >>> clusterBits;
            for (long cluster = firstCluster; cluster <= lastCluster; cluster++) pendingFrees.add(cluster);
        } else if ((entry & L2_OFFSET_MASK) != 0) {
            pendingFrees.add((entry & L2_OFFSET_MASK) >>> clusterBits);
        }
    }

    /** The L2 table for l1Index, made exclusively ours: allocated if absent, copied if shared with a snapshot. */
    private long[] writableL2(long l1Index) throws IOException {
        long l1Entry = l1[(int) l1Index];
        long old = l1Entry & L1_OFFSET_MASK;
        if (old != 0 && (l1Entry & COPIED) != 0) return l2Table(l1Index);
        if (old != 0 && refcounts.get(old >>> clusterBits) == 1) {
            setL1(l1Index, old | COPIED);
            return l2Table(l1Index);
        }
        long[] content = old == 0 ? new long[cs / 8] : l2Table(l1Index).clone();
        if (old != 0) {
            // Clusters the shared table maps are shared too: they must be copied before being written.
            for (int i = 0; i < content.length; i += extL2 ? 2 : 1) content[i] &= ~COPIED;
        }
        long fresh = allocate(1);
        ByteBuffer table = ByteBuffer.allocate(cs);
        for (int i = 0; i < content.length; i++) table.putLong(i * 8, content[i]);
        file.write(fresh, table);
        file.sync();
        setL1(l1Index, fresh | COPIED);
        if (old != 0) pendingFrees.add(old >>> clusterBits);
        return l2Cache.put(fresh, content);
    }

    /** Points an L1 entry elsewhere: in the file first, then in memory and in the overlap check's map. */
    private void setL1(long l1Index, long entry) throws IOException {
        checkUpdate(header.l1TableOffset + 8 * l1Index, 8, MetadataRanges.Kind.L1, "an L1 entry");
        file.writeLong(header.l1TableOffset + 8 * l1Index, entry);
        long old = l1[(int) l1Index] & L1_OFFSET_MASK, now = entry & L1_OFFSET_MASK;
        l1[(int) l1Index] = entry;
        if (old != now) {
            if (old != 0) metadata.remove(MetadataRanges.Kind.L2, old, cs);
            if (now != 0) metadata.add(MetadataRanges.Kind.L2, now, cs);
        }
    }

    /** {@code count} contiguous clusters whose refcount 1 is already durable; returns the host offset. */
    private long allocate(int count) throws IOException {
        if (count > maxRun) {
            throw new Qcow2Exception(name + ": cannot allocate " + count + " contiguous clusters with this cluster size"
                    + " and refcount width (at most " + maxRun + "); use larger clusters");
        }
        if (poolNext + count > poolEnd) {
            releasePool();
            long want = Math.max(count, poolBatch);
            long first = refcounts.allocate(want);
            file.sync();
            // Clusters whose refcounts say free but that hold metadata: the refcounts are corrupt.
            checkOverlap(first << clusterBits, want * cs, "a newly allocated cluster");
            poolNext = first;
            poolEnd = first + want;
        }
        long cluster = poolNext;
        checkOverlap(cluster << clusterBits, (long) count * cs, "a newly allocated cluster");
        poolNext += count;
        return cluster << clusterBits;
    }

    private void releasePool() throws IOException {
        for (long cluster = poolNext; cluster < poolEnd; cluster++) refcounts.set(cluster, 0);
        poolNext = poolEnd = 0;
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        checkRange(offset, length);
        checkWritable();
        long pos = 0;
        while (pos < length) {
            long guestOffset = offset + pos;
            int inCluster = (int) (guestOffset & (cs - 1));
            int piece = (int) Math.min(length - pos, cs - inCluster);
            boolean wholeCluster = piece == cs || (inCluster == 0 && guestOffset + piece == size);
            lock.writeLock().lock();
            try {
                if (wholeCluster) zeroCluster(guestOffset >>> clusterBits, mayUnmap);
                else zeroPartial(guestOffset, piece);
            } finally {
                lock.writeLock().unlock();
            }
            pos += piece;
        }
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        writeZeroes(offset, length, true);
    }

    private boolean backingCovers(long guestOffset) {
        return backing != null && guestOffset < backingSize;
    }

    private void zeroCluster(long cluster, boolean mayUnmap) throws IOException {
        long l1Index = cluster / l2Entries;
        int l2Index = (int) (cluster % l2Entries);
        long guestOffset = cluster << clusterBits;
        boolean l2Exists = (l1[(int) l1Index] & L1_OFFSET_MASK) != 0;
        if (!l2Exists && !backingCovers(guestOffset)) return; // already reads as zeroes
        if (header.version < 3) {
            if (l2Exists) {
                long[] l2 = writableL2(l1Index);
                long entry = l2[l2Index];
                if ((entry & (L2_OFFSET_MASK | COMPRESSED)) == 0 && !backingCovers(guestOffset)) return;
                if (mayUnmap && !backingCovers(guestOffset)) {
                    setL2(l1Index, l2, l2Index, 0, 0);
                    releaseOld(entry);
                    return;
                }
            }
            writeZeroData(guestOffset, cs);
            return;
        }
        long[] l2 = writableL2(l1Index);
        long entry = l2[entryIndex(l2Index)];
        long host = entry & L2_OFFSET_MASK;
        boolean compressed = (entry & COMPRESSED) != 0;
        boolean owned = !compressed && host != 0 && (entry & COPIED) != 0;
        boolean keep = owned && !mayUnmap;
        if (extL2) {
            setL2(l1Index, l2, l2Index, keep ? entry : 0, 0xffff_ffffL << 32);
        } else {
            setL2(l1Index, l2, l2Index, keep ? (host | COPIED | ZERO) : ZERO, 0);
        }
        if (!keep) releaseOld(entry);
    }

    private void zeroPartial(long guestOffset, int piece) throws IOException {
        if (extL2) {
            // Whole subclusters become zero subclusters; the ragged edges get zero data.
            long clusterStart = guestOffset & ~(long) (cs - 1);
            int inCluster = (int) (guestOffset - clusterStart);
            int first = (inCluster + subclusterSize - 1) / subclusterSize, end = (inCluster + piece) / subclusterSize;
            if (first < end) {
                long cluster = guestOffset >>> clusterBits;
                long l1Index = cluster / l2Entries;
                int l2Index = (int) (cluster % l2Entries);
                long[] l2 = writableL2(l1Index);
                long entry = l2[2 * l2Index];
                if ((entry & COMPRESSED) == 0) {
                    long mask = subclusterMask(first, end - 1);
                    long bitmap = l2[2 * l2Index + 1];
                    setL2(l1Index, l2, l2Index, entry, (bitmap & ~mask) | (mask << 32));
                    int headLen = first * subclusterSize - inCluster;
                    if (headLen > 0) writeZeroData(guestOffset, headLen);
                    int tailStart = end * subclusterSize;
                    if (inCluster + piece > tailStart)
                        writeZeroData(clusterStart + tailStart, inCluster + piece - tailStart);
                    return;
                }
            }
        }
        writeZeroData(guestOffset, piece);
    }

    private void writeZeroData(long guestOffset, int len) throws IOException {
        SegmentList zeros = SegmentList.of(MemorySegment.ofArray(new byte[len]));
        long pos = 0;
        while (pos < len) pos += writeAllocatingOrOwned(guestOffset + pos, zeros, pos, len - pos);
    }

    private long writeAllocatingOrOwned(long guestOffset, SegmentList src, long srcPos, long remaining)
            throws IOException {
        int piece = (int) Math.min(remaining, cs - (guestOffset & (cs - 1)));
        long host = ownedHost(guestOffset, piece);
        if (host >= 0) {
            writeData(host, src.slice(srcPos, piece));
            return piece;
        }
        return writeAllocating(guestOffset, src, srcPos, piece);
    }

    // ---------------------------------------------------------------- flush / close

    @Override
    public void flush() throws IOException {
        if (closed) throw new IOException(name + ": image is closed");
        if (readOnly) return;
        IOException failure = file.failure();
        if (failure != null) {
            // The file may hold half of a metadata update: no flush may call that durable.
            throw new IOException(
                    name + ": cannot flush: a write of its metadata or an earlier flush failed (" + failure.getMessage()
                            + ")",
                    failure);
        }
        List<Long> frees;
        lock.writeLock().lock();
        try {
            frees = pendingFrees;
            pendingFrees = new ArrayList<>();
        } finally {
            lock.writeLock().unlock();
        }
        file.sync();
        // A corrupt image's refcounts are not to be trusted or written: what would be freed stays leaked.
        if (!frees.isEmpty() && corruption == null) {
            lock.writeLock().lock();
            try {
                for (long cluster : frees) refcounts.adjust(cluster, -1);
                freeGeneration++;
            } finally {
                lock.writeLock().unlock();
            }
        }
    }

    @Override
    public void close() throws IOException {
        if (closed) return;
        try {
            if (!readOnly && file.failure() != null) {
                // Nothing more is written to a file whose metadata writes or syncs failed.
            } else if (!readOnly && corruption != null) {
                file.sync();
            } else if (!readOnly) {
                flush();
                lock.writeLock().lock();
                try {
                    releasePool();
                } finally {
                    lock.writeLock().unlock();
                }
                file.sync();
            }
        } finally {
            closed = true;
            try {
                file.close();
            } finally {
                if (backing != null) backing.close();
            }
        }
    }

    // ---------------------------------------------------------------- used by the tools

    /** Grows the virtual size; the L1 table moves to a larger place if it must grow. */
    public void resize(long newSize) throws IOException {
        checkWritable();
        if (newSize < size) throw new IOException(name + ": shrinking is not supported (current size " + size + ")");
        if ((newSize & 511) != 0) throw new IOException(name + ": size " + newSize + " is not a multiple of 512");
        lock.writeLock().lock();
        try {
            long needed = Qcow2Header.l1EntriesFor(newSize, clusterBits, extL2);
            if (needed * 8 > Qcow2Header.MAX_L1_BYTES) {
                throw new IOException(
                        name + ": size " + newSize + " needs an L1 table over 32 MiB; use larger clusters");
            }
            if (needed > l1.length) {
                long[] grown = java.util.Arrays.copyOf(l1, (int) needed);
                int clusters = (int) ((needed * 8 + cs - 1) / cs);
                long off = allocate(clusters);
                ByteBuffer table = ByteBuffer.allocate(clusters * cs);
                for (int i = 0; i < grown.length; i++) table.putLong(i * 8, grown[i]);
                file.write(off, table);
                file.sync();
                file.write(36, ByteBuffer.allocate(12).putInt(0, (int) needed).putLong(4, off));
                file.sync();
                long oldOff = header.l1TableOffset;
                int oldClusters = (int) ((header.l1Size * 8L + cs - 1) / cs);
                l1 = grown;
                metadata.remove(MetadataRanges.Kind.L1, header.l1TableOffset, header.l1Size * 8L);
                metadata.add(MetadataRanges.Kind.L1, off, needed * 8);
                header.l1Size = (int) needed;
                header.l1TableOffset = off;
                for (int i = 0; i < oldClusters && oldOff != 0; i++) refcounts.adjust((oldOff >>> clusterBits) + i, -1);
            }
            file.writeLong(24, newSize);
            file.sync();
            header.size = newSize;
            size = newSize;
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Maps every guest cluster to a host cluster (reads zero: the file is sparse), as qemu-img's
     * preallocation=metadata.
     */
    void preallocateMetadata() throws IOException {
        checkWritable();
        lock.writeLock().lock();
        try {
            long clusters = (size + cs - 1) >>> clusterBits;
            for (long cluster = 0; cluster < clusters; ) {
                long l1Index = cluster / l2Entries;
                int l2Index = (int) (cluster % l2Entries);
                long[] l2 = writableL2(l1Index);
                int count = (int) Math.min(Math.min(clusters - cluster, l2Entries - l2Index), maxRun);
                long host = allocate(count);
                for (int i = 0; i < count; i++) {
                    setL2(l1Index, l2, l2Index + i, (host + (long) i * cs) | COPIED, extL2 ? 0xffff_ffffL : 0);
                }
                cluster += count;
                file.truncate(Math.max(file.length(), host + (long) count * cs));
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    private long compressedCursor, compressedEnd;

    /**
     * Writes one whole guest cluster compressed (for conversions): the cluster must be cluster-aligned;
     * data shorter than a cluster (the image's last cluster) is padded with zeroes. Data that does not
     * compress is written as a normal cluster. Compressed clusters are packed byte-wise into host clusters;
     * each host cluster's refcount counts the compressed clusters in it.
     */
    public void writeCompressed(long guestOffset, byte[] data, int length) throws IOException {
        checkRange(guestOffset, Math.min(length, size - guestOffset));
        checkWritable();
        if ((guestOffset & (cs - 1)) != 0 || length > cs) {
            throw new IllegalArgumentException("compressed writes take one whole cluster at a cluster boundary");
        }
        byte[] in = data;
        if (length < cs) {
            in = new byte[cs];
            System.arraycopy(data, 0, in, 0, length);
        }
        byte[] out = new byte[cs];
        int compressedLength = Compression.compress(header.compressionType, in, cs, out);
        lock.writeLock().lock();
        try {
            if (compressedLength < 0) {
                writeAllocating(
                        guestOffset, SegmentList.of(MemorySegment.ofArray(in)), 0, Math.min(cs, size - guestOffset));
                return;
            }
            long cluster = guestOffset >>> clusterBits;
            long l1Index = cluster / l2Entries;
            int l2Index = (int) (cluster % l2Entries);
            long[] l2 = writableL2(l1Index);
            long old = l2[entryIndex(l2Index)];
            if (compressedCursor == 0 || compressedCursor + compressedLength > compressedEnd) {
                compressedCursor = allocate(1);
                compressedEnd = compressedCursor + cs;
            } else {
                refcounts.adjust(compressedCursor >>> clusterBits, 1);
            }
            long host = compressedCursor;
            writeData(host, out, compressedLength);
            compressedCursor += compressedLength;
            long extraSectors = ((host + compressedLength - 1) >>> 9) - (host >>> 9);
            setL2(l1Index, l2, l2Index, COMPRESSED | extraSectors << compressedOffsetBits | host, 0);
            releaseOld(old);
        } finally {
            lock.writeLock().unlock();
        }
    }

    public int clusterSize() {
        return cs;
    }

    long poolRemaining() {
        return poolEnd - poolNext;
    }

    void invalidateCaches() {
        l2Cache.clear();
    }

    ReentrantReadWriteLock lock() {
        return lock;
    }
}
