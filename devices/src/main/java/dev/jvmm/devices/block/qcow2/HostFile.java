package dev.jvmm.devices.block.qcow2;

import dev.jvmm.devices.block.ImageFile;
import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The image file: positional reads and writes (safe from several threads at once), reads past EOF are zeroes.
 * The I/O is {@link ImageFile}'s (so guest data moves as one preadv/pwritev per host-contiguous run); this
 * class adds the tracked length, which the mapping checks against, and the byte[]/ByteBuffer forms metadata uses.
 *
 * <p>Writes are of two kinds. Guest data ({@code writeData}, {@code writevData}) may fail like any disk write:
 * the request fails, the image goes on. Everything else is metadata, and so is a sync: once one of those fails,
 * the file no longer says what the image's tables in memory say (or no longer promises it durably), so
 * {@link #failure()} is set for good and the image takes no more writes.
 */
final class HostFile implements Closeable {
    final Path path;
    final boolean readOnly;
    private final ImageFile file;
    private final AtomicLong length;
    private volatile IOException failure;

    HostFile(Path path, boolean readOnly) throws IOException {
        this(path, readOnly, true);
    }

    /** {@code locked} false: no image locks, for a glance at the header only. */
    HostFile(Path path, boolean readOnly, boolean locked) throws IOException {
        this.path = path;
        this.readOnly = readOnly;
        this.file = locked ? ImageFile.open(path, readOnly) : ImageFile.openUnlocked(path, readOnly);
        try {
            this.length = new AtomicLong(file.length());
        } catch (IOException e) {
            file.close();
            throw e;
        }
    }

    long length() {
        return length.get();
    }

    /** Fills dst's remaining bytes and advances its position, as a channel read would. */
    void read(long pos, ByteBuffer dst) throws IOException {
        file.read(pos, MemorySegment.ofBuffer(dst));
        dst.position(dst.limit());
    }

    void read(long pos, MemorySegment dst) throws IOException {
        file.read(pos, dst);
    }

    /** Fills the segments in order from pos on: one preadv for a run of guest buffers. */
    void readv(long pos, List<MemorySegment> dst) throws IOException {
        file.readv(pos, dst);
    }

    void read(long pos, byte[] dst, int off, int len) throws IOException {
        file.read(pos, MemorySegment.ofArray(dst).asSlice(off, len));
    }

    byte[] readBytes(long pos, int len) throws IOException {
        byte[] b = new byte[len];
        read(pos, b, 0, len);
        return b;
    }

    /** The failed metadata write or sync after which the image takes no writes; null while there is none. */
    IOException failure() {
        return failure;
    }

    /** The underlying file, for fault-injection tests. */
    ImageFile imageFile() {
        return file;
    }

    private IOException failed(IOException e) {
        if (failure == null) failure = e;
        return e;
    }

    /** Metadata: writes src's remaining bytes and advances its position, as a channel write would. */
    void write(long pos, ByteBuffer src) throws IOException {
        long end = pos + src.remaining();
        write(pos, MemorySegment.ofBuffer(src));
        src.position(src.limit());
        grownTo(end);
    }

    /** Metadata. */
    void write(long pos, MemorySegment src) throws IOException {
        try {
            file.write(pos, src);
        } catch (IOException e) {
            throw failed(e);
        }
        grownTo(pos + src.byteSize());
    }

    /** Metadata. */
    void write(long pos, byte[] src, int off, int len) throws IOException {
        write(pos, MemorySegment.ofArray(src).asSlice(off, len));
    }

    /** Guest data, from a scatter-gather list: one pwritev for a run of guest buffers. */
    void writevData(long pos, List<MemorySegment> src) throws IOException {
        long end = pos;
        for (MemorySegment s : src) end += s.byteSize();
        file.writev(pos, src);
        grownTo(end);
    }

    /** Guest data. */
    void writeData(long pos, byte[] src, int off, int len) throws IOException {
        file.write(pos, MemorySegment.ofArray(src).asSlice(off, len));
        grownTo(pos + len);
    }

    void writeLong(long pos, long value) throws IOException {
        write(pos, ByteBuffer.allocate(8).putLong(0, value));
    }

    void writeInt(long pos, int value) throws IOException {
        write(pos, ByteBuffer.allocate(4).putInt(0, value));
    }

    private void grownTo(long end) {
        length.accumulateAndGet(end, Math::max);
    }

    /** Makes completed writes durable (fdatasync). */
    void sync() throws IOException {
        try {
            file.datasync();
        } catch (IOException e) {
            throw failed(e);
        }
    }

    void truncate(long size) throws IOException {
        try {
            long now = file.length();
            if (size < now) file.truncate(size);
            else if (size > now) file.write(size - 1, MemorySegment.ofArray(new byte[1]));
            length.set(file.length());
        } catch (IOException e) {
            throw failed(e);
        }
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
