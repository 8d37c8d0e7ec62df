package dev.jvmm.devices.block;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.SyscallException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * A raw disk image in a host file. Reads and writes go straight between the file and guest memory (pread /
 * pwrite on the guest's buffers, no copy); flush is fdatasync; discard punches holes so a sparse image stays
 * sparse; write-zeroes uses FALLOC_FL_ZERO_RANGE or a hole, falling back to writing zeroes where the file
 * system supports neither.
 *
 * <p>Buffers on the Java heap (a tool's byte[], not guest memory) go through a native bounce buffer, since
 * pread and pwrite need native memory.
 *
 * <p>Thread-safe: positional I/O only, no shared file offset. A host failure (EIO, ENOSPC, ...) is an
 * IOException naming the file, the operation and errno.
 */
public final class RawFileBackend implements BlockBackend {
    private static final Logger LOG = LoggerFactory.getLogger(RawFileBackend.class);
    private static final int ZERO_CHUNK = 1 << 20;
    private static final int BOUNCE_CHUNK = 1 << 20;

    private final Path path;
    private final int fd;
    private final long size;
    private final boolean readOnly;
    private volatile boolean punchHoleSupported = true;
    private volatile boolean zeroRangeSupported = true;
    private volatile boolean closed;
    private final Arena arena = Arena.ofShared();
    private volatile MemorySegment zeroes;

    private RawFileBackend(Path path, int fd, long size, boolean readOnly) {
        this.path = path;
        this.fd = fd;
        this.size = size;
        this.readOnly = readOnly;
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
        int fd;
        try {
            fd = Libc.open(path.toString(), (readOnly ? Libc.O_RDONLY : Libc.O_RDWR) | Libc.O_CLOEXEC, 0);
        } catch (SyscallException e) {
            throw new IOException("cannot open disk image " + path + (readOnly ? " read-only" : " read-write") + ": "
                    + e.errnoName() + " (" + Libc.strerror(e.errno()) + ")", e);
        }
        long end = Libc.lseekRaw(fd, 0, Libc.SEEK_END);
        if (end < 0) {
            Libc.close(fd);
            throw new IOException("cannot size disk image " + path + ": " + Errno.name((int) -end));
        }
        long size = rawSize == DiskImage.RawSize.WHOLE_FILE ? end : end & ~511L;
        if (size != end) LOG.warn("disk image {} is {} bytes, not a multiple of 512; the last {} bytes are not visible", path, end, end - size);
        return new RawFileBackend(path, fd, size, readOnly);
    }

    public Path path() {
        return path;
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
            throw new IllegalArgumentException(String.format("range %d+%d is outside disk image %s of %d bytes", offset, length, path, size));
    }

    private IOException failure(String op, long offset, long length, long errno) {
        return new IOException(String.format("%s %s at offset %d (+%d bytes) failed: %s (%s)", op, path, offset, length,
                Errno.name((int) errno), Libc.strerror((int) errno)));
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        checkRange(offset, dst.byteSize());
        if (dst.isNative()) {
            readNative(offset, dst);
            return;
        }
        try (Arena bounce = Arena.ofConfined()) {
            MemorySegment buf = bounce.allocate(Math.min(dst.byteSize(), BOUNCE_CHUNK));
            for (long done = 0; done < dst.byteSize(); done += buf.byteSize()) {
                MemorySegment part = buf.asSlice(0, Math.min(buf.byteSize(), dst.byteSize() - done));
                readNative(offset + done, part);
                dst.asSlice(done, part.byteSize()).copyFrom(part);
            }
        }
    }

    private void readNative(long offset, MemorySegment dst) throws IOException {
        long length = dst.byteSize();
        long done = 0;
        while (done < length) {
            MemorySegment rest = dst.asSlice(done);
            long r = Libc.preadRaw(fd, rest, length - done, offset + done);
            if (r == -Errno.EINTR) continue;
            if (r < 0) throw failure("read", offset + done, length - done, -r);
            if (r == 0) { // the file shrank under us: what is not there reads as zeroes
                rest.fill((byte) 0);
                return;
            }
            done += r;
        }
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        if (readOnly) throw new IOException("disk image " + path + " is read-only");
        checkRange(offset, src.byteSize());
        if (src.isNative()) {
            writeNative(offset, src);
            return;
        }
        try (Arena bounce = Arena.ofConfined()) {
            MemorySegment buf = bounce.allocate(Math.min(src.byteSize(), BOUNCE_CHUNK));
            for (long done = 0; done < src.byteSize(); done += buf.byteSize()) {
                MemorySegment part = buf.asSlice(0, Math.min(buf.byteSize(), src.byteSize() - done));
                part.copyFrom(src.asSlice(done, part.byteSize()));
                writeNative(offset + done, part);
            }
        }
    }

    private void writeNative(long offset, MemorySegment src) throws IOException {
        long length = src.byteSize();
        long done = 0;
        while (done < length) {
            long r = Libc.pwriteRaw(fd, src.asSlice(done), length - done, offset + done);
            if (r == -Errno.EINTR) continue;
            if (r < 0) throw failure("write", offset + done, length - done, -r);
            if (r == 0) throw failure("write", offset + done, length - done, Errno.ENOSPC);
            done += r;
        }
    }

    @Override
    public void flush() throws IOException {
        if (readOnly) return;
        int r;
        do r = Libc.fdatasyncRaw(fd); while (r == -Errno.EINTR);
        if (r < 0) throw failure("fdatasync", 0, size, -r);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        if (readOnly) throw new IOException("disk image " + path + " is read-only");
        checkRange(offset, length);
        if (length == 0) return;
        if (punchHole(offset, length)) return;
        // No holes here (the contract says discarded ranges read as zeroes): zero them the slow way.
        writeZeroes(offset, length, false);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        if (readOnly) throw new IOException("disk image " + path + " is read-only");
        checkRange(offset, length);
        if (length == 0) return;
        if (mayUnmap && punchHole(offset, length)) return;
        if (zeroRangeSupported) {
            int r = fallocate(Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
            if (r == 0) return;
            if (!unsupported(r)) throw failure("fallocate(ZERO_RANGE)", offset, length, -r);
            zeroRangeSupported = false;
        }
        writeZeroBuffers(offset, length);
    }

    /** True if a hole now covers the range; false if the file system cannot punch holes. */
    private boolean punchHole(long offset, long length) throws IOException {
        if (!punchHoleSupported) return false;
        int r = fallocate(Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
        if (r == 0) return true;
        if (!unsupported(r)) throw failure("fallocate(PUNCH_HOLE)", offset, length, -r);
        punchHoleSupported = false;
        return false;
    }

    private int fallocate(int mode, long offset, long length) {
        int r;
        do r = Libc.fallocateRaw(fd, mode, offset, length); while (r == -Errno.EINTR);
        return r;
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
            writeNative(offset, z.asSlice(0, n));
            offset += n;
            length -= n;
        }
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        try {
            Libc.close(fd);
        } catch (SyscallException e) {
            throw new IOException("closing disk image " + path + " failed: " + e.getMessage(), e);
        } finally {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "raw:" + path + (readOnly ? " (read-only)" : "");
    }
}
