package dev.jvmm.devices.block.qcow2;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The qcow2 header (first cluster) as QEMU's docs/interop/qcow2.txt describes it, parsed and validated at the
 * edge: every value that later code uses as an offset, a count or a shift is checked here against the
 * format's limits and the file's length, so a hostile image fails here with a message naming the field.
 */
public final class Qcow2Header {
    public static final int MAGIC = 0x514649fb; // "QFI\xfb"
    public static final int V2_HEADER_LENGTH = 72;
    public static final int V3_HEADER_LENGTH = 112; // through compression_type, padded to 8

    static final long INCOMPAT_DIRTY = 1,
            INCOMPAT_CORRUPT = 2,
            INCOMPAT_DATA_FILE = 4,
            INCOMPAT_COMPRESSION = 8,
            INCOMPAT_EXTL2 = 16;
    static final long KNOWN_INCOMPAT =
            INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
    static final long COMPAT_LAZY_REFCOUNTS = 1;

    static final int EXT_END = 0,
            EXT_BACKING_FORMAT = 0xe2792aca,
            EXT_FEATURE_TABLE = 0x6803f857,
            EXT_BITMAPS = 0x23852875,
            EXT_CRYPTO = 0x0537be77,
            EXT_DATA_FILE = 0x44415441;

    /** QEMU's limits, which keep memory bounded for hostile headers. */
    static final int MAX_CLUSTER_BITS = 21, MIN_CLUSTER_BITS = 9;

    static final long MAX_L1_BYTES = 32L << 20, MAX_REFTABLE_BYTES = 8L << 20;
    static final int MAX_SNAPSHOTS = 65536;
    static final int MAX_BACKING_NAME = 1023;

    public int version;
    public long backingFileOffset;
    public int backingFileSize;
    public int clusterBits;
    public long size;
    public int cryptMethod;
    public int l1Size;
    public long l1TableOffset;
    public long refcountTableOffset;
    public int refcountTableClusters;
    public int nbSnapshots;
    public long snapshotsOffset;
    public long incompatibleFeatures;
    public long compatibleFeatures;
    public long autoclearFeatures;
    public int refcountOrder = 4;
    public int headerLength = V2_HEADER_LENGTH;
    public int compressionType;

    public String backingFile; // null if none
    public String backingFormat; // null if not recorded
    /** Feature names from the feature name table: key = type << 8 | bit. */
    public final java.util.Map<Integer, String> featureNames = new java.util.HashMap<>();
    /** Header extensions jvmm does not interpret, kept to be written back unchanged. */
    public final List<byte[]> unknownExtensions = new ArrayList<>();

    public boolean hasBitmapsExtension;

    public int clusterSize() {
        return 1 << clusterBits;
    }

    public boolean extendedL2() {
        return (incompatibleFeatures & INCOMPAT_EXTL2) != 0;
    }

    public int l2EntryBytes() {
        return extendedL2() ? 16 : 8;
    }

    public int l2Entries() {
        return clusterSize() / l2EntryBytes();
    }

    public int refcountBits() {
        return 1 << refcountOrder;
    }

    public boolean dirty() {
        return (incompatibleFeatures & INCOMPAT_DIRTY) != 0;
    }

    public boolean corrupt() {
        return (incompatibleFeatures & INCOMPAT_CORRUPT) != 0;
    }

    public boolean lazyRefcounts() {
        return (compatibleFeatures & COMPAT_LAZY_REFCOUNTS) != 0;
    }

    /** L1 entries needed to map {@code size} bytes. */
    public static long l1EntriesFor(long size, int clusterBits, boolean extendedL2) {
        long bytesPerL2 = (1L << clusterBits) * ((1L << clusterBits) / (extendedL2 ? 16 : 8));
        return (size + bytesPerL2 - 1) / bytesPerL2;
    }

    /** Whether the first bytes of a file are a qcow2 magic. */
    public static boolean hasMagic(byte[] start) {
        return start.length >= 4 && ByteBuffer.wrap(start).getInt(0) == MAGIC;
    }

