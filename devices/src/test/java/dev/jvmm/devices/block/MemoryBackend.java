package dev.jvmm.devices.block;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/** A disk in host memory, with switches that make operations fail the way a host file can. */
public final class MemoryBackend implements BlockBackend {
    private final Arena arena = Arena.ofShared();
    public final MemorySegment data;
    private final boolean readOnly;
    public volatile boolean failReads, failWrites, failFlush;
    /** How long each read takes, as a real disk's would (0: at once). */
    public volatile long readDelayNanos;

    public final AtomicInteger flushes = new AtomicInteger();
    public final AtomicInteger writes = new AtomicInteger();
    public final AtomicInteger discards = new AtomicInteger();
    public final AtomicInteger zeroes = new AtomicInteger();
    public volatile boolean lastZeroUnmap;
    /**
     * Thrown by the next flush, once: a bug or an Error (OutOfMemoryError) in the backend rather than a host failure.
     */
    public volatile Error errorOnFlush;

    public MemoryBackend(long size, boolean readOnly) {
        this.data = arena.allocate(size, 4096);
        this.readOnly = readOnly;
    }

    @Override
    public long size() {
        return data.byteSize();
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        if (failReads) throw new IOException("EIO (injected)");
        if (readDelayNanos > 0) java.util.concurrent.locks.LockSupport.parkNanos(readDelayNanos);
        MemorySegment.copy(data, offset, dst, 0, dst.byteSize());
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        if (failWrites) throw new IOException("ENOSPC (injected)");
        if (readOnly) throw new IOException("read-only");
        writes.incrementAndGet();
        MemorySegment.copy(src, 0, data, offset, src.byteSize());
    }

    @Override
    public void flush() throws IOException {
        Error e = errorOnFlush;
        errorOnFlush = null;
        if (e != null) throw e;
        if (failFlush) throw new IOException("EIO on fsync (injected)");
        flushes.incrementAndGet();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        if (failWrites) throw new IOException("ENOSPC (injected)");
        discards.incrementAndGet();
        data.asSlice(offset, length).fill((byte) 0);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        if (failWrites) throw new IOException("ENOSPC (injected)");
        zeroes.incrementAndGet();
        lastZeroUnmap = mayUnmap;
        data.asSlice(offset, length).fill((byte) 0);
    }

    @Override
    public void close() {
        arena.close();
    }
}
