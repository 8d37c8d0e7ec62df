package dev.jvmm.devices.block;

import dev.jvmm.devices.block.qcow2.Qcow2Header;
import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A raw disk image in a host file. Reads and writes go straight between the file and guest memory (pread /
 * pwrite on the guest's buffers, no copy; a request's scatter-gather list is one preadv / pwritev); flush is
 * fdatasync; discard punches holes so a sparse image stays sparse; write-zeroes uses FALLOC_FL_ZERO_RANGE or a
 * hole, falling back to writing zeroes where the file system supports neither.
 *
 * <p>The system calls themselves (EINTR, short transfers, heap buffers) are {@link ImageFile}'s.
 *
 * <p>Thread-safe: positional I/O only, no shared file offset. A host failure (EIO, ENOSPC, ...) is an
 * IOException naming the file, the operation and errno.
 */
public final class RawFileBackend implements BlockBackend {
    private static final Logger LOG = LoggerFactory.getLogger(RawFileBackend.class);
    private static final int ZERO_CHUNK = 1 << 20;

    private final ImageFile file;
    private final long size;
    private final boolean readOnly;
    /** The format was probed: a write must not make the file probe as qcow2 next time (see {@link #checkProbe}). */
    private final boolean probed;

    private final Object firstSector = new Object();
    private volatile boolean punchHoleSupported = true;
    private volatile boolean zeroRangeSupported = true;
    private volatile boolean closed;
    private final Arena arena = Arena.ofShared();
    private volatile MemorySegment zeroes;

    private RawFileBackend(ImageFile file, long size, boolean readOnly, boolean probed) {
        this.file = file;
        this.size = size;
        this.readOnly = readOnly;
        this.probed = probed;
    }

    /**
     * Opens an existing image. Its size is the file's size rounded down to whole 512-byte sectors.
     *
     * @throws IOException naming the file when it cannot be opened (missing, no permission, not a file)
     */
    public static RawFileBackend open(Path path, boolean readOnly) throws IOException {
        return open(path, readOnly, DiskImage.RawSize.WHOLE_SECTORS);
    }

    /** As {@link #open(Path, boolean)}, or with every byte visible (for {@link DiskImage}'s whole-file readers). */
    static RawFileBackend open(Path path, boolean readOnly, DiskImage.RawSize rawSize) throws IOException {
        return open(path, readOnly, rawSize, false);
    }

    /**
     * {@code probed}: the format was found by probing, not named; then a write that would put a qcow2 magic at
     * the start of the file is refused, as QEMU refuses one for a probed raw image: the next open would probe
     * the guest's data as a qcow2 image (with, perhaps, a backing file of the guest's choosing).
     */
    static RawFileBackend open(Path path, boolean readOnly, DiskImage.RawSize rawSize, boolean probed)
            throws IOException {
        ImageFile file = ImageFile.open(path, readOnly);
        long end;
        try {
            end = file.length();
        } catch (IOException e) {
            file.close();
            throw e;
        }
        long size = rawSize == DiskImage.RawSize.WHOLE_FILE ? end : end & ~511L;
        if (size != end)
            LOG.warn(
                    "disk image {} is {} bytes, not a multiple of 512; the last {} bytes are not visible",
                    path,
                    end,
                    end - size);
        return new RawFileBackend(file, size, readOnly, probed);
    }

    public Path path() {
        return file.path();
    }

