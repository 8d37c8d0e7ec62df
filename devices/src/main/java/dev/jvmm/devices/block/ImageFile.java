package dev.jvmm.devices.block;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.OwnedFd;
import dev.jvmm.kvm.SyscallException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;

/**
 * A disk image's host file: positional reads and writes, single or scatter-gather, straight between the file
 * and the caller's memory (guest memory included, no copy). The one place that speaks pread/pwrite and
 * preadv/pwritev: EINTR is retried, short transfers are continued, lists longer than IOV_MAX are split, and
 * buffers on the Java heap (which a system call cannot be handed) go through a per-thread native bounce buffer.
 *
 * <p>Reads past the end of the file return zeroes (a file shrunk under an open image reads as a hole); a write
 * that makes no progress is ENOSPC. Failures are IOExceptions naming the file, the operation, the range and errno.
 * Thread-safe: positional I/O only, no shared file offset.
 *
 * <p>An open takes QEMU's image locks ({@link ImageLock}), so two processes never write one image at once. A
 * failed fdatasync stays failed: Linux may have dropped the dirty pages whose writeback failed and reports that
 * once, so a later fdatasync that succeeds would claim durability for writes that are gone (QEMU's
 * page_cache_inconsistent). Every later {@link #datasync} fails too.
 */
public final class ImageFile implements AutoCloseable {
    private static final long IOV = Libc.IOVEC.byteSize();
    private static final long IOV_BASE = Libc.IOVEC.byteOffset(groupElement("iov_base"));
    private static final long IOV_LEN = Libc.IOVEC.byteOffset(groupElement("iov_len"));
    private static final int BOUNCE = 256 << 10;
    // Per thread, not per call or per file: the I/O path allocates nothing native per request.
    private static final ThreadLocal<MemorySegment> IOVECS =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(Libc.IOVEC, Libc.IOV_MAX));
    private static final ThreadLocal<MemorySegment> BOUNCES =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(BOUNCE, 4096));

    private final Path path;
    private final OwnedFd fd;
    private final boolean readOnly;
    private volatile IOException syncFailure;
    private volatile Faults faults;

    /**
     * A test's hand in the I/O, for fault injection: called before each write (of any form) and each fdatasync;
     * what it throws fails that call as the host would, with nothing written or synced. It may also change the
     * file first (a failed sync that dropped pages). Never set outside tests.
     */
    public interface Faults {
        default void beforeWrite(long offset, long length) throws IOException {}

        default void beforeSync() throws IOException {}
    }

    private ImageFile(Path path, int fd, boolean readOnly) {
        this.path = path;
        this.fd = new OwnedFd(fd, "disk image " + path);
        this.readOnly = readOnly;
    }

    /**
     * Opens an existing file and takes its image locks; the message names the file and errno where it cannot be
     * opened.
     *
     * @throws ImageLockedException where another process or open holds the image in a conflicting way
     */
    public static ImageFile open(Path path, boolean readOnly) throws IOException {
        ImageFile f = openUnlocked(path, readOnly);
        try {
            ImageLock.acquire(f.fd.get(), path, readOnly);
        } catch (ImageLockedException e) {
            f.close();
            throw e;
        }
        return f;
    }

    /** Opens without image locks: for a glance at a header, never for an image in use as a disk. */
    public static ImageFile openUnlocked(Path path, boolean readOnly) throws IOException {
        try {
            int fd = Libc.open(path.toString(), (readOnly ? Libc.O_RDONLY : Libc.O_RDWR) | Libc.O_CLOEXEC, 0);
            return new ImageFile(path, fd, readOnly);
        } catch (SyscallException e) {
            throw new IOException(
                    "cannot open disk image " + path + (readOnly ? " read-only" : " read-write") + ": " + e.errnoName()
                            + " (" + Libc.strerror(e.errno()) + ")",
                    e);
        }
    }

    /** Installs (or with null removes) a fault injector; for tests. */
    public void injectFaults(Faults f) {
        faults = f;
    }

    public Path path() {
        return path;
    }

    public boolean readOnly() {
        return readOnly;
    }

    /** The file's current length in bytes. */
    public long length() throws IOException {
        long end = Libc.lseekRaw(fd.get(), 0, Libc.SEEK_END);
        if (end < 0) throw new IOException("cannot size disk image " + path + ": " + Errno.name((int) -end));
        return end;
    }

    IOException failure(String op, long offset, long length, long errno) {
        return new IOException(String.format(
                "%s %s at offset %d (+%d bytes) failed: %s (%s)",
                op, path, offset, length, Errno.name((int) errno), Libc.strerror((int) errno)));
    }

    // ---------------------------------------------------------------- single buffer

    /** Fills dst with the bytes at offset; what lies past the end of the file reads as zeroes. */
    public void read(long offset, MemorySegment dst) throws IOException {
        if (dst.isNative()) {
            readNative(offset, dst);
            return;
        }
        MemorySegment bounce = BOUNCES.get();
        for (long done = 0; done < dst.byteSize(); done += BOUNCE) {
            MemorySegment part = bounce.asSlice(0, Math.min(BOUNCE, dst.byteSize() - done));
            readNative(offset + done, part);
            MemorySegment.copy(part, 0, dst, done, part.byteSize());
        }
    }

    /** Writes src at offset. */
    public void write(long offset, MemorySegment src) throws IOException {
        Faults f = faults;
        if (f != null) f.beforeWrite(offset, src.byteSize());
        writeAny(offset, src);
    }

    private void writeAny(long offset, MemorySegment src) throws IOException {
        if (src.isNative()) {
            writeNative(offset, src);
            return;
        }
        MemorySegment bounce = BOUNCES.get();
        for (long done = 0; done < src.byteSize(); done += BOUNCE) {
            MemorySegment part = bounce.asSlice(0, Math.min(BOUNCE, src.byteSize() - done));
            MemorySegment.copy(src, done, part, 0, part.byteSize());
            writeNative(offset + done, part);
        }
    }

    private void readNative(long offset, MemorySegment dst) throws IOException {
        long length = dst.byteSize();
        long done = 0;
        while (done < length) {
            MemorySegment rest = dst.asSlice(done);
            long r = Libc.preadRaw(fd.get(), rest, length - done, offset + done);
            if (r == -Errno.EINTR) continue;
            if (r < 0) throw failure("read", offset + done, length - done, -r);
            if (r == 0) { // the end of the file: what is not there reads as zeroes
                rest.fill((byte) 0);
                return;
            }
            done += r;
        }
    }

    private void writeNative(long offset, MemorySegment src) throws IOException {
        long length = src.byteSize();
        long done = 0;
        while (done < length) {
            long r = Libc.pwriteRaw(fd.get(), src.asSlice(done), length - done, offset + done);
            if (r == -Errno.EINTR) continue;
            if (r < 0) throw failure("write", offset + done, length - done, -r);
            if (r == 0) throw failure("write", offset + done, length - done, Errno.ENOSPC);
            done += r;
        }
    }

    // ---------------------------------------------------------------- scatter-gather

    /** Fills the buffers in order with the bytes from offset on (preadv); past the end of the file, zeroes. */
    public void readv(long offset, List<MemorySegment> dsts) throws IOException {
        transfer(offset, dsts, false);
    }

    /** Writes the buffers in order, back to back, from offset on (pwritev). */
    public void writev(long offset, List<MemorySegment> srcs) throws IOException {
        Faults f = faults;
        if (f != null) {
            long total = 0;
            for (MemorySegment s : srcs) total += s.byteSize();
            f.beforeWrite(offset, total);
        }
        transfer(offset, srcs, true);
    }

    private void transfer(long offset, List<MemorySegment> segs, boolean write) throws IOException {
        int n = segs.size();
        int i = 0;
        while (i < n) {
            MemorySegment s = segs.get(i);
            if (!s.isNative()) { // a heap buffer: on its own, through the bounce buffer
                if (write) writeAny(offset, s);
                else read(offset, s);
                offset += s.byteSize();
                i++;
                continue;
            }
            // The longest run of native buffers from i on that fits one iovec array.
            MemorySegment iov = IOVECS.get();
            int count = 0, end = i;
            long total = 0;
            while (end < n && count < Libc.IOV_MAX && segs.get(end).isNative()) {
                MemorySegment b = segs.get(end++);
                if (b.byteSize() == 0) continue; // an empty iovec would read as end of file
                iov.set(ValueLayout.ADDRESS, count * IOV + IOV_BASE, b);
                iov.set(ValueLayout.JAVA_LONG, count * IOV + IOV_LEN, b.byteSize());
                count++;
                total += b.byteSize();
            }
            vectored(offset, iov, count, total, segs, i, end, write);
            offset += total;
            i = end;
        }
    }

    /** One iovec array to completion: continues after short transfers, retries EINTR. */
    private void vectored(
            long offset,
            MemorySegment iov,
            int count,
            long total,
            List<MemorySegment> segs,
            int from,
            int to,
            boolean write)
            throws IOException {
        int first = 0;
        long done = 0;
        while (first < count) {
            MemorySegment rest = iov.asSlice(first * IOV);
            long r = write
                    ? Libc.pwritevRaw(fd.get(), rest, count - first, offset + done)
                    : Libc.preadvRaw(fd.get(), rest, count - first, offset + done);
            if (r == -Errno.EINTR) continue;
            if (r < 0) throw failure(write ? "pwritev" : "preadv", offset + done, total - done, -r);
            if (r == 0) {
                if (write) throw failure("pwritev", offset + done, total - done, Errno.ENOSPC);
                zeroFrom(segs, from, to, done); // the end of the file
                return;
            }
            done += r;
            // Drop the iovecs done with; the one the transfer stopped in starts where it stopped.
            while (first < count && r >= iov.get(ValueLayout.JAVA_LONG, first * IOV + IOV_LEN)) {
                r -= iov.get(ValueLayout.JAVA_LONG, first * IOV + IOV_LEN);
                first++;
            }
            if (r > 0) {
                long base = first * IOV + IOV_BASE, len = first * IOV + IOV_LEN;
                iov.set(
                        ValueLayout.JAVA_LONG,
                        base,
                        iov.get(ValueLayout.JAVA_LONG, base) + r); // a pointer, as a 64-bit number
                iov.set(ValueLayout.JAVA_LONG, len, iov.get(ValueLayout.JAVA_LONG, len) - r);
            }
        }
    }

    /** Zeroes segs[from, to) from byte {@code skip} of their concatenation on. */
    private static void zeroFrom(List<MemorySegment> segs, int from, int to, long skip) {
        for (int k = from; k < to; k++) {
            MemorySegment s = segs.get(k);
            if (skip >= s.byteSize()) {
                skip -= s.byteSize();
                continue;
            }
            s.asSlice(skip).fill((byte) 0);
            skip = 0;
        }
    }

    // ---------------------------------------------------------------- the rest

    /** fdatasync: completed writes are durable. Once it has failed, it fails for good (see the class comment). */
    public void datasync() throws IOException {
        IOException earlier = syncFailure;
        if (earlier != null) {
            throw new IOException(
                    "disk image " + path + ": an earlier flush failed (" + earlier.getMessage()
                            + "), so writes since then may be lost; no later flush can succeed",
                    earlier);
        }
        try {
            Faults f = faults;
            if (f != null) f.beforeSync();
            int r;
            do r = Libc.fdatasyncRaw(fd.get());
            while (r == -Errno.EINTR);
            if (r < 0) throw failure("fdatasync", 0, 0, -r);
        } catch (IOException e) {
            syncFailure = e;
            throw e;
        }
    }

    /** Whether a flush has failed: then none will succeed again on this open file. */
    public boolean syncFailed() {
        return syncFailure != null;
    }

    /** fallocate(2), EINTR retried: 0, or -errno (EOPNOTSUPP and friends where the file system lacks the mode). */
    public int fallocate(int mode, long offset, long length) {
        int r;
        do r = Libc.fallocateRaw(fd.get(), mode, offset, length);
        while (r == -Errno.EINTR);
        return r;
    }

    /** Sets the file's length (growing leaves a hole). */
    public void truncate(long length) throws IOException {
        try {
            Libc.ftruncate(fd.get(), length);
        } catch (SyscallException e) {
            throw failure("ftruncate", length, 0, e.errno());
        }
    }

    /** Closes the file once; using it afterwards throws. */
    @Override
    public void close() throws IOException {
        try {
            fd.close();
        } catch (SyscallException e) {
            throw new IOException("closing disk image " + path + " failed: " + e.getMessage(), e);
        }
    }

    public boolean isClosed() {
        return fd.isClosed();
    }

    @Override
    public String toString() {
        return path.toString();
    }
}
