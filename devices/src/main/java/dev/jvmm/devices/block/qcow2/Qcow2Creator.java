package dev.jvmm.devices.block.qcow2;

import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Consumer;

/** Creates empty qcow2 images: header, refcount table and blocks, L1 table; optionally preallocated metadata. */
public final class Qcow2Creator {
    private Qcow2Creator() {}

    /** What to create; size 0 with a backing file takes the backing file's size. */
    public record Options(
            long size,
            int clusterSize,
            int version,
            int refcountBits,
            boolean extendedL2,
            String compression,
            String backingFile,
            String backingFormat,
            boolean lazyRefcounts,
            boolean preallocateMetadata) {
        public static Options of(long size) {
            return new Options(size, 65536, 3, 16, false, "zlib", null, null, false, false);
        }

        public Options withClusterSize(int v) {
            return edit(b -> b.clusterSize = v);
        }

        public Options withVersion(int v) {
            return edit(b -> b.version = v);
        }

        public Options withRefcountBits(int v) {
            return edit(b -> b.refcountBits = v);
        }

        public Options withExtendedL2(boolean v) {
            return edit(b -> b.extendedL2 = v);
        }

        public Options withCompression(String v) {
            return edit(b -> b.compression = v);
        }

        public Options withBacking(String file, String format) {
            return edit(b -> {
                b.backingFile = file;
                b.backingFormat = format;
            });
        }

        public Options withLazyRefcounts(boolean v) {
            return edit(b -> b.lazyRefcounts = v);
        }

        public Options withPreallocateMetadata(boolean v) {
            return edit(b -> b.preallocateMetadata = v);
        }

        /** A copy with the fields {@code change} sets: each wither names only its own field. */
        private Options edit(Consumer<Fields> change) {
            Fields f = new Fields(this);
            change.accept(f);
            return f.options();
        }

        private static final class Fields {
            long size;
            int clusterSize, version, refcountBits;
            boolean extendedL2, lazyRefcounts, preallocateMetadata;
            String compression, backingFile, backingFormat;

            Fields(Options o) {
                size = o.size;
                clusterSize = o.clusterSize;
                version = o.version;
                refcountBits = o.refcountBits;
                extendedL2 = o.extendedL2;
                compression = o.compression;
                backingFile = o.backingFile;
                backingFormat = o.backingFormat;
                lazyRefcounts = o.lazyRefcounts;
                preallocateMetadata = o.preallocateMetadata;
            }

            Options options() {
                return new Options(
                        size,
                        clusterSize,
                        version,
                        refcountBits,
                        extendedL2,
                        compression,
                        backingFile,
                        backingFormat,
                        lazyRefcounts,
                        preallocateMetadata);
            }
        }
    }