    /** The file, for fault-injection tests. */
    ImageFile imageFile() {
        return file;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    private void checkRange(long offset, long length) {
        if (offset < 0 || length < 0 || offset > size || length > size - offset)
            throw new IllegalArgumentException(
                    String.format("range %d+%d is outside disk image %s of %d bytes", offset, length, path(), size));
    }

    private void checkWritable() throws IOException {
        if (readOnly) throw new IOException("disk image " + path() + " is read-only");
    }

    private static long total(List<MemorySegment> segments) {
        long n = 0;
        for (MemorySegment s : segments) n += s.byteSize();
        return n;
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        checkRange(offset, dst.byteSize());
        file.read(offset, dst);
    }

    @Override
    public void readv(long offset, List<MemorySegment> dst) throws IOException {
        checkRange(offset, total(dst));
        file.readv(offset, dst);
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        checkWritable();
        checkRange(offset, src.byteSize());
        if (probed && offset < MAGIC) {
            synchronized (firstSector) { // the check and the write as one, against a racing write of the same bytes
                checkProbe(offset, List.of(src));
                file.write(offset, src);
            }
            return;
        }
        file.write(offset, src);
    }

    @Override
    public void writev(long offset, List<MemorySegment> src) throws IOException {
        checkWritable();
        checkRange(offset, total(src));
        if (probed && offset < MAGIC) {
            synchronized (firstSector) {
                checkProbe(offset, src);
                file.writev(offset, src);
            }
            return;
        }
        file.writev(offset, src);
    }

    private static final int MAGIC = 4;

    /** Refuses a write after which the file's first bytes would be a qcow2 magic. */
    private void checkProbe(long offset, List<MemorySegment> src) throws IOException {
        byte[] head = new byte[MAGIC];
        file.read(0, MemorySegment.ofArray(head));
        long pos = offset;
        for (MemorySegment s : src) {
            for (long k = 0; k < s.byteSize() && pos + k < MAGIC; k++)
                head[(int) (pos + k)] = s.get(ValueLayout.JAVA_BYTE, k);
            pos += s.byteSize();
            if (pos >= MAGIC) break;
        }
        if (Qcow2Header.hasMagic(head)) {
            throw new IOException(
                    "disk image " + path() + ": refused a write that would make this raw image, whose format"
                            + " was probed, look like a qcow2 image; name its format (raw) to allow it");
        }
    }

    @Override
    public void flush() throws IOException {
        if (readOnly) return;
        file.datasync();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        checkWritable();
        checkRange(offset, length);
        if (length == 0) return;
        if (punchHole(offset, length)) return;
        // No holes here (the contract says discarded ranges read as zeroes): zero them the slow way.
        writeZeroes(offset, length, false);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(offset, length);
        if (length == 0) return;
        if (mayUnmap && punchHole(offset, length)) return;
        if (zeroRangeSupported) {
            int r = file.fallocate(Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
            if (r == 0) return;
            if (!unsupported(r)) throw file.failure("fallocate(ZERO_RANGE)", offset, length, -r);
            zeroRangeSupported = false;
        }
        writeZeroBuffers(offset, length);
    }

    /** True if a hole now covers the range; false if the file system cannot punch holes. */
    private boolean punchHole(long offset, long length) throws IOException {
        if (!punchHoleSupported) return false;
        int r = file.fallocate(Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
        if (r == 0) return true;
        if (!unsupported(r)) throw file.failure("fallocate(PUNCH_HOLE)", offset, length, -r);
        punchHoleSupported = false;
        return false;
    }

    private static boolean unsupported(int r) {
        return r == -Errno.EOPNOTSUPP || r == -Errno.ENOSYS || r == -Errno.EINVAL;
    }

    private void writeZeroBuffers(long offset, long length) throws IOException {
        MemorySegment z = zeroes;
        if (z == null) {
            synchronized (this) {
                if (zeroes == null) zeroes = arena.allocate(ZERO_CHUNK); // allocate() zero-fills
                z = zeroes;
            }
        }
        while (length > 0) {
            long n = Math.min(length, ZERO_CHUNK);
            file.write(offset, z.asSlice(0, n));
            offset += n;
            length -= n;
        }
    }

    /** Syncs a writable image before closing it: what the guest wrote last is durable once the VMM is gone. */
    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        try {
            if (!readOnly) file.datasync();
        } finally {
            try {
                file.close();
            } finally {
                arena.close();
            }
        }
    }

    @Override
    public String toString() {
        return "raw:" + path() + (readOnly ? " (read-only)" : "");
    }
}
