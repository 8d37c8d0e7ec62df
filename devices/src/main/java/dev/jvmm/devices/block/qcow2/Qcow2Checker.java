package dev.jvmm.devices.block.qcow2;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Consistency check of an image, as {@code qemu-img check} does it: recount every reference (header, L1/L2
 * tables of the active state and of every snapshot, data and compressed clusters, refcount structures, the
 * snapshot table) and compare with the stored refcounts. Leaks (stored > counted) waste space; the opposite,
 * and references outside the file, are corruption. Repair lowers leaked refcounts, or with ALL sets every
 * refcount to the count (used for dirty images with lazy refcounts). Memory is one int per host cluster,
 * bounded by the file's size.
 */
public final class Qcow2Checker {
    public enum Repair {
        NONE,
        LEAKS,
        ALL
    }

    public record Result(
            long leaks,
            long corruptions,
            long leaksFixed,
            long corruptionsFixed,
            List<String> messages,
            long guestClusters,
            long allocatedClusters,
            long fragmentedClusters,
            long compressedClusters,
            long imageEndOffset) {}

    private static final long MAX_CHECK_CLUSTERS = 1L << 25;
    private final Qcow2Image img;
    private final HostFile file;
    private final int cs, clusterBits;
    private final List<String> messages = new ArrayList<>();
    private int[] refs;
    private long nbClusters;
    private long corruptions;
    private long allocated, fragmented, compressed;
    /** Bytes of L2 tables the walk may read: hostile L1 tables naming one L2 table millions of times end here. */
    private long readBudget;

    public Qcow2Checker(Qcow2Image img) {
        this.img = img;
        this.file = img.file;
        this.cs = img.cs;
        this.clusterBits = img.clusterBits;
    }

    public Result run(Repair repair) throws IOException {
        img.lock().writeLock().lock();
        try {
            return runLocked(repair);
        } finally {
            img.lock().writeLock().unlock();
        }
    }

    private void corrupt(String msg) {
        corruptions++;
        if (messages.size() < 1000) messages.add("ERROR " + msg);
    }

    private void ref(long offset, long len, String what) {
        if (offset + len > file.length() + cs - 1 && offset >= file.length()) {
            corrupt(what + " at 0x" + Long.toHexString(offset) + " is past the end of the image");
            return;
        }
        for (long c = offset >>> clusterBits; c <= (offset + len - 1) >>> clusterBits; c++) {
            if (c < nbClusters && refs[(int) c] < Integer.MAX_VALUE) refs[(int) c]++;
        }
    }

    private Result runLocked(Repair repair) throws IOException {
        Qcow2Header h = img.header;
        if (repair != Repair.NONE && h.hasBitmapsExtension) {
            throw new Qcow2Exception(img.name + ": repairing images with persistent bitmaps is not supported");
        }
        nbClusters = (file.length() + cs - 1) >>> clusterBits;
        if (nbClusters > MAX_CHECK_CLUSTERS) {
            throw new Qcow2Exception(
                    img.name + ": image has " + nbClusters + " clusters, more than the checker handles");
        }
        refs = new int[(int) nbClusters];
        readBudget = 16 * file.length() + (256L << 20);
        ref(0, cs, "header");
        ref(h.l1TableOffset, h.l1Size * 8L, "L1 table");
        walkL1(img.l1, true);
        long snapBytes = 0;
        for (Snapshot s : img.snapshots) {
            snapBytes += s.tableEntryBytes();
            if (s.l1Size() > 0) ref(s.l1TableOffset(), s.l1Size() * 8L, "snapshot L1 table");
            walkL1(Qcow2Image.readTable(file, s.l1TableOffset(), s.l1Size()), false);
        }
        if (snapBytes > 0) ref(h.snapshotsOffset, snapBytes, "snapshot table");
        ref(h.refcountTableOffset, (long) h.refcountTableClusters * cs, "refcount table");
        Refcounts rc = img.refcounts;
        for (int i = 0; i < rc.table.length; i++) {
            long off = rc.table[i];
            if (off == 0) continue;
            if ((off & (cs - 1)) != 0 || (off & ~Refcounts.OFFSET_MASK) != 0 || off >= file.length()) {
                corrupt("refcount block " + i + " has an invalid offset 0x" + Long.toHexString(off));
                rc.table[i] = 0; // treat as absent for the comparison below
                continue;
            }
            ref(off, cs, "refcount block");
        }
        long leaks = 0, leaksFixed = 0, fixedErrors = 0;
        for (long c = 0; c < nbClusters; c++) {
            long idx = c / rc.entriesPerBlock;
            boolean blockPresent = idx < rc.table.length && rc.table[(int) idx] != 0;
            long stored = blockPresent ? rc.get(c) : 0;
            int counted = refs[(int) c];
            if (stored == counted) continue;
            if (stored > counted) {
                leaks++;
                if (messages.size() < 1000) {
                    messages.add("Leaked cluster " + c + " refcount=" + stored + " reference=" + counted);
                }
                if (repair != Repair.NONE) {
                    rc.set(c, counted);
                    leaksFixed++;
                }
            } else {
                corrupt("cluster " + c + " refcount=" + stored + " reference=" + counted);
                if (repair == Repair.ALL && blockPresent) {
                    rc.set(c, counted);
                    fixedErrors++;
                }
            }
        }
        // Refcounts recorded for clusters past the end of the file (a reservation cut short by a crash).
        for (int i = 0; i < rc.table.length; i++) {
            if (rc.table[i] == 0) continue;
            for (long c = Math.max(nbClusters, i * rc.entriesPerBlock); c < (i + 1) * rc.entriesPerBlock; c++) {
                long stored = rc.get(c);
                if (stored == 0) continue;
                leaks++;
                if (messages.size() < 1000)
                    messages.add("Leaked cluster " + c + " refcount=" + stored + " reference=0");
                if (repair != Repair.NONE) {
                    rc.set(c, 0);
                    leaksFixed++;
                }
            }
        }
        if (repair == Repair.NONE) checkCopiedFlags();
        long guestClusters = (img.size() + cs - 1) >>> clusterBits;
        return new Result(
                leaks,
                corruptions,
                leaksFixed,
                fixedErrors,
                List.copyOf(messages),
                guestClusters,
                allocated,
                fragmented,
                compressed,
                file.length());
    }