    public static void create(Path path, Options o) throws IOException {
        int cs = o.clusterSize();
        if (Integer.bitCount(cs) != 1 || cs < 512 || cs > (2 << 20)) {
            throw new IllegalArgumentException("cluster size " + cs + " must be a power of two from 512 to 2097152");
        }
        if (o.version() != 2 && o.version() != 3)
            throw new IllegalArgumentException("version must be 2 or 3 (compat 0.10 or 1.1)");
        int rb = o.refcountBits();
        if (Integer.bitCount(rb) != 1 || rb > 64)
            throw new IllegalArgumentException("refcount bits " + rb + " must be a power of two from 1 to 64");
        int compression = switch (o.compression() == null ? "zlib" : o.compression()) {
            case "zlib" -> 0;
            case "zstd" -> 1;
            default ->
                throw new IllegalArgumentException("compression type '" + o.compression() + "' unknown (zlib or zstd)");
        };
        if (o.version() == 2 && (rb != 16 || o.extendedL2() || o.lazyRefcounts() || compression != 0)) {
            throw new IllegalArgumentException(
                    "version 2 (compat 0.10) images support only 16-bit refcounts, zlib, no extended L2 "
                            + "and no lazy refcounts");
        }
        if (o.extendedL2() && cs < 16384)
            throw new IllegalArgumentException("extended L2 entries need a cluster size of at least 16384");
        if (o.preallocateMetadata() && o.backingFile() != null) {
            throw new IllegalArgumentException("metadata preallocation cannot be combined with a backing file");
        }
        long size = o.size();
        if (o.backingFile() != null) {
            Path b = Path.of(o.backingFile());
            Path dir = path.toAbsolutePath().getParent();
            if (!b.isAbsolute() && dir != null) b = dir.resolve(b);
            if (!Files.exists(b))
                throw new java.nio.file.NoSuchFileException(b.toString(), null, "backing file not found");
            if (size <= 0) {
                DiskImage.Format format =
                        "raw".equals(o.backingFormat()) ? DiskImage.Format.RAW : DiskImage.Format.AUTO;
                try (BlockBackend bb = DiskImage.open(b, DiskImage.Options.SOURCE.withFormat(format))) {
                    size = bb.size();
                }
            }
        }
        if (size < 0) throw new IllegalArgumentException("size must not be negative");
        size = (size + 511) & ~511L;
        int bits = Integer.numberOfTrailingZeros(cs);
        int order = Integer.numberOfTrailingZeros(rb);
        long l1Entries = Qcow2Header.l1EntriesFor(size, bits, o.extendedL2());
        if (l1Entries * 8 > Qcow2Header.MAX_L1_BYTES)
            throw new IllegalArgumentException("size " + size + " too large for cluster size " + cs);
        long entriesPerBlock = (long) cs * 8 / rb;
        long l1Clusters = Math.max(1, (l1Entries * 8 + cs - 1) / cs);
        long blocks = 1, tableClusters = 1;
        while (true) {
            long total = 1 + tableClusters + blocks + l1Clusters;
            long nb = (total + entriesPerBlock - 1) / entriesPerBlock;
            long nt = Math.max(1, (nb * 8 + cs - 1) / cs);
            if (nb == blocks && nt == tableClusters) break;
            blocks = nb;
            tableClusters = nt;
        }
        long total = 1 + tableClusters + blocks + l1Clusters;
        Qcow2Header h = new Qcow2Header();
        h.version = o.version();
        h.clusterBits = bits;
        h.size = size;
        h.l1Size = (int) l1Entries;
        h.refcountTableOffset = (long) cs;
        h.refcountTableClusters = (int) tableClusters;
        h.l1TableOffset = (1 + tableClusters + blocks) * cs;
        h.refcountOrder = order;
        h.compressionType = compression;
        if (compression != 0) h.incompatibleFeatures |= Qcow2Header.INCOMPAT_COMPRESSION;
        if (o.extendedL2()) h.incompatibleFeatures |= Qcow2Header.INCOMPAT_EXTL2;
        if (o.lazyRefcounts()) h.compatibleFeatures |= Qcow2Header.COMPAT_LAZY_REFCOUNTS;
        h.headerLength = o.version() >= 3 ? Qcow2Header.V3_HEADER_LENGTH : Qcow2Header.V2_HEADER_LENGTH;
        h.backingFile = o.backingFile();
        h.backingFormat = o.backingFile() != null ? o.backingFormat() : null;
        byte[] head = h.encode();
        ByteBuffer image = ByteBuffer.allocate((int) Math.min(Integer.MAX_VALUE, total * cs));
        image.put(0, head);
        for (long i = 0; i < blocks; i++) {
            image.putLong((int) (cs + i * 8), (1 + tableClusters + i) * cs);
        }
        byte[][] blockBytes = new byte[(int) blocks][cs];
        for (long c = 0; c < total; c++) {
            Refcounts.setEntry(blockBytes[(int) (c / entriesPerBlock)], (int) (c % entriesPerBlock), order, 1);
        }
        for (int i = 0; i < blocks; i++) image.put((int) ((1 + tableClusters + i) * cs), blockBytes[i]);
        try (FileChannel ch = FileChannel.open(
                path, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            image.position(0);
            while (image.hasRemaining()) ch.write(image);
            ch.force(true);
        }
        if (o.preallocateMetadata() && size > 0) {
            try (Qcow2Image img = Qcow2Image.open(path, false)) {
                img.preallocateMetadata();
            }
        }
    }
}