    /**
     * Parses the header from {@code first}, which holds at least the first cluster of the file (or the whole
     * file if shorter). {@code fileLength} bounds every table offset. {@code name} names the image in errors.
     */
    public static Qcow2Header parse(byte[] first, long fileLength, String name) throws Qcow2Exception {
        if (first.length < V2_HEADER_LENGTH) {
            throw new Qcow2Exception(name + ": file too short for a qcow2 header (" + first.length + " bytes)");
        }
        ByteBuffer b = ByteBuffer.wrap(first);
        if (b.getInt(0) != MAGIC) throw new Qcow2Exception(name + ": not a qcow2 image (bad magic)");
        Qcow2Header h = new Qcow2Header();
        h.version = b.getInt(4);
        if (h.version != 2 && h.version != 3) {
            throw new Qcow2Exception(name + ": unsupported qcow2 version " + Integer.toUnsignedString(h.version));
        }
        h.backingFileOffset = b.getLong(8);
        h.backingFileSize = b.getInt(16);
        h.clusterBits = b.getInt(20);
        if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
            throw new Qcow2Exception(name + ": cluster_bits " + Integer.toUnsignedString(h.clusterBits)
                    + " out of range (9..21, i.e. 512 B..2 MiB)");
        }
        h.size = b.getLong(24);
        h.cryptMethod = b.getInt(32);
        h.l1Size = b.getInt(36);
        h.l1TableOffset = b.getLong(40);
        h.refcountTableOffset = b.getLong(48);
        h.refcountTableClusters = b.getInt(56);
        h.nbSnapshots = b.getInt(60);
        h.snapshotsOffset = b.getLong(64);
        int cs = h.clusterSize();
        if (h.version >= 3) {
            if (first.length < 104) throw new Qcow2Exception(name + ": file too short for a version 3 header");
            h.incompatibleFeatures = b.getLong(72);
            h.compatibleFeatures = b.getLong(80);
            h.autoclearFeatures = b.getLong(88);
            h.refcountOrder = b.getInt(96);
            h.headerLength = b.getInt(100);
            if (h.headerLength < 104
                    || (h.headerLength & 7) != 0
                    || h.headerLength > cs
                    || h.headerLength > first.length) {
                throw new Qcow2Exception(name + ": header_length " + Integer.toUnsignedString(h.headerLength)
                        + " invalid (must be >= 104, a multiple of 8 and within the first cluster)");
            }
            if (h.headerLength > 104) h.compressionType = first[104] & 0xff;
        }
        if (Integer.compareUnsigned(h.refcountOrder, 6) > 0) {
            throw new Qcow2Exception(name + ": refcount_order " + Integer.toUnsignedString(h.refcountOrder)
                    + " too large (at most 6, i.e. 64-bit refcounts)");
        }
        // Header extensions: needed for feature names before refusing unknown features.
        h.parseExtensions(first, Math.min(cs, first.length), name);
        long unknown = h.incompatibleFeatures & ~KNOWN_INCOMPAT;
        if (unknown != 0) {
            throw new Qcow2Exception(name + ": unsupported incompatible feature(s): " + h.describeFeatures(0, unknown));
        }
        if ((h.incompatibleFeatures & INCOMPAT_DATA_FILE) != 0) {
            throw new Qcow2Exception(
                    name + ": unsupported incompatible feature(s): " + h.describeFeatures(0, INCOMPAT_DATA_FILE));
        }
        if (h.cryptMethod != 0) {
            throw new Qcow2Exception(name + ": encrypted images are not supported (crypt_method "
                    + Integer.toUnsignedString(h.cryptMethod) + ")");
        }
        boolean compressionBit = (h.incompatibleFeatures & INCOMPAT_COMPRESSION) != 0;
        if (compressionBit != (h.compressionType != 0)) {
            throw new Qcow2Exception(
                    name + ": compression type bit and compression_type field " + h.compressionType + " disagree");
        }
        if (h.compressionType > 1) {
            throw new Qcow2Exception(name + ": unknown compression_type " + h.compressionType + " (0 zlib, 1 zstd)");
        }
        if (h.extendedL2() && h.clusterBits < 14) {
            throw new Qcow2Exception(name + ": extended L2 entries need clusters of at least 16 KiB, not " + cs);
        }
        if (h.size < 0 || h.size > (1L << 61)) {
            throw new Qcow2Exception(name + ": virtual size " + Long.toUnsignedString(h.size) + " out of range");
        }
        long neededL1 = l1EntriesFor(h.size, h.clusterBits, h.extendedL2());
        if (Integer.toUnsignedLong(h.l1Size) * 8 > MAX_L1_BYTES) {
            throw new Qcow2Exception(
                    name + ": L1 table of " + Integer.toUnsignedString(h.l1Size) + " entries exceeds the 32 MiB limit");
        }
        if (h.l1Size < neededL1) {
            throw new Qcow2Exception(name + ": L1 table of " + h.l1Size + " entries is too small for virtual size "
                    + h.size + " (needs " + neededL1 + ")");
        }
        checkTable(name, "L1 table", h.l1TableOffset, (long) h.l1Size * 8, cs, fileLength, h.l1Size > 0);
        if (h.refcountTableClusters <= 0 || (long) h.refcountTableClusters * cs > MAX_REFTABLE_BYTES) {
            throw new Qcow2Exception(name + ": refcount_table_clusters "
                    + Integer.toUnsignedString(h.refcountTableClusters) + " out of range (1..8 MiB of table)");
        }
        checkTable(
                name,
                "refcount table",
                h.refcountTableOffset,
                (long) h.refcountTableClusters * cs,
                cs,
                fileLength,
                true);
        if (Integer.compareUnsigned(h.nbSnapshots, MAX_SNAPSHOTS) > 0) {
            throw new Qcow2Exception(name + ": " + Integer.toUnsignedString(h.nbSnapshots)
                    + " snapshots exceed the limit of " + MAX_SNAPSHOTS);
        }
        if (h.nbSnapshots > 0)
            checkTable(name, "snapshot table", h.snapshotsOffset, 40L * h.nbSnapshots, cs, fileLength, true);
        if (h.backingFileOffset != 0) {
            if (Integer.compareUnsigned(h.backingFileSize, MAX_BACKING_NAME) > 0 || h.backingFileSize == 0) {
                throw new Qcow2Exception(name + ": backing file name length "
                        + Integer.toUnsignedString(h.backingFileSize) + " invalid (1..1023)");
            }
            // Compared without adding: offset + size can overflow a long and pass as negative.
            if (h.backingFileOffset < 0 || h.backingFileOffset > Math.min(cs, first.length) - h.backingFileSize) {
                throw new Qcow2Exception(name + ": backing file name at offset "
                        + Long.toUnsignedString(h.backingFileOffset) + " lies outside the first cluster");
            }
            h.backingFile = new String(first, (int) h.backingFileOffset, h.backingFileSize, StandardCharsets.UTF_8);
            // No path holds a NUL: refused here, where the header is checked, not where the name becomes a path.
            if (h.backingFile.indexOf('\0') >= 0) {
                throw new Qcow2Exception(
                        name + ": backing file name at offset " + h.backingFileOffset + " contains a NUL byte");
            }
        }
        return h;
    }

    private static void checkTable(
            String name, String what, long offset, long bytes, int cs, long fileLength, boolean present)
            throws Qcow2Exception {
        if (!present) return;
        if (offset <= 0 || (offset & (cs - 1)) != 0) {
            throw new Qcow2Exception(name + ": " + what + " offset 0x" + Long.toHexString(offset)
                    + " is not a non-zero multiple of the cluster size");
        }
        if (offset + bytes > fileLength || offset + bytes < 0) {
            throw new Qcow2Exception(name + ": " + what + " at 0x" + Long.toHexString(offset) + " (" + bytes
                    + " bytes) extends past the end of the file (" + fileLength + " bytes)");
        }
    }

    private void parseExtensions(byte[] first, int limit, String name) throws Qcow2Exception {
        if (version < 3) headerLength = V2_HEADER_LENGTH;
        int end = limit;
        if (backingFileOffset > 0 && backingFileOffset < limit) end = (int) backingFileOffset;
        ByteBuffer b = ByteBuffer.wrap(first);
        int pos = headerLength;
        while (pos + 8 <= end) {
            int type = b.getInt(pos);
            long len = Integer.toUnsignedLong(b.getInt(pos + 4));
            if (type == EXT_END) return;
            int data = pos + 8;
            if (data + len > end) {
                throw new Qcow2Exception(name + ": header extension 0x" + Integer.toHexString(type) + " of " + len
                        + " bytes runs past the header area");
            }
            int n = (int) len;
            switch (type) {
                case EXT_BACKING_FORMAT -> backingFormat = new String(first, data, n, StandardCharsets.UTF_8);
                case EXT_FEATURE_TABLE -> {
                    for (int e = data; e + 48 <= data + n; e += 48) {
                        int kind = first[e] & 0xff, bit = first[e + 1] & 0xff;
                        int z = 0;
                        while (z < 46 && first[e + 2 + z] != 0) z++;
                        featureNames.put(kind << 8 | bit, new String(first, e + 2, z, StandardCharsets.UTF_8));
                    }
                }
                case EXT_BITMAPS -> hasBitmapsExtension = true;
                case EXT_CRYPTO, EXT_DATA_FILE -> {
                    /* refused by crypt_method / incompatible bits */
                }
                default -> {
                    byte[] raw = new byte[8 + n];
                    System.arraycopy(first, pos, raw, 0, 8 + n);
                    unknownExtensions.add(raw);
                }
            }
            pos = data + ((n + 7) & ~7);
        }
    }

    /** Names the set bits of a feature bitmap (type 0 incompatible, 1 compatible, 2 autoclear). */
    String describeFeatures(int type, long bits) {
        StringBuilder sb = new StringBuilder();
        for (int bit = 0; bit < 64; bit++) {
            if ((bits & (1L << bit)) == 0) continue;
            if (!sb.isEmpty()) sb.append(", ");
            String known = type == 0
                    ? switch (bit) {
                        case 0 -> "dirty bit";
                        case 1 -> "corrupt bit";
                        case 2 -> "external data file";
                        case 3 -> "compression type";
                        case 4 -> "extended L2 entries";
                        default -> null;
                    }
                    : null;
            String n = featureNames.getOrDefault(type << 8 | bit, known);
            sb.append(n != null ? "'" + n + "' (bit " + bit + ")" : "unnamed bit " + bit);
        }
        return sb.toString();
    }

    /** The header and its extensions as they are written to the first cluster (backing name included). */
    public byte[] encode() throws Qcow2Exception {
        int cs = clusterSize();
        ByteBuffer b = ByteBuffer.allocate(cs);
        b.putInt(0, MAGIC).putInt(4, version);
        b.putInt(20, clusterBits)
                .putLong(24, size)
                .putInt(32, cryptMethod)
                .putInt(36, l1Size)
                .putLong(40, l1TableOffset)
                .putLong(48, refcountTableOffset)
                .putInt(56, refcountTableClusters)
                .putInt(60, nbSnapshots)
                .putLong(64, snapshotsOffset);
        int pos;
        if (version >= 3) {
            headerLength = Math.max(headerLength, V3_HEADER_LENGTH);
            b.putLong(72, incompatibleFeatures)
                    .putLong(80, compatibleFeatures)
                    .putLong(88, autoclearFeatures)
                    .putInt(96, refcountOrder)
                    .putInt(100, headerLength);
            b.put(104, (byte) compressionType);
            pos = headerLength;
        } else {
            pos = V2_HEADER_LENGTH;
        }
        b.position(pos);
        if (backingFormat != null)
            pos = putExtension(b, EXT_BACKING_FORMAT, backingFormat.getBytes(StandardCharsets.UTF_8));
        if (version >= 3) {
            String[][] names = {
                {"0", "0", "dirty bit"},
                {"0", "1", "corrupt bit"},
                {"0", "2", "external data file"},
                {"0", "3", "compression type"},
                {"0", "4", "extended L2 entries"},
                {"1", "0", "lazy refcounts"},
                {"2", "0", "bitmaps"},
                {"2", "1", "raw external data"}
            };
            byte[] table = new byte[48 * names.length];
            for (int i = 0; i < names.length; i++) {
                table[48 * i] = (byte) Integer.parseInt(names[i][0]);
                table[48 * i + 1] = (byte) Integer.parseInt(names[i][1]);
                byte[] s = names[i][2].getBytes(StandardCharsets.US_ASCII);
                System.arraycopy(s, 0, table, 48 * i + 2, s.length);
            }
            int backingLen = backingFile == null ? 0 : backingFile.getBytes(StandardCharsets.UTF_8).length;
            // The name table is optional; with 512-byte clusters it does not fit and is left out.
            if (b.position() + 8 + table.length + 16 + backingLen <= cs)
                pos = putExtension(b, EXT_FEATURE_TABLE, table);
        }
        for (byte[] raw : unknownExtensions) {
            if (b.position() + raw.length + 8 > cs)
                throw new Qcow2Exception("header extensions do not fit in a cluster");
            b.put(raw);
            while ((b.position() & 7) != 0) b.put((byte) 0);
            pos = b.position();
        }
        if (pos + 8 > cs) throw new Qcow2Exception("header extensions do not fit in a cluster");
        b.putInt(pos, EXT_END).putInt(pos + 4, 0);
        pos += 8;
        if (backingFile != null) {
            byte[] name = backingFile.getBytes(StandardCharsets.UTF_8);
            if (name.length > MAX_BACKING_NAME || pos + name.length > cs) {
                throw new Qcow2Exception("backing file name too long (" + name.length + " bytes)");
            }
            b.put(pos, name);
            backingFileOffset = pos;
            backingFileSize = name.length;
            pos += name.length;
        } else {
            backingFileOffset = 0;
            backingFileSize = 0;
        }
        b.putLong(8, backingFileOffset).putInt(16, backingFileSize);
        byte[] out = new byte[pos];
        b.get(0, out);
        return out;
    }

    private static int putExtension(ByteBuffer b, int type, byte[] data) throws Qcow2Exception {
        if (b.position() + 8 + data.length + 16 > b.capacity()) {
            throw new Qcow2Exception("header extensions do not fit in a cluster");
        }
        b.putInt(type).putInt(data.length).put(data);
        while ((b.position() & 7) != 0) b.put((byte) 0);
        return b.position();
    }
}
