package dev.jvmm.core.memory;

import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.SyscallException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Guest RAM: regions of anonymous memory (or of a snapshot file, mapped copy-on-write), addressed by guest-physical
 * address (a plain {@code long} named {@code gpa}: a wrapper type would allocate on every access of the hot paths).
 *
 * <p>Every access is bounds-checked against the regions, so a guest-supplied address can at worst raise
 * {@link GuestMemoryException}; no device sees a host pointer, only bounded {@link MemorySegment} views.
 * Multi-byte values are little-endian, as on x86.
 */
public final class GuestMemory implements AutoCloseable {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** How guest RAM is backed. */
    public record Options(boolean hugePages, boolean mergeable) {
        public static final Options DEFAULT = new Options(false, false);
    }

    /** A region to create: its guest-physical base and size, both page-aligned. */
    public record Layout(long guestBase, long size) {}

    private final MemoryRegion[] regions;
    private final boolean owned;
    private volatile boolean closed;

    private GuestMemory(MemoryRegion[] regions, boolean owned) {
        this.regions = regions;
        this.owned = owned;
    }

    /**
     * Maps anonymous memory for each region with MAP_NORESERVE: host memory is committed only when the guest
     * touches a page.
     */
    public static GuestMemory allocate(List<Layout> layouts, Options options) {
        List<Layout> sorted = new ArrayList<>(layouts);
        sorted.sort(Comparator.comparingLong(Layout::guestBase));
        for (int i = 0; i < sorted.size(); i++) {
            Layout l = sorted.get(i);
            if (l.size() <= 0 || (l.size() & 0xfff) != 0 || (l.guestBase() & 0xfff) != 0 || l.guestBase() < 0)
                throw new IllegalArgumentException(
                        "memory region " + l + " must have a page-aligned base and a positive page-aligned size");
            if (i > 0 && sorted.get(i - 1).guestBase() + sorted.get(i - 1).size() > l.guestBase())
                throw new IllegalArgumentException("memory regions " + sorted.get(i - 1) + " and " + l + " overlap");
        }
        MemoryRegion[] regions = new MemoryRegion[sorted.size()];
        try {
            for (int i = 0; i < regions.length; i++) {
                Layout l = sorted.get(i);
                MemorySegment host = Libc.mmap(
                        MemorySegment.NULL,
                        l.size(),
                        Libc.PROT_READ | Libc.PROT_WRITE,
                        Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE,
                        -1,
                        0);
                regions[i] = new MemoryRegion(l.guestBase(), host);
                // Advice is best effort: a host without THP or KSM still runs the guest.
                if (options.hugePages()) adviseQuietly(host, Libc.MADV_HUGEPAGE);
                if (options.mergeable()) adviseQuietly(host, Libc.MADV_MERGEABLE);
            }
        } catch (RuntimeException e) {
            for (MemoryRegion r : regions) if (r != null) Libc.munmap(r.host());
            throw e;
        }
        return new GuestMemory(regions, true);
    }

    /** A region of guest RAM whose contents lie in a file from {@code fileOffset} on; all three page-aligned. */
    public record FileRegion(long guestBase, long size, long fileOffset) {}

