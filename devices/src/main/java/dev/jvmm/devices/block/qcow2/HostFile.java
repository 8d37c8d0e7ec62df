package dev.jvmm.devices.block.qcow2;

import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicLong;

/** The image file: positional reads and writes (safe from several threads at once), reads past EOF are zeroes. */
final class HostFile implements Closeable {
    private static final int MAX_CHUNK = 1 << 30;
    final Path path;
    final boolean readOnly;
    private final FileChannel channel;
    private final AtomicLong length;

    HostFile(Path path, boolean readOnly) throws IOException {
        this.path = path;
        this.readOnly = readOnly;
        this.channel = readOnly ? FileChannel.open(path, StandardOpenOption.READ)
                : FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        this.length = new AtomicLong(channel.size());
    }

    long length() {
        return length.get();
    }

    void read(long pos, ByteBuffer dst) throws IOException {
        while (dst.hasRemaining()) {
            int n = channel.read(dst, pos);
            if (n < 0) {
                while (dst.hasRemaining()) dst.put((byte) 0);
                return;
            }
            pos += n;
        }
    }

    void read(long pos, MemorySegment dst) throws IOException {
        for (long done = 0; done < dst.byteSize(); done += MAX_CHUNK) {
            long n = Math.min(MAX_CHUNK, dst.byteSize() - done);
            read(pos + done, dst.asSlice(done, n).asByteBuffer());
        }
    }

    void read(long pos, byte[] dst, int off, int len) throws IOException {
        read(pos, ByteBuffer.wrap(dst, off, len));
    }

    byte[] readBytes(long pos, int len) throws IOException {
        byte[] b = new byte[len];
        read(pos, ByteBuffer.wrap(b));
        return b;
    }

    void write(long pos, ByteBuffer src) throws IOException {
        long end = pos + src.remaining();
        while (src.hasRemaining()) pos += channel.write(src, pos);
        length.accumulateAndGet(end, Math::max);
    }

    void write(long pos, MemorySegment src) throws IOException {
        for (long done = 0; done < src.byteSize(); done += MAX_CHUNK) {
            long n = Math.min(MAX_CHUNK, src.byteSize() - done);
            write(pos + done, src.asSlice(done, n).asByteBuffer());
        }
    }

    void write(long pos, byte[] src, int off, int len) throws IOException {
        write(pos, ByteBuffer.wrap(src, off, len));
    }

    void writeLong(long pos, long value) throws IOException {
        write(pos, ByteBuffer.allocate(8).putLong(0, value));
    }

    void writeInt(long pos, int value) throws IOException {
        write(pos, ByteBuffer.allocate(4).putInt(0, value));
    }

    /** Makes completed writes durable (fdatasync). */
    void sync() throws IOException {
        channel.force(false);
    }

    void truncate(long size) throws IOException {
        if (size < channel.size()) channel.truncate(size);
        else if (size > channel.size()) channel.write(ByteBuffer.allocate(1), size - 1);
        length.set(channel.size());
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