    private void walkL1(long[] l1, boolean active) throws IOException {
        long prevHost = -1;
        for (int i = 0; i < l1.length; i++) {
            long l2Off = l1[i] & Qcow2Image.L1_OFFSET_MASK;
            if (l2Off == 0) continue;
            if ((l1[i] & ~(Qcow2Image.L1_OFFSET_MASK | Qcow2Image.COPIED)) != 0) {
                corrupt("L1 entry " + i + " has reserved bits set: 0x" + Long.toHexString(l1[i]));
            }
            if ((l2Off & (cs - 1)) != 0 || l2Off >= file.length()) {
                corrupt("L2 table offset 0x" + Long.toHexString(l2Off) + " in L1 entry " + i + " is invalid");
                continue;
            }
            ref(l2Off, cs, "L2 table");
            readBudget -= cs;
            if (readBudget < 0) {
                throw new Qcow2Exception(
                        img.name + ": L1 tables reference far more L2 data than the file holds; the image is corrupt");
            }
            long[] l2 = Qcow2Image.readTable(file, l2Off, cs / 8);
            int step = img.extL2 ? 2 : 1;
            for (int j = 0; j < l2.length; j += step) {
                long e = l2[j];
                if ((e & Qcow2Image.COMPRESSED) != 0) {
                    long[] ext = img.compressedExtent(e);
                    if (ext[0] < cs || ext[0] >= file.length()) {
                        corrupt("compressed cluster at 0x" + Long.toHexString(ext[0]) + " is outside the image");
                        continue;
                    }
                    ref(ext[0], Math.min(ext[1], file.length() - ext[0]), "compressed cluster");
                    if (active) {
                        allocated++;
                        compressed++;
                    }
                    continue;
                }
                long host = e & Qcow2Image.L2_OFFSET_MASK;
                if (img.extL2) {
                    long bm = l2[j + 1];
                    if (((int) bm & (int) (bm >>> 32)) != 0)
                        corrupt("L2 entry " + j / 2 + " of table 0x" + Long.toHexString(l2Off)
                                + " has subclusters both allocated and zero");
                    if ((int) bm != 0 && host == 0)
                        corrupt("L2 entry " + j / 2 + " of table 0x" + Long.toHexString(l2Off)
                                + " has allocated subclusters but no host cluster");
                }
                if (host == 0) continue;
                if ((host & (cs - 1)) != 0 || host >= file.length()) {
                    corrupt("data cluster 0x" + Long.toHexString(host) + " (L2 table 0x" + Long.toHexString(l2Off)
                            + ") is " + ((host & (cs - 1)) != 0 ? "not cluster-aligned" : "past the end of the image"));
                    continue;
                }
                ref(host, cs, "data cluster");
                if (active) {
                    allocated++;
                    if (prevHost >= 0 && host != prevHost + cs) fragmented++;
                    prevHost = host;
                }
            }
        }
    }

    private void checkCopiedFlags() throws IOException {
        Refcounts rc = img.refcounts;
        for (int i = 0; i < img.l1.length; i++) {
            long l2Off = img.l1[i] & Qcow2Image.L1_OFFSET_MASK;
            if (l2Off == 0 || (l2Off & (cs - 1)) != 0 || l2Off >= file.length()) continue;
            long r = rc.get(l2Off >>> clusterBits);
            readBudget -= cs;
            if (readBudget < 0) {
                throw new Qcow2Exception(
                        img.name + ": L1 table references far more L2 data than the file holds; the image is corrupt");
            }
            if ((r == 1) != ((img.l1[i] & Qcow2Image.COPIED) != 0)) {
                corrupt("OFLAG_COPIED L2 cluster: l1_index=" + i + " l1_entry=" + Long.toHexString(img.l1[i])
                        + " refcount=" + r);
            }
            long[] l2 = Qcow2Image.readTable(file, l2Off, cs / 8);
            int step = img.extL2 ? 2 : 1;
            for (int j = 0; j < l2.length; j += step) {
                long e = l2[j];
                long host = e & Qcow2Image.L2_OFFSET_MASK;
                if ((e & Qcow2Image.COMPRESSED) != 0 || host == 0 || host >= file.length()) continue;
                long hr = rc.get(host >>> clusterBits);
                if ((hr == 1) != ((e & Qcow2Image.COPIED) != 0)) {
                    corrupt("OFLAG_COPIED data cluster: l2_entry=" + Long.toHexString(e) + " refcount=" + hr);
                }
            }
        }
    }
}
