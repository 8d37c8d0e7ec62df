package dev.jvmm.devices.block.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The two-level refcount structure: table in memory, blocks cached, every change written through at once.
 * Not thread-safe: the image calls it under its write lock. Crash-safety rules kept here: a new refcount
 * block is durable before the table points at it; a grown table is durable before the header points at it.
 */
final class Refcounts {
    static final long OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;

    /** What the image checks before a new refcount block or table is written: the metadata overlap check. */
    interface Guard {
        /** Throws (and marks the image corrupt) if [offset, offset + length) holds metadata or is cluster 0. */
        void checkFresh(long offset, long length, String what) throws IOException;

        /** Marks the image corrupt; the exception to throw names the problem. */
        Qcow2Exception corrupt(String problem);
    }

    private final HostFile file;
    private final MetadataRanges ranges;
    private final Guard guard;
    private final Qcow2Header h;
    private final String name;
    private final int clusterBits, cs, order;
    final long entriesPerBlock;
    private final long maxRefcount;
    long[] table;
    private final Map<Long, byte[]> blocks;
    long freeHint;

    Refcounts(HostFile file, Qcow2Header h, String name, MetadataRanges ranges, Guard guard) throws IOException {
        this.file = file;
        this.ranges = ranges;
        this.guard = guard;
        this.h = h;
        this.name = name;
        this.clusterBits = h.clusterBits;
        this.cs = h.clusterSize();
        this.order = h.refcountOrder;
        this.entriesPerBlock = (long) cs * 8 >>> order;
        this.maxRefcount = order == 6 ? Long.MAX_VALUE : (1L << (1 << order)) - 1;
        int n = h.refcountTableClusters * cs / 8;
        ByteBuffer b = ByteBuffer.wrap(file.readBytes(h.refcountTableOffset, n * 8));
        table = new long[n];
        for (int i = 0; i < n; i++) table[i] = b.getLong(i * 8);
        int capacity = Math.max(8, Math.min(1024, (4 << 20) / cs));
        blocks = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, byte[]> eldest) {
                return size() > capacity;
            }
        };
    }

    private byte[] block(long tableIndex) throws IOException {
        long off = table[(int) tableIndex];
        if ((off & ~OFFSET_MASK) != 0 || (off & (cs - 1)) != 0) {
            throw new Qcow2Exception(name + ": refcount table entry " + tableIndex + " (0x" + Long.toHexString(off)
                    + ") is not a cluster-aligned offset");
        }
        if (off >= file.length()) {
            throw new Qcow2Exception(name + ": refcount table entry " + tableIndex + " points to 0x"
                    + Long.toHexString(off) + ", past the end of the file");
        }
        byte[] blk = blocks.get(off);
        if (blk == null) {
            blk = file.readBytes(off, cs);
            blocks.put(off, blk);
        }
        return blk;
    }

    long get(long cluster) throws IOException {
        long idx = cluster / entriesPerBlock;
        if (idx >= table.length || table[(int) idx] == 0) return 0;
        return getEntry(block(idx), (int) (cluster % entriesPerBlock), order);
    }

    static long getEntry(byte[] blk, int i, int order) {
        ByteBuffer b = ByteBuffer.wrap(blk);
        return switch (order) {
            case 0, 1, 2 -> {
                int bit = i << order;
                yield (blk[bit >>> 3] >>> (bit & 7)) & ((1 << (1 << order)) - 1);
            }
            case 3 -> blk[i] & 0xff;
            case 4 -> b.getShort(i * 2) & 0xffff;
            case 5 -> b.getInt(i * 4) & 0xffff_ffffL;
            default -> b.getLong(i * 8);
        };
    }

    /** Sets entry i of blk; returns the byte offset of the changed bytes within the block. */
    static int setEntry(byte[] blk, int i, int order, long value) {
        ByteBuffer b = ByteBuffer.wrap(blk);
        switch (order) {
            case 0, 1, 2 -> {
                int bit = i << order, mask = (1 << (1 << order)) - 1, shift = bit & 7;
                blk[bit >>> 3] = (byte) ((blk[bit >>> 3] & ~(mask << shift)) | ((int) value & mask) << shift);
                return bit >>> 3;
            }
            case 3 -> {
                blk[i] = (byte) value;
                return i;
            }
            case 4 -> {
                b.putShort(i * 2, (short) value);
                return i * 2;
            }
            case 5 -> {
                b.putInt(i * 4, (int) value);
                return i * 4;
            }
            default -> {
                b.putLong(i * 8, value);
                return i * 8;
            }
        }
    }

    void set(long cluster, long value) throws IOException {
        if (value < 0 || value > maxRefcount) {
            throw new Qcow2Exception(name + ": refcount " + value + " of cluster " + cluster + " out of range for "
                    + (1 << order) + "-bit refcounts");
        }
        long idx = cluster / entriesPerBlock;
        if (idx >= table.length) growTable(idx);
        if (table[(int) idx] == 0) ensureBlock(idx);
        byte[] blk = block(idx);
        // The changed bytes are made in a copy and written; the cached block changes only once the file has.
        int i = (int) (cluster % entriesPerBlock);
        int width = Math.max(1, (1 << order) / 8);
        int at = order < 3 ? (i << order) >>> 3 : i * width;
        checkUpdate(table[(int) idx] + at, width, MetadataRanges.Kind.REFCOUNT_BLOCK, "a refcount");
        byte[] bytes = java.util.Arrays.copyOfRange(blk, at, at + width);
        setEntry(bytes, order < 3 ? i & ((8 >>> order) - 1) : 0, order, value);
        file.write(table[(int) idx] + at, bytes, 0, width);
        System.arraycopy(bytes, 0, blk, at, width);
        if (value == 0 && cluster < freeHint) freeHint = cluster;
    }

    void adjust(long cluster, long delta) throws IOException {
        long v = get(cluster) + delta;
        if (v < 0) throw new Qcow2Exception(name + ": refcount of cluster " + cluster + " would drop below zero");
        set(cluster, v);
    }

    /** Allocates n contiguous free clusters with refcount 1 (not yet synced); returns the first cluster index. */
    long allocate(long n) throws IOException {
        if (n >= entriesPerBlock)
            throw new IllegalArgumentException("run of " + n + " clusters cannot fit between refcount blocks");
        // A sane image has free clusters at the latest just past the end of the file (plus a reservation cut
        // short by a crash); refcounts that claim everything beyond are corrupt, and scanning on would not end.
        outer:
        while (true) {
            long start = Math.max(1, freeHint), c = start, run = 0; // cluster 0 is the header, whatever refcounts say
            long limit = Math.max(file.length() / cs, start) + 4 * entriesPerBlock + 8192 + n;
            while (run < n) {
                if (c > limit) {
                    throw new Qcow2Exception(name + ": no free cluster found up to cluster " + c
                            + " (the file ends at cluster " + file.length() / cs + "); refcounts are corrupt");
                }
                long idx = c / entriesPerBlock;
                if (idx >= table.length) {
                    growTable(idx);
                    continue outer;
                }
                if (table[(int) idx] == 0) {
                    ensureBlock(idx);
                    continue outer;
                }
                if (get(c) == 0) {
                    run++;
                } else {
                    run = 0;
                    start = c + 1;
                }
                c++;
            }
            for (long i = 0; i < n; i++) set(start + i, 1);
            freeHint = start + n;
            return start;
        }
    }

    /** A new refcount block for table index idx, placed at the first cluster it describes (all free). */
    private void ensureBlock(long idx) throws IOException {
        checkUpdate(h.refcountTableOffset + idx * 8, 8, MetadataRanges.Kind.REFCOUNT_TABLE, "a refcount table entry");
        long cluster = idx * entriesPerBlock;
        // The range's first cluster must really be free: never the header or other metadata (an empty table
        // entry there means the image is corrupt, and a block would overwrite metadata).
        long off = cluster << clusterBits;
        if (idx == 0 || ranges.overlap(off, cs) != null) {
            throw guard.corrupt(
                    "refcount table entry " + idx + " is empty although cluster " + cluster + " holds metadata");
        }
        guard.checkFresh(off, cs, "a new refcount block");
        byte[] blk = new byte[cs];
        setEntry(blk, 0, order, 1);
        file.write(off, blk, 0, cs);
        file.sync();
        file.writeLong(h.refcountTableOffset + idx * 8, off);
        table[(int) idx] = off; // only once the file says so
        blocks.put(off, blk);
        ranges.add(MetadataRanges.Kind.REFCOUNT_BLOCK, off, cs);
    }

    /**
     * Grows the table to cover table index neededIdx: new blocks and the new table go right after the range
     * the old table covers, described by those new blocks; the header switches over after both are durable.
     */
    private void growTable(long neededIdx) throws IOException {
        long oldN = table.length, perCluster = cs / 8;
        long newN = Math.max(neededIdx + 1, oldN * 2);
        long t, k;
        while (true) {
            t = (newN + perCluster - 1) / perCluster;
            k = 1;
            while ((k + t + entriesPerBlock - 1) / entriesPerBlock > k) k++;
            if (newN >= oldN + k) break;
            newN = oldN + k;
        }
        newN = t * perCluster;
        if (t * cs > Qcow2Header.MAX_REFTABLE_BYTES) {
            throw new Qcow2Exception(name + ": image too large: the refcount table would exceed 8 MiB");
        }
        long first = oldN * entriesPerBlock;
        guard.checkFresh(first << clusterBits, (k + t) * cs, "a grown refcount table and its blocks");
        long[] newTable = java.util.Arrays.copyOf(table, (int) newN);
        for (long j = 0; j < k; j++) {
            byte[] blk = new byte[cs];
            for (long m = first; m < first + k + t; m++) {
                if ((m - first) / entriesPerBlock == j) setEntry(blk, (int) ((m - first) % entriesPerBlock), order, 1);
            }
            long off = (first + j) << clusterBits;
            file.write(off, blk, 0, cs);
            blocks.put(off, blk);
            newTable[(int) (oldN + j)] = off;
        }
        ByteBuffer tb = ByteBuffer.allocate((int) (t * cs));
        for (int i = 0; i < newN; i++) tb.putLong(i * 8, newTable[i]);
        long tableOff = (first + k) << clusterBits;
        file.write(tableOff, tb);
        file.sync();
        ByteBuffer hdr = ByteBuffer.allocate(12).putLong(0, tableOff).putInt(8, (int) t);
        file.write(48, hdr);
        file.sync();
        long oldOff = h.refcountTableOffset;
        int oldClusters = h.refcountTableClusters;
        table = newTable;
        h.refcountTableOffset = tableOff;
        h.refcountTableClusters = (int) t;
        for (long j = 0; j < k; j++) ranges.add(MetadataRanges.Kind.REFCOUNT_BLOCK, (first + j) << clusterBits, cs);
        ranges.add(MetadataRanges.Kind.REFCOUNT_TABLE, tableOff, t * cs);
        ranges.remove(MetadataRanges.Kind.REFCOUNT_TABLE, oldOff, (long) oldClusters * cs);
        for (int i = 0; i < oldClusters; i++) adjust((oldOff >>> clusterBits) + i, -1);
    }

    /**
     * An update in place of a refcount block or the refcount table must not touch metadata of another kind (a
     * refcount table entry naming an L2 table as a refcount block): the image is marked corrupt, nothing written.
     */
    private void checkUpdate(long offset, long length, MetadataRanges.Kind own, String what) throws Qcow2Exception {
        MetadataRanges.Kind hit = ranges.overlapOther(offset, length, own);
        if (hit != null) {
            throw guard.corrupt(what + " at host offset 0x" + Long.toHexString(offset) + " would overwrite metadata ("
                    + hit.description + ")");
        }
    }

    /** Number of clusters the table can describe. */
    long coveredClusters() {
        return table.length * entriesPerBlock;
    }
}