    /**
     * Maps each region from {@code file}, private and copy-on-write (MAP_PRIVATE), as Firecracker restores a
     * snapshot: nothing is read up front, a page comes from the file (or the page cache, shared by every VM restored
     * from the same file) when first touched, and the guest's writes land in its own anonymous copies, never in the
     * file. The file is opened read-only and closed again; the mappings keep it alive. The file must stay the same
     * size while mapped: a page beyond its end would fault on access.
     */
    public static GuestMemory mapPrivate(Path file, List<FileRegion> fileRegions) {
        List<FileRegion> sorted = new ArrayList<>(fileRegions);
        sorted.sort(Comparator.comparingLong(FileRegion::guestBase));
        for (int i = 0; i < sorted.size(); i++) {
            FileRegion f = sorted.get(i);
            if (f.size() <= 0
                    || ((f.size() | f.guestBase() | f.fileOffset()) & 0xfff) != 0
                    || f.guestBase() < 0
                    || f.fileOffset() < 0)
                throw new IllegalArgumentException(
                        "memory region " + f + " must have a page-aligned base, size and file offset");
            if (i > 0 && sorted.get(i - 1).guestBase() + sorted.get(i - 1).size() > f.guestBase())
                throw new IllegalArgumentException("memory regions " + sorted.get(i - 1) + " and " + f + " overlap");
        }
        MemoryRegion[] regions = new MemoryRegion[sorted.size()];
        int fd = Libc.open(file.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        try {
            long fileSize = Libc.lseekRaw(fd, 0, Libc.SEEK_END);
            if (fileSize < 0) throw new SyscallException("lseek(" + file + ")", (int) -fileSize);
            for (int i = 0; i < regions.length; i++) {
                FileRegion f = sorted.get(i);
                if (f.fileOffset() > fileSize - f.size())
                    throw new IllegalArgumentException(file + " has " + fileSize + " bytes, too few for " + f);
                MemorySegment host = Libc.mmap(
                        MemorySegment.NULL,
                        f.size(),
                        Libc.PROT_READ | Libc.PROT_WRITE,
                        Libc.MAP_PRIVATE | Libc.MAP_NORESERVE,
                        fd,
                        f.fileOffset());
                regions[i] = new MemoryRegion(f.guestBase(), host);
            }
        } catch (RuntimeException e) {
            for (MemoryRegion r : regions) if (r != null) Libc.munmap(r.host());
            throw e;
        } finally {
            Libc.close(fd);
        }
        return new GuestMemory(regions, true);
    }

    /** Guest memory over segments the caller owns (tests, fuzzers); closing it unmaps nothing. */
    public static GuestMemory wrap(List<MemoryRegion> regions) {
        MemoryRegion[] sorted = regions.toArray(MemoryRegion[]::new);
        java.util.Arrays.sort(sorted, Comparator.comparingLong(MemoryRegion::guestBase));
        return new GuestMemory(sorted, false);
    }

    private static void adviseQuietly(MemorySegment host, int advice) {
        try {
            Libc.madvise(host, advice);
        } catch (RuntimeException e) {
            org.slf4j.LoggerFactory.getLogger(GuestMemory.class)
                    .warn("madvise({}) not available: {}", advice, e.getMessage());
        }
    }

    public List<MemoryRegion> regions() {
        return List.of(regions);
    }

    /** Total bytes of RAM across regions. */
    public long size() {
        long s = 0;
        for (MemoryRegion r : regions) s += r.size();
        return s;
    }

    /** True when [gpa, gpa+len) is RAM in a single region. */
    public boolean isValid(long gpa, long len) {
        for (MemoryRegion r : regions) if (r.contains(gpa, len)) return true;
        return false;
    }

    /**
     * The region holding all of [gpa, gpa+len), or null: a caller keeping {@code (region.host(), gpa -
     * region.guestBase())} instead of a {@link #slice} allocates nothing per access (the virtqueues' hot paths).
     */
    public MemoryRegion regionContaining(long gpa, long len) {
        for (MemoryRegion r : regions) if (r.contains(gpa, len)) return r;
        return null;
    }

    private MemoryRegion regionFor(long gpa, long len) {
        MemoryRegion r = regionContaining(gpa, len);
        if (r != null) return r;
        throw new GuestMemoryException(gpa, len);
    }

    /**
     * A view of [gpa, gpa+len) of guest RAM, for zero-copy I/O (a disk read lands straight in guest memory).
     * The view is bounded: a device cannot reach outside it.
     */
    public MemorySegment slice(long gpa, long len) {
        MemoryRegion r = regionFor(gpa, len);
        return r.host().asSlice(gpa - r.guestBase(), len);
    }

    public byte readByte(long gpa) {
        MemoryRegion r = regionFor(gpa, 1);
        return r.host().get(ValueLayout.JAVA_BYTE, gpa - r.guestBase());
    }

    public short readShort(long gpa) {
        MemoryRegion r = regionFor(gpa, 2);
        return r.host().get(U16, gpa - r.guestBase());
    }

    public int readInt(long gpa) {
        MemoryRegion r = regionFor(gpa, 4);
        return r.host().get(U32, gpa - r.guestBase());
    }

    public long readLong(long gpa) {
        MemoryRegion r = regionFor(gpa, 8);
        return r.host().get(U64, gpa - r.guestBase());
    }

    public void writeByte(long gpa, byte v) {
        MemoryRegion r = regionFor(gpa, 1);
        r.host().set(ValueLayout.JAVA_BYTE, gpa - r.guestBase(), v);
    }

    public void writeShort(long gpa, short v) {
        MemoryRegion r = regionFor(gpa, 2);
        r.host().set(U16, gpa - r.guestBase(), v);
    }

    public void writeInt(long gpa, int v) {
        MemoryRegion r = regionFor(gpa, 4);
        r.host().set(U32, gpa - r.guestBase(), v);
    }

    public void writeLong(long gpa, long v) {
        MemoryRegion r = regionFor(gpa, 8);
        r.host().set(U64, gpa - r.guestBase(), v);
    }

    public void read(long gpa, byte[] dst, int off, int len) {
        MemorySegment.copy(slice(gpa, len), ValueLayout.JAVA_BYTE, 0, dst, off, len);
    }

    public void write(long gpa, byte[] src, int off, int len) {
        MemorySegment.copy(src, off, slice(gpa, len), ValueLayout.JAVA_BYTE, 0, len);
    }

    public void write(long gpa, byte[] src) {
        write(gpa, src, 0, src.length);
    }

    public void fill(long gpa, long len, byte value) {
        slice(gpa, len).fill(value);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (owned) for (MemoryRegion r : regions) Libc.munmap(r.host());
    }
}
