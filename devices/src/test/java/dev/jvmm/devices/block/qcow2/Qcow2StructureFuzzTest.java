package dev.jvmm.devices.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.devices.FuzzInput;
import dev.jvmm.devices.FuzzInput.Writer;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.DiskImage;
import dev.jvmm.devices.block.ImageFile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Structure-aware fuzzing of qcow2: small valid images (an internal snapshot sharing L2 tables and clusters, a
 * compressed cluster, zero clusters, a raw backing file, version 2, extended L2 entries) have fields the input picks
 * set to values it picks: header fields and extensions, L1 and L2 entries, refcount table and block entries, snapshot
 * table fields; to boundary values (0, all ones, the cluster size and around it, the file's end and past it, huge,
 * flag bits) or to point at other metadata. The file may be cut short or grown too. Then the image is opened read-only
 * and read whole (each snapshot too) and checked; opened writable, written, zeroed, discarded, flushed, read and
 * closed, as the input says; and opened again and read.
 *
 * <p>Checked: nothing but an IOException (a {@link Qcow2Exception} for a corrupt image) comes out, nothing hangs; a
 * write that succeeds within one cluster reads back; and no write lands on metadata. For the last, an {@link Oracle}
 * sits in the image file's write path ({@link ImageFile#injectFaults}) and, before each write, tells from the stack
 * what is being written (guest data, a fresh cluster, an L2 entry, an L1 entry, a refcount, the header) and checks it
 * against where the metadata lies in the file at that moment, read independently of the image: guest data and fresh
 * clusters may touch no metadata, an entry update no metadata of another kind (the rule of QEMU's overlap check; the
 * snapshots' L2 tables are left out as QEMU's default check leaves them out). The image's own repairs of a dirty
 * image at open are not watched (they happen before the oracle can be installed).
 *
 * <p>Input: template (u8), mutations (u8 count, then each: u8 kind, u16/u8 field index, value choice and operands),
 * then operations; {@link #main} writes the seed inputs.
 */
class Qcow2StructureFuzzTest {
    static final long L1_MASK = Qcow2Image.L1_OFFSET_MASK, L2_MASK = Qcow2Image.L2_OFFSET_MASK;
    static final long COPIED = Qcow2Image.COPIED, COMPRESSED = Qcow2Image.COMPRESSED;
    static final long READ_LIMIT = 256 << 10;

    /** A field of a template image: where it lies, how wide it is (big-endian), what it is. */
    record Field(String name, int offset, int width) {}

    /** A template: the image, its backing file if any, its fields, and offsets worth pointing fields at. */
    record Template(String name, byte[] image, byte[] backing, List<Field> fields, long[] pointers) {
        int field(String fieldName) {
            for (int i = 0; i < fields.size(); i++) if (fields.get(i).name().equals(fieldName)) return i;
            throw new IllegalArgumentException("no field " + fieldName + " in " + name);
        }
    }

    private static List<Template> templates;

    static synchronized List<Template> templates() {
        if (templates == null) {
            try {
                templates = List.of(snapshotTemplate(), backingTemplate(), version2Template(), extendedL2Template());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return templates;
    }

    @FuzzTest(maxDuration = "30s")
    void mutatedFields(byte[] input) throws Exception {
        FuzzInput in = new FuzzInput(input);
        Template t = templates().get(in.u8() % templates().size());
        byte[] img = t.image().clone();
        int mutations = 1 + in.u8() % 4;
        for (int m = 0; m < mutations; m++) img = mutate(in, t, img);
        Path dir = scratch();
        Path p = dir.resolve("t.qcow2");
        try {
            Files.write(p, img);
            if (t.backing() != null) Files.write(dir.resolve("base.raw"), t.backing());
            exercise(in, p);
        } finally {
            try (Stream<Path> s = Files.list(dir)) {
                for (Path f : s.toList()) Files.delete(f);
            }
            Files.delete(dir);
        }
    }

    /** The templates open, read, write and check clean, and the oracle finds no overlap in them. */
    @Test
    void templatesAreValid() throws Exception {
        for (Template t : templates()) {
            Path dir = scratch();
            Path p = dir.resolve("t.qcow2");
            try {
                Files.write(p, t.image());
                if (t.backing() != null) Files.write(dir.resolve("base.raw"), t.backing());
                try (Qcow2Image q = open(p, true)) {
                    Qcow2Checker.Result r = new Qcow2Checker(q).run(Qcow2Checker.Repair.NONE);
                    assertEquals(0, r.corruptions(), t.name() + ": " + r.messages());
                    assertEquals(0, r.leaks(), t.name() + ": " + r.messages());
                    assertEquals(
                            t.name().equals("snapshot") ? 1 : 0, q.snapshots().size(), t.name());
                }
                Writer w = ops(new Writer(), 3);
                op(op(op(w, WRITE, LEN_4K, AT_0), WRITE, LEN_512, AT_CLUSTER, 70), ZEROES, LEN_CLUSTER, AT_8K, 1);
                exercise(new FuzzInput(w.bytes()), p);
                try (Qcow2Image q = open(p, true)) {
                    Qcow2Checker.Result r = new Qcow2Checker(q).run(Qcow2Checker.Repair.NONE);
                    assertEquals(0, r.corruptions(), t.name() + " after writing: " + r.messages());
                }
            } finally {
                try (Stream<Path> s = Files.list(dir)) {
                    for (Path f : s.toList()) Files.delete(f);
                }
                Files.delete(dir);
            }
        }
    }

    /**
     * A directory for the images: in memory where the machine has /dev/shm, since jvmm syncs its images often and a
     * disk's fdatasync would make each input several times slower.
     */
    static Path scratch() throws IOException {
        Path shm = Path.of("/dev/shm");
        return Files.isDirectory(shm) && Files.isWritable(shm)
                ? Files.createTempDirectory(shm, "qcow2struct")
                : Files.createTempDirectory("qcow2struct");
    }

    // ---- mutating

    private static byte[] mutate(FuzzInput in, Template t, byte[] img) {
        int kind = in.u8();
        if (kind % 16 == 15) { // cut the file short or grow it, by whole clusters mostly
            int cs = 1 << ByteBuffer.wrap(t.image()).getInt(20);
            int k = in.u8();
            long len = switch (k % 4) {
                case 0 -> img.length - (long) cs * (1 + in.u8() % 4);
                case 1 -> img.length + (long) cs * (1 + in.u8() % 4);
                case 2 -> img.length - 1 - in.u8();
                default -> (long) in.u16() * 8;
            };
            return Arrays.copyOf(img, (int) Math.max(0, Math.min(len, img.length + 16L * cs)));
        }
        List<Field> fields = t.fields();
        Field f = fields.get(in.below(fields.size()));
        if (f.offset() + f.width() > img.length) return img;
        long current = get(img, f.offset(), f.width());
        int cs = 1 << ByteBuffer.wrap(t.image()).getInt(20);
        long value = switch (in.u8() % 20) {
            case 0 -> 0;
            case 1 -> -1;
            case 2 -> 1;
            case 3 -> cs - 1;
            case 4 -> cs;
            case 5 -> current + cs;
            case 6 -> current - cs;
            case 7 -> current ^ (1L << (in.u8() % (8 * f.width())));
            case 8 -> img.length;
            case 9 -> img.length + (long) cs * (1 + in.u8() % 4);
            case 10 -> {
                long ptr = t.pointers()[in.below(t.pointers().length)];
                int flags = in.u8();
                yield ptr | ((flags & 1) != 0 ? COPIED : 0) | ((flags & 2) != 0 ? Qcow2Image.ZERO : 0);
            }
            case 11 -> current ^ COMPRESSED;
            case 12 -> current | 1L << 55;
            case 13 -> in.u64();
            case 14 -> current + 1;
            case 15 -> current - 1;
            case 16 -> in.u8();
            case 17 -> Long.MAX_VALUE >>> (64 - 8 * f.width());
            case 18 -> 1L << (8 * f.width() - 1);
            default -> current ^ COPIED;
        };
        byte[] out = img.clone();
        put(out, f.offset(), f.width(), value);
        return out;
    }

    static long get(byte[] b, int offset, int width) {
        long v = 0;
        for (int i = 0; i < width; i++) v = v << 8 | (b[offset + i] & 0xff);
        return v;
    }

    static void put(byte[] b, int offset, int width, long value) {
        for (int i = width - 1; i >= 0; i--) {
            b[offset + i] = (byte) value;
            value >>>= 8;
        }
    }

    // ---- exercising

    static Qcow2Image open(Path p, boolean readOnly) throws IOException {
        return Qcow2Image.open(p, readOnly, null, DiskImage.backingChain(DiskImage.BackingPaths.IMAGE_DIRECTORY));
    }

    private static void readAll(BlockBackend b) {
        long size = b.size();
        byte[] buf = new byte[64 << 10];
        for (long off = 0; off < Math.min(size, READ_LIMIT); off += buf.length) {
            try {
                b.read(off, MemorySegment.ofArray(buf).asSlice(0, Math.min(buf.length, size - off)));
            } catch (IOException expected) {
                // a corrupt table or entry found on the way
            }
        }
        if (size > READ_LIMIT) {
            try {
                b.read(size - 4096, MemorySegment.ofArray(buf).asSlice(0, 4096));
            } catch (IOException expected) {
                // as above
            }
        }
    }

    /** Opens, reads and checks read-only; opens writable and runs the input's operations; opens and reads again. */
    static void exercise(FuzzInput in, Path p) throws IOException {
        try (Qcow2Image q = open(p, true)) {
            readAll(q);
            for (Snapshot s : q.snapshots()) {
                try (Qcow2Image snap = Qcow2Image.open(
                        p, true, s.id(), DiskImage.backingChain(DiskImage.BackingPaths.IMAGE_DIRECTORY))) {
                    readAll(snap);
                } catch (IOException expected) {
                    // a corrupt snapshot
                }
            }
            try {
                new Qcow2Checker(q).run(Qcow2Checker.Repair.NONE);
            } catch (IOException expected) {
                // too large or unreadable
            }
        } catch (IOException expected) {
            // refused at open
        }
        try (Qcow2Image q = open(p, false)) {
            Oracle oracle = new Oracle(p, q.clusterSize());
            q.file.imageFile().injectFaults(oracle);
            int ops = 1 + in.u8() % 8;
            for (int i = 0; i < ops; i++) operation(in, q);
        } catch (IOException expected) {
            // refused at open, a write refused, or a close that reports the corruption again
        }
        try (Qcow2Image q = open(p, true)) {
            readAll(q);
        } catch (IOException expected) {
            // what jvmm left is still only refused
        }
    }

    private static void operation(FuzzInput in, Qcow2Image q) {
        long size = q.size();
        int cs = q.clusterSize();
        int kind = in.u8() % 6;
        long len = switch (in.u8() % 6) {
            case 0 -> 512;
            case 1 -> cs;
            case 2 -> 2L * cs;
            case 3 -> 1 + in.u16();
            case 4 -> 4096;
            default -> 65536;
        };
        long off = switch (in.u8() % 6) {
            case 0 -> 0;
            case 1 -> 512L * in.u16();
            case 2 -> size - len;
            case 3 -> (long) cs * in.u8();
            case 4 -> Integer.toUnsignedLong(in.u32());
            default -> 8192;
        };
        if (size <= 0) return;
        len = Math.min(len, 1 << 20);
        off = Math.floorMod(off, size);
        len = Math.min(len, size - off);
        if (len <= 0) return;
        try {
            switch (kind) {
                case 0, 1 -> {
                    byte[] data = new byte[(int) len];
                    Arrays.fill(data, (byte) 0x6a);
                    if (len >= 8) ByteBuffer.wrap(data).putLong(0, off);
                    q.write(off, MemorySegment.ofArray(data));
                    if (off / cs == (off + len - 1) / cs) { // within one cluster: it must read back
                        byte[] back = new byte[(int) len];
                        q.read(off, MemorySegment.ofArray(back));
                        assertArrayEquals(data, back, "a write of " + len + " bytes at " + off + " reads back");
                    }
                }
                case 2 -> q.writeZeroes(off, len, in.bool());
                case 3 -> q.discard(off, len);
                case 4 -> q.flush();
                default -> q.read(off, MemorySegment.ofArray(new byte[(int) len]));
            }
        } catch (IOException expected) {
            // refused: corrupt, or a failed request
        }
    }

    // ---- the overlap oracle

    enum Kind {
        HEADER,
        L1,
        REFCOUNT_TABLE,
        REFCOUNT_BLOCK,
        L2,
        SNAPSHOT_TABLE,
        SNAPSHOT_L1,
        /** Guest data or a freshly allocated cluster: may touch no metadata. */
        FRESH
    }

    record Range(long start, long end, Kind kind) {}

    /**
     * Watches every write to the image file: before it happens, tells what is written from the stack and checks it
     * against where the metadata lies in the file now ({@link #metadata}), and fails the test if it would land on
     * metadata it must not touch.
     */
    static final class Oracle implements ImageFile.Faults {
        private final Path path;
        private final int cs;
        private List<Range> metadata;

        Oracle(Path path, int cs) {
            this.path = path;
            this.cs = cs;
        }

        @Override
        public void beforeWrite(long offset, long length) throws IOException {
            Kind writing = writer(offset, length);
            if (metadata == null) metadata = metadata(path, cs);
            if (writing != null) {
                for (Range r : metadata) {
                    if (r.start() < offset + length
                            && offset < r.end()
                            && (writing == Kind.FRESH || r.kind() != writing))
                        throw new AssertionError(String.format(
                                "a write of %s at 0x%x (+%d) lands on %s at 0x%x..0x%x",
                                writing == Kind.FRESH ? "guest data or a fresh cluster" : "an entry of " + writing,
                                offset,
                                length,
                                r.kind(),
                                r.start(),
                                r.end()));
                }
            }
            // What the write changes may move metadata (the header, a table): read it again next time.
            if (writing == null || writing == Kind.HEADER || writing == Kind.L1 || writing == Kind.REFCOUNT_TABLE)
                metadata = null;
        }

        /** What the write is, from who asks for it; null where this oracle does not know (it then stays out). */
        private static Kind writer(long offset, long length) {
            return StackWalker.getInstance().walk(frames -> {
                for (StackWalker.StackFrame f : (Iterable<StackWalker.StackFrame>) frames::iterator) {
                    String cls = f.getClassName(), m = f.getMethodName();
                    if (cls.endsWith(".HostFile") && (m.equals("writeData") || m.equals("writevData")))
                        return Kind.FRESH;
                    if (cls.endsWith(".Qcow2Image")) {
                        return switch (m) {
                            case "writableL2" -> Kind.FRESH;
                            case "setL2" -> Kind.L2;
                            case "setL1" -> Kind.L1;
                            case "markCorrupt", "prepareForWriting" -> Kind.HEADER;
                            default -> null;
                        };
                    }
                    if (cls.endsWith(".Refcounts")) {
                        return switch (m) {
                            case "set" -> Kind.REFCOUNT_BLOCK;
                            case "ensureBlock" -> length == 8 ? Kind.REFCOUNT_TABLE : Kind.FRESH;
                            case "growTable" -> offset < 4096 && length == 12 ? Kind.HEADER : Kind.FRESH;
                            default -> null;
                        };
                    }
                    if (cls.endsWith(".Qcow2Checker")) return null;
                }
                return null;
            });
        }
    }

    /**
     * Where the metadata lies in the image file now, read from the file alone: the header cluster, the L1 table, the
     * refcount table, the refcount blocks and the L2 tables its entries name (cluster-aligned, in range of the offset
     * masks, wherever in the file or past its end), the snapshot table and the snapshots' L1 tables.
     */
    static List<Range> metadata(Path path, int cs) throws IOException {
        List<Range> out = new ArrayList<>();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long fileLength = ch.size();
            ByteBuffer h = read(ch, 0, 112);
            out.add(new Range(0, cs, Kind.HEADER));
            int l1Size = h.getInt(36);
            long l1Offset = h.getLong(40), rtOffset = h.getLong(48);
            int rtClusters = h.getInt(56), nbSnapshots = h.getInt(60);
            long snapshotsOffset = h.getLong(64);
            if (l1Size > 0 && l1Offset > 0 && l1Offset + 8L * l1Size <= fileLength) {
                out.add(new Range(l1Offset, l1Offset + 8L * l1Size, Kind.L1));
                ByteBuffer l1 = read(ch, l1Offset, 8 * l1Size);
                for (int i = 0; i < l1Size; i++) {
                    long l2 = l1.getLong(8 * i) & L1_MASK;
                    if (l2 != 0 && (l2 & (cs - 1)) == 0) out.add(new Range(l2, l2 + cs, Kind.L2));
                }
            }
            if (rtClusters > 0 && rtOffset > 0 && rtOffset + (long) rtClusters * cs <= fileLength) {
                out.add(new Range(rtOffset, rtOffset + (long) rtClusters * cs, Kind.REFCOUNT_TABLE));
                ByteBuffer rt = read(ch, rtOffset, rtClusters * cs);
                for (int i = 0; i < rtClusters * cs / 8; i++) {
                    long b = rt.getLong(8 * i);
                    if (b != 0 && (b & ~Refcounts.OFFSET_MASK) == 0 && (b & (cs - 1)) == 0)
                        out.add(new Range(b, b + cs, Kind.REFCOUNT_BLOCK));
                }
            }
            long pos = snapshotsOffset, tableBytes = 0;
            for (int i = 0; i < nbSnapshots && nbSnapshots <= 1024; i++) {
                if (pos < 0 || pos + 40 > fileLength) break;
                ByteBuffer e = read(ch, pos, 40);
                long l1 = e.getLong(0);
                int size = e.getInt(8), extra = e.getInt(36);
                int idLen = e.getShort(12) & 0xffff, nameLen = e.getShort(14) & 0xffff;
                if (extra < 0 || extra > 1024) break;
                if (size > 0 && size <= (32 << 20) / 8) out.add(new Range(l1, l1 + 8L * size, Kind.SNAPSHOT_L1));
                long entry = (40L + extra + idLen + nameLen + 7) & ~7L;
                pos += entry;
                tableBytes += entry;
            }
            if (tableBytes > 0) out.add(new Range(snapshotsOffset, snapshotsOffset + tableBytes, Kind.SNAPSHOT_TABLE));
        }
        return out;
    }

    private static ByteBuffer read(FileChannel ch, long pos, int len) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        while (b.hasRemaining() && ch.read(b, pos + b.position()) >= 0) {}
        return b.clear();
    }

    // ---- the templates

    /** v3, 512-byte clusters, 8-bit refcounts: a compressed cluster, zero clusters, data; a snapshot; then more. */
    static Template snapshotTemplate() throws IOException {
        Path dir = Files.createTempDirectory("qcow2tpl");
        Path p = dir.resolve("t.qcow2");
        try {
            Qcow2Creator.create(
                    p, Qcow2Creator.Options.of(64 << 10).withClusterSize(512).withRefcountBits(8));
            try (Qcow2Image q = Qcow2Image.open(p, false)) {
                byte[] text = new byte[512];
                for (int i = 0; i < text.length; i++) text[i] = (byte) ('a' + i % 3);
                q.writeCompressed(0, text, 512);
                q.write(8192, MemorySegment.ofArray(random(4096, 1)));
                q.writeZeroes(4096, 1024, false);
                q.write(40960, MemorySegment.ofArray(random(1024, 2)));
            }
            addSnapshot(p, "first");
            try (Qcow2Image q = Qcow2Image.open(p, false)) {
                q.write(8704, MemorySegment.ofArray(random(1024, 3))); // copies the shared L2 table and clusters
                q.write(16384, MemorySegment.ofArray(random(2048, 4)));
            }
            return template("snapshot", Files.readAllBytes(p), null);
        } finally {
            Files.deleteIfExists(p);
            Files.delete(dir);
        }
    }

    /** v3, 512-byte clusters, 16-bit refcounts, over a raw backing file: data and zero clusters over it. */
    static Template backingTemplate() throws IOException {
        Path dir = Files.createTempDirectory("qcow2tpl");
        Path p = dir.resolve("t.qcow2"), base = dir.resolve("base.raw");
        try {
            byte[] backing = random(64 << 10, 5);
            Files.write(base, backing);
            Qcow2Creator.create(
                    p, Qcow2Creator.Options.of(0).withClusterSize(512).withBacking("base.raw", "raw"));
            try (Qcow2Image q = open(p, false)) {
                q.write(4096, MemorySegment.ofArray(random(1024, 6)));
                q.writeZeroes(16384, 1024, false);
                q.write(20000, MemorySegment.ofArray(random(100, 7)));
            }
            return template("backing", Files.readAllBytes(p), backing);
        } finally {
            Files.deleteIfExists(p);
            Files.deleteIfExists(base);
            Files.delete(dir);
        }
    }

    /** v2 (no zero flag), 1 KiB clusters: a compressed cluster and data. */
    static Template version2Template() throws IOException {
        Path dir = Files.createTempDirectory("qcow2tpl");
        Path p = dir.resolve("t.qcow2");
        try {
            Qcow2Creator.create(
                    p, Qcow2Creator.Options.of(64 << 10).withClusterSize(1024).withVersion(2));
            try (Qcow2Image q = Qcow2Image.open(p, false)) {
                byte[] text = new byte[1024];
                Arrays.fill(text, (byte) 'x');
                q.writeCompressed(1024, text, 1024);
                q.write(8192, MemorySegment.ofArray(random(3000, 8)));
                q.writeZeroes(20480, 2048, true);
            }
            return template("v2", Files.readAllBytes(p), null);
        } finally {
            Files.deleteIfExists(p);
            Files.delete(dir);
        }
    }

    /** v3 with extended L2 entries (16 KiB clusters of 32 subclusters): partial clusters, zero subclusters. */
    static Template extendedL2Template() throws IOException {
        Path dir = Files.createTempDirectory("qcow2tpl");
        Path p = dir.resolve("t.qcow2");
        try {
            Qcow2Creator.create(
                    p, Qcow2Creator.Options.of(256 << 10).withClusterSize(16384).withExtendedL2(true));
            try (Qcow2Image q = Qcow2Image.open(p, false)) {
                q.write(1024, MemorySegment.ofArray(random(512, 9)));
                q.write(32768, MemorySegment.ofArray(random(16384, 10)));
                q.writeZeroes(33792, 1024, false);
            }
            return template("extended-l2", Files.readAllBytes(p), null);
        } finally {
            Files.deleteIfExists(p);
            Files.delete(dir);
        }
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /**
     * Adds an internal snapshot of the active state, as {@code qemu-img snapshot -c} does: the L1 table copied to a
     * new cluster, the snapshot table in another, every L2 table and data cluster the L1 reaches one more reference,
     * their COPIED flags cleared. For an image of 8-bit refcounts whose refcount blocks cover the new clusters.
     */
    static void addSnapshot(Path p, String name) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p));
        int cs = 1 << b.getInt(20);
        if (b.getInt(96) != 3) throw new IllegalArgumentException("8-bit refcounts only");
        long size = b.getLong(24), l1Offset = b.getLong(40), rtOffset = b.getLong(48);
        int l1Size = b.getInt(36);
        int compressedOffsetBits = 62 - (Integer.numberOfTrailingZeros(cs) - 8);
        long fileEnd = (b.capacity() + cs - 1) & -(long) cs;
        List<Long> referenced = new ArrayList<>();
        for (int i = 0; i < l1Size; i++) {
            long e = b.getLong((int) (l1Offset + 8L * i));
            long l2 = e & L1_MASK;
            if (l2 == 0) continue;
            b.putLong((int) (l1Offset + 8L * i), l2);
            referenced.add(l2);
            for (int j = 0; j < cs / 8; j++) {
                int at = (int) (l2 + 8L * j);
                long entry = b.getLong(at);
                if ((entry & COMPRESSED) != 0) {
                    long host = entry & ((1L << compressedOffsetBits) - 1);
                    long sectors = (entry >>> compressedOffsetBits) & ((1L << (62 - compressedOffsetBits)) - 1);
                    long end = host + (sectors + 1) * 512 - (host & 511);
                    for (long c = host / cs; c <= (end - 1) / cs; c++) referenced.add(c * cs);
                } else if ((entry & L2_MASK) != 0) {
                    referenced.add(entry & L2_MASK);
                }
                b.putLong(at, entry & ~COPIED);
            }
        }
        long snapL1 = fileEnd, table = fileEnd + cs;
        ByteBuffer out = ByteBuffer.allocate((int) (fileEnd + 2L * cs));
        out.put(0, b.array());
        for (int i = 0; i < l1Size; i++) out.putLong((int) (snapL1 + 8L * i), b.getLong((int) (l1Offset + 8L * i)));
        byte[] id = "1".getBytes(), nm = name.getBytes();
        out.position((int) table);
        out.putLong(snapL1).putInt(l1Size).putShort((short) id.length).putShort((short) nm.length);
        out.putInt(1_700_000_000).putInt(0).putLong(0).putInt(0).putInt(16);
        out.putLong(0).putLong(size).put(id).put(nm);
        out.putInt(60, 1).putLong(64, table);
        for (long c : referenced) adjustRefcount(out, rtOffset, cs, c / cs, 1);
        adjustRefcount(out, rtOffset, cs, snapL1 / cs, 1);
        adjustRefcount(out, rtOffset, cs, table / cs, 1);
        Files.write(p, out.array());
    }

    private static void adjustRefcount(ByteBuffer img, long rtOffset, int cs, long cluster, int delta) {
        long block = img.getLong((int) (rtOffset + 8 * (cluster / cs)));
        if (block == 0) throw new IllegalStateException("no refcount block for cluster " + cluster);
        int at = (int) (block + cluster % cs);
        img.put(at, (byte) (img.get(at) + delta));
    }

    /** The template's fields and the offsets worth pointing them at, parsed from the image. */
    static Template template(String name, byte[] img, byte[] backing) {
        ByteBuffer b = ByteBuffer.wrap(img);
        int cs = 1 << b.getInt(20), version = b.getInt(4);
        boolean extL2 = version >= 3 && (b.getLong(72) & Qcow2Header.INCOMPAT_EXTL2) != 0;
        int order = version >= 3 ? b.getInt(96) : 4;
        List<Field> f = new ArrayList<>();
        String[] headerNames = {
            "magic",
            "version",
            "backing_file_offset",
            "backing_file_size",
            "cluster_bits",
            "size",
            "crypt_method",
            "l1_size",
            "l1_table_offset",
            "refcount_table_offset",
            "refcount_table_clusters",
            "nb_snapshots",
            "snapshots_offset",
            "incompatible_features",
            "compatible_features",
            "autoclear_features",
            "refcount_order",
            "header_length"
        };
        int[] headerOffsets = {0, 4, 8, 16, 20, 24, 32, 36, 40, 48, 56, 60, 64, 72, 80, 88, 96, 100};
        int[] headerWidths = {4, 4, 8, 4, 4, 8, 4, 4, 8, 8, 4, 4, 8, 8, 8, 8, 4, 4};
        for (int i = 0; i < headerNames.length; i++) {
            if (version < 3 && headerOffsets[i] >= 72) break;
            f.add(new Field(headerNames[i], headerOffsets[i], headerWidths[i]));
        }
        if (version >= 3) {
            f.add(new Field("compression_type", 104, 1));
            int pos = b.getInt(100);
            for (int n = 0; pos + 8 <= cs && n < 8; n++) {
                f.add(new Field("extension " + n + " type", pos, 4));
                f.add(new Field("extension " + n + " length", pos + 4, 4));
                int type = b.getInt(pos);
                if (type == 0) break;
                pos += 8 + ((b.getInt(pos + 4) + 7) & ~7);
            }
        }
        List<Long> pointers = new ArrayList<>(List.of(0L, (long) cs, (long) img.length));
        long l1Offset = b.getLong(40), rtOffset = b.getLong(48), snapshots = b.getLong(64);
        int l1Size = b.getInt(36), rtClusters = b.getInt(56), nbSnapshots = b.getInt(60);
        pointers.addAll(List.of(l1Offset, rtOffset));
        List<long[]> l1s = new ArrayList<>(); // {offset, size, index for names}
        l1s.add(new long[] {l1Offset, l1Size});
        long pos = snapshots;
        for (int s = 0; s < nbSnapshots; s++) {
            pointers.add(pos);
            f.add(new Field("snapshot " + s + " l1_table_offset", (int) pos, 8));
            f.add(new Field("snapshot " + s + " l1_size", (int) pos + 8, 4));
            f.add(new Field("snapshot " + s + " id_str_size", (int) pos + 12, 2));
            f.add(new Field("snapshot " + s + " name_size", (int) pos + 14, 2));
            f.add(new Field("snapshot " + s + " extra_data_size", (int) pos + 36, 4));
            f.add(new Field("snapshot " + s + " disk_size", (int) pos + 48, 8));
            l1s.add(new long[] {b.getLong((int) pos), b.getInt((int) pos + 8)});
            pointers.add(b.getLong((int) pos));
            int extra = b.getInt((int) pos + 36);
            pos += (40L + extra + (b.getShort((int) pos + 12) & 0xffff) + (b.getShort((int) pos + 14) & 0xffff) + 7)
                    & ~7L;
        }
        int tableNumber = 0;
        List<Long> seenL2 = new ArrayList<>();
        for (int t = 0; t < l1s.size(); t++) {
            long off = l1s.get(t)[0];
            for (int i = 0; i < l1s.get(t)[1]; i++) {
                String which = t == 0 ? "l1" : "snapshot " + (t - 1) + " l1";
                f.add(new Field(which + "[" + i + "]", (int) (off + 8L * i), 8));
                long l2 = b.getLong((int) (off + 8L * i)) & L1_MASK;
                if (l2 == 0 || seenL2.contains(l2)) continue;
                seenL2.add(l2);
                pointers.add(l2);
                int entries = cs / (extL2 ? 16 : 8), zeros = 0;
                for (int j = 0; j < entries; j++) {
                    int at = (int) (l2 + (long) (extL2 ? 16 : 8) * j);
                    long entry = b.getLong(at);
                    if (entry == 0 && (!extL2 || b.getLong(at + 8) == 0) && zeros++ >= 4) continue;
                    f.add(new Field("l2 " + tableNumber + " [" + j + "]", at, 8));
                    if (extL2) f.add(new Field("l2 " + tableNumber + " [" + j + "] bitmap", at + 8, 8));
                    if ((entry & L2_MASK) != 0 && (entry & COMPRESSED) == 0) pointers.add(entry & L2_MASK);
                    if ((entry & COMPRESSED) != 0)
                        pointers.add(entry & ((1L << (62 - (Integer.numberOfTrailingZeros(cs) - 8))) - 1));
                }
                tableNumber++;
            }
        }
        long clusters = (img.length + cs - 1) / cs;
        int entriesPerBlock = cs * 8 >>> order;
        int width = Math.max(1, (1 << order) / 8);
        for (int i = 0; i < rtClusters * cs / 8; i++) {
            long block = b.getLong((int) (rtOffset + 8L * i));
            if (block == 0 && i > 1) continue;
            f.add(new Field("refcount_table[" + i + "]", (int) (rtOffset + 8L * i), 8));
            if (block == 0) continue;
            pointers.add(block);
            for (long c = (long) i * entriesPerBlock; c < Math.min((i + 1L) * entriesPerBlock, clusters + 2); c++) {
                int at = (int) (block
                        + (order < 3
                                ? ((c - (long) i * entriesPerBlock) << order) >>> 3
                                : (c - (long) i * entriesPerBlock) * width));
                f.add(new Field("refcount of cluster " + c, at, width));
            }
        }
        long[] ptrs = pointers.stream()
                .distinct()
                .sorted(Comparator.naturalOrder())
                .mapToLong(Long::longValue)
                .toArray();
        return new Template(name, img, backing, List.copyOf(f), ptrs);
    }

    // ---- seed inputs

    /** Writes {@link #seeds()} into the Inputs folder under the given src/test/resources (default: the cwd's). */
    public static void main(String[] args) throws IOException {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        FuzzInput.writeSeeds(resources, Qcow2StructureFuzzTest.class, "mutatedFields", seeds());
    }

    /** A field set to a value choice (with its operand bytes). */
    static Writer set(Writer w, Template t, String field, int... choice) {
        int i = t.field(field);
        w.u8(0);
        if (t.fields().size() > 256) w.u16(i);
        else w.u8(i);
        for (int c : choice) w.u8(c);
        return w;
    }

    /** The count of operations that follow (1 to 8). */
    static Writer ops(Writer w, int count) {
        return w.u8(count - 1);
    }

    static final int WRITE = 0, ZEROES = 2, DISCARD = 3, FLUSH = 4, READ = 5;
    static final int LEN_512 = 0, LEN_CLUSTER = 1, LEN_4K = 4;
    static final int AT_0 = 0, AT_END = 2, AT_CLUSTER = 3, AT_8K = 5;

    /** One operation: kind, length choice, offset choice (AT_CLUSTER takes a cluster number), zeroes' unmap flag. */
    static Writer op(Writer w, int kind, int length, int at, int... operands) {
        w.u8(kind).u8(length).u8(at);
        for (int x : operands) w.u8(x);
        return w;
    }

    static Map<String, byte[]> seeds() {
        Map<String, byte[]> s = new LinkedHashMap<>();
        List<Template> ts = templates();
        Template snap = ts.get(0), backing = ts.get(1), v2 = ts.get(2), ext = ts.get(3);
        // Each: template, mutation count - 1, the mutations, then the operations.
        // An active L1 entry pointing at the refcount table (pointer choice 10, with COPIED); writes through it,
        // first to guest cluster 5, whose "L2 entry" is an empty refcount table entry: a cluster is allocated and
        // its L2 entry would be written into the refcount table.
        Writer w = new Writer().u8(0).u8(0);
        int rt = Arrays.binarySearch(
                snap.pointers(), ByteBuffer.wrap(snap.image()).getLong(48));
        set(w, snap, "l1[0]", 10, rt, 1);
        op(op(op(ops(w, 3), WRITE, LEN_512, AT_CLUSTER, 5), WRITE, LEN_CLUSTER, AT_8K), FLUSH, 0, 0);
        s.put("l1-entry-on-the-refcount-table", w.bytes());
        // An L2 entry pointing at the snapshot table, with COPIED: the write there must be refused.
        w = new Writer().u8(0).u8(0);
        int st = Arrays.binarySearch(
                snap.pointers(), ByteBuffer.wrap(snap.image()).getLong(64));
        set(w, snap, "l2 0 [0]", 10, st, 1);
        s.put(
                "l2-entry-on-the-snapshot-table",
                op(op(ops(w, 2), WRITE, LEN_512, AT_0), FLUSH, 0, 0).bytes());
        // The refcount of the L1 table's cluster set to 0: the allocator may hand it out.
        w = new Writer().u8(0).u8(0);
        long l1Cluster = ByteBuffer.wrap(snap.image()).getLong(40) / 512;
        set(w, snap, "refcount of cluster " + l1Cluster, 0);
        op(op(op(ops(w, 3), WRITE, LEN_CLUSTER, AT_CLUSTER, 100), WRITE, LEN_4K, AT_CLUSTER, 110), FLUSH, 0, 0);
        s.put("l1-cluster-refcount-zero", w.bytes());
        // A snapshot whose L1 table lies past the end of the file; a snapshot table entry of huge extra data.
        w = new Writer().u8(0).u8(1);
        set(w, snap, "snapshot 0 l1_table_offset", 9, 2);
        set(w, snap, "snapshot 0 extra_data_size", 13).u64(0x7fff_ffffL);
        s.put("snapshot-fields", op(ops(w, 1), READ, LEN_4K, AT_0).bytes());
        // The dirty bit: the image is repaired at open; then written.
        w = new Writer().u8(0).u8(0);
        set(w, snap, "incompatible_features", 2);
        op(op(ops(w, 2), WRITE, LEN_CLUSTER, AT_CLUSTER, 40), FLUSH, 0, 0);
        s.put("dirty-image", w.bytes());
        // A backing file name length past the cluster; an L2 entry of a backed image cleared, then written over.
        w = new Writer().u8(1).u8(0);
        set(w, backing, "backing_file_size", 4);
        s.put("backing-name-length", op(ops(w, 1), WRITE, LEN_512, AT_0).bytes());
        w = new Writer().u8(1).u8(0);
        set(w, backing, "l2 0 [8]", 0);
        op(op(op(ops(w, 3), ZEROES, LEN_CLUSTER, AT_8K, 1), WRITE, LEN_4K, AT_0), FLUSH, 0, 0);
        s.put("backing-l2-entry-cleared", w.bytes());
        // v2: a compressed entry's bit flipped; the L1 table size cut to 0.
        w = new Writer().u8(2).u8(1);
        set(w, v2, "l2 0 [1]", 7, 58);
        set(w, v2, "l1_size", 0);
        s.put(
                "v2-compressed-and-l1-size",
                op(op(ops(w, 2), WRITE, LEN_CLUSTER, AT_CLUSTER, 1), READ, 0, 0).bytes());
        // Extended L2: an entry whose bitmap says both allocated and zero; the refcount table offset off by one.
        w = new Writer().u8(3).u8(1);
        set(w, ext, "l2 0 [0] bitmap", 1);
        set(w, ext, "refcount_table_offset", 14);
        s.put(
                "extended-l2-bitmap",
                op(op(ops(w, 2), WRITE, LEN_512, AT_0), FLUSH, 0, 0).bytes());
        // The file cut short by a cluster, then written (allocations at the end).
        w = new Writer().u8(0).u8(0).u8(15).u8(0).u8(0);
        op(op(op(ops(w, 3), WRITE, LEN_CLUSTER, AT_CLUSTER, 100), WRITE, LEN_4K, AT_END), FLUSH, 0, 0);
        s.put("file-cut-short", w.bytes());
        return s;
    }
}
