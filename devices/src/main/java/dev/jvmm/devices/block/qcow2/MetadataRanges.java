package dev.jvmm.devices.block.qcow2;

import java.util.Map;
import java.util.TreeMap;

/**
 * Where an image's metadata lies in the file, for the overlap check every write of guest data or of a newly
 * allocated cluster passes first, and every update of metadata in place (an entry written into its table) with
 * its own kind left out (QEMU's qcow2_pre_write_overlap_check, in its default "cached" mode: the header, the L1
 * table, the refcount table and blocks, the active L2 tables, the snapshot table and the snapshots' L1 tables; not
 * the snapshots' L2 tables, which would mean reading them all).
 *
 * <p>Kept as disjoint pieces sorted by host offset, each counting how many structures of each kind cover it,
 * so a query is two lookups in a tree and a corrupt image whose structures overlap each other (two L1
 * entries naming one L2 table) still adds and removes cleanly. Updated as metadata is allocated, moved or
 * freed. Not thread-safe: changed under the image's write lock, read under its read lock.
 */
final class MetadataRanges {
    enum Kind {
        HEADER("the header"),
        L1("the L1 table"),
        REFCOUNT_TABLE("the refcount table"),
        REFCOUNT_BLOCK("a refcount block"),
        L2("an active L2 table"),
        SNAPSHOT_TABLE("the snapshot table"),
        SNAPSHOT_L1("a snapshot's L1 table");

        final String description;

        Kind(String description) {
            this.description = description;
        }
    }

    private static final Kind[] KINDS = Kind.values();

    private static final class Piece {
        long end;
        final int[] counts;

        Piece(long end, int[] counts) {
            this.end = end;
            this.counts = counts;
        }

        Kind kind() {
            for (Kind k : KINDS) if (counts[k.ordinal()] > 0) return k;
            return null;
        }
    }

    private final TreeMap<Long, Piece> pieces = new TreeMap<>();
    private final long clusterMask;

    MetadataRanges(int clusterSize) {
        this.clusterMask = clusterSize - 1;
    }

    /** Covers [offset, offset + length), widened to whole clusters, as one more structure of this kind. */
    void add(Kind kind, long offset, long length) {
        if (length <= 0) return;
        long start = offset & ~clusterMask, end = (offset + length + clusterMask) & ~clusterMask;
        split(start);
        split(end);
        long pos = start;
        // Copy the keys first: gaps are filled while walking.
        for (Map.Entry<Long, Piece> e : new TreeMap<>(pieces.subMap(start, end)).entrySet()) {
            if (e.getKey() > pos) pieces.put(pos, new Piece(e.getKey(), one(kind)));
            e.getValue().counts[kind.ordinal()]++;
            pos = e.getValue().end;
        }
        if (pos < end) pieces.put(pos, new Piece(end, one(kind)));
    }

    /** Undoes one {@link #add} of the same kind and range (the structure moved or was freed). */
    void remove(Kind kind, long offset, long length) {
        if (length <= 0) return;
        long start = offset & ~clusterMask, end = (offset + length + clusterMask) & ~clusterMask;
        split(start);
        split(end);
        var it = pieces.subMap(start, end).values().iterator();
        while (it.hasNext()) {
            Piece p = it.next();
            if (p.counts[kind.ordinal()] > 0) p.counts[kind.ordinal()]--;
            if (p.kind() == null) it.remove();
        }
    }

    /** The metadata [offset, offset + length) overlaps (the last piece of it), or null if none. */
    Kind overlap(long offset, long length) {
        Piece p = last(offset, length);
        return p == null ? null : p.kind();
    }

    /**
     * Metadata of a kind other than {@code own} that [offset, offset + length) overlaps, or null: for an update in
     * place of a structure of kind {@code own}, which may touch that structure (and others of its kind: two L1 entries
     * naming one L2 table) but nothing else, such as the refcount table an L1 entry wrongly names as its L2 table.
     */
    Kind overlapOther(long offset, long length, Kind own) {
        if (length <= 0) return null;
        Map.Entry<Long, Piece> first = pieces.floorEntry(offset);
        long from = first != null && first.getValue().end > offset ? first.getKey() : offset;
        for (Piece p : pieces.subMap(from, true, offset + length, false).values()) {
            for (Kind k : KINDS) if (k != own && p.counts[k.ordinal()] > 0) return k;
        }
        return null;
    }

    /** Where the metadata found by {@link #overlap} begins, or -1: for messages. */
    long overlapStart(long offset, long length) {
        if (length <= 0) return -1;
        Map.Entry<Long, Piece> e = pieces.floorEntry(offset + length - 1);
        return e != null && e.getValue().end > offset ? e.getKey() : -1;
    }

    /**
     * One lookup: the piece starting last at or before the range's last byte. Pieces are disjoint, so if that
     * one ends before the range, every earlier one does too.
     */
    private Piece last(long offset, long length) {
        if (length <= 0) return null;
        Map.Entry<Long, Piece> e = pieces.floorEntry(offset + length - 1);
        return e != null && e.getValue().end > offset ? e.getValue() : null;
    }

    int pieceCount() {
        return pieces.size();
    }

    private static int[] one(Kind kind) {
        int[] c = new int[KINDS.length];
        c[kind.ordinal()] = 1;
        return c;
    }

    /** Makes a piece boundary at {@code at} if a piece straddles it. */
    private void split(long at) {
        Map.Entry<Long, Piece> e = pieces.lowerEntry(at);
        if (e == null || e.getValue().end <= at) return;
        Piece p = e.getValue();
        pieces.put(at, new Piece(p.end, p.counts.clone()));
        p.end = at;
    }
}
