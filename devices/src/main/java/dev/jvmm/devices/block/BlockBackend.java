package dev.jvmm.devices.block;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Storage behind a block device (raw file, qcow2, ...). Offsets and lengths are in bytes; requests come
 * from several queues at once, so implementations are thread-safe. Buffers may be views of guest memory:
 * read straight into them, write straight from them.
 *
 * <p>A request usually arrives as a scatter-gather list (one buffer per descriptor): {@link #readv} and
 * {@link #writev} take it whole, so a backend can move it in one host call (preadv/pwritev) rather than one
 * per buffer. Their defaults go buffer by buffer, which is correct for any backend.
 *
 * <p>Failures of the host (EIO, ENOSPC, a corrupt image) are IOExceptions; the device reports them to the
 * guest as an I/O error and keeps running.
 */
public interface BlockBackend extends AutoCloseable {
    /** Virtual size in bytes (a multiple of 512). */
    long size();

    boolean readOnly();

    /** Fills dst with the bytes at [offset, offset + dst.byteSize()); the range lies within size(). */
    void read(long offset, MemorySegment dst) throws IOException;

    /** Writes src at offset; the range lies within size(). Not durable until flush(). */
    void write(long offset, MemorySegment src) throws IOException;

    /**
     * Fills the buffers, in order, with the bytes from offset on (a scatter read): dst.get(0) gets the first
     * dst.get(0).byteSize() bytes, and so on. The whole range lies within size().
     */
    default void readv(long offset, List<MemorySegment> dst) throws IOException {
        for (MemorySegment d : dst) {
            read(offset, d);
            offset += d.byteSize();
        }
    }

    /** Writes the buffers back to back from offset on (a gather write); the whole range lies within size(). */
    default void writev(long offset, List<MemorySegment> src) throws IOException {
        for (MemorySegment s : src) {
            write(offset, s);
            offset += s.byteSize();
        }
    }

    /** Makes every completed write durable (fsync for files; metadata too for images). */
    void flush() throws IOException;

    /** The range may be deallocated; later reads return zeroes. */
    void discard(long offset, long length) throws IOException;

    /** The range reads as zeroes afterwards; {@code mayUnmap} lets the backend deallocate it. */
    void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException;

    @Override
    void close() throws IOException;
}
