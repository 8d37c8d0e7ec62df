package dev.jvmm.devices.block;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Storage behind a block device (raw file, qcow2, ...). Offsets and lengths are in bytes; requests come
 * from several queues at once, so implementations are thread-safe. Buffers may be views of guest memory:
 * read straight into them, write straight from them.
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

    /** Makes every completed write durable (fsync for files; metadata too for images). */
    void flush() throws IOException;

    /** The range may be deallocated; later reads return zeroes. */
    void discard(long offset, long length) throws IOException;

    /** The range reads as zeroes afterwards; {@code mayUnmap} lets the backend deallocate it. */
    void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException;

    @Override
    void close() throws IOException;
}
