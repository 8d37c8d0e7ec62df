package dev.jvmm.cli;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * A detached VM's console output into its log, {@code NAME.log}, which this process's stdout and stderr already are
 * (opened for appending by {@code jvmm run --detach}). The runtime folder is usually a tmpfs, memory: a guest that
 * prints without end must not fill it. Once the log holds more than {@code limit} bytes, it is copied to
 * {@code NAME.log.1} (replacing the one before) and emptied, so a VM keeps at most twice the limit, the latest output
 * always in {@code NAME.log}.
 */
final class CappedLog extends OutputStream {
    static final long DEFAULT_LIMIT = 4L << 20;

    private final Path file;
    private final Path previous;
    private final long limit;
    private final FileChannel out;
    private boolean failed;

    CappedLog(Path file, long limit) {
        this(file, limit, new FileOutputStream(FileDescriptor.out).getChannel());
    }

    /** Writing through {@code out}, an appending descriptor of {@code file}. */
    CappedLog(Path file, long limit, FileChannel out) {
        this.file = file;
        this.previous = previous(file);
        this.limit = limit;
        this.out = out;
    }

    static Path previous(Path log) {
        return log.resolveSibling(log.getFileName() + ".1");
    }

    @Override
    public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(b, off, len);
        while (buf.hasRemaining()) out.write(buf);
        if (failed || out.size() <= limit) return;
        try {
            Files.copy(file, previous, StandardCopyOption.REPLACE_EXISTING);
            out.truncate(0); // appending writes (ours, and the JVM's own on stderr) go on at the new end
        } catch (IOException e) {
            failed = true; // the log grows, as it would without a cap; the console goes on
        }
    }

    @Override
    public void flush() throws IOException {
        // FileChannel writes are not buffered.
    }

    /** stdout is not ours to close. */
    @Override
    public void close() {}
}
