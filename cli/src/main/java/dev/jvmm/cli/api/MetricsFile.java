package dev.jvmm.cli.api;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * Where {@code PUT /metrics} sends metrics: one JSON object per line, written when asked (FlushMetrics) and every
 * minute, as Firecracker does. The file may be a FIFO whose reader is slow or gone, so writes happen on a thread of
 * their own and a caller waits for one at most {@link #WRITE_TIMEOUT}: nothing on the API's path blocks on it.
 */
final class MetricsFile implements AutoCloseable {
    static final Duration WRITE_TIMEOUT = Duration.ofSeconds(2);
    static final Duration PERIOD = Duration.ofSeconds(60);

    private final Path path;
    private final FileChannel channel;
    private final Supplier<String> line;
    private final ScheduledExecutorService writer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("jvmm-metrics").factory());
    private Future<?> pending; // guarded by this: one write queued at most, whatever clients ask

    private MetricsFile(Path path, FileChannel channel, Supplier<String> line) {
        this.path = path;
        this.channel = channel;
        this.line = line;
    }

    /** Opens (a FIFO without blocking for its reader; a regular file created and appended to). */
    static MetricsFile open(Path path, Supplier<String> line) throws IOException {
        FileChannel c = Files.exists(path) && !Files.isRegularFile(path)
                ? FileChannel.open(
                        path,
                        StandardOpenOption.READ,
                        StandardOpenOption.WRITE) // a FIFO opened both ways does not wait
                : FileChannel.open(
                        path, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        return new MetricsFile(path, c, line);
    }

    /** Writes a line every minute from now on. */
    void startPeriodic() {
        writer.scheduleAtFixedRate(this::writeLine, PERIOD.toMillis(), PERIOD.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * Writes a line now; false when the write did not finish within {@link #WRITE_TIMEOUT} (it is still tried). The
     * line is made here, outside the timeout, which bounds only the write (a FIFO's reader), not how long making
     * it takes (the first time, in a slow JVM, its JSON classes load).
     */
    boolean flush() throws InterruptedException {
        Future<?> f;
        synchronized (this) {
            if (pending == null || pending.isDone()) {
                byte[] text = text();
                pending = writer.submit(() -> write(text));
            }
            f = pending;
        }
        try {
            f.get(WRITE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            return true;
        } catch (TimeoutException e) {
            return false;
        } catch (java.util.concurrent.ExecutionException e) {
            return false;
        }
    }

    Path path() {
        return path;
    }

    private byte[] text() {
        return (line.get() + "\n").getBytes(StandardCharsets.UTF_8);
    }

    private void writeLine() {
        write(text());
    }

    private void write(byte[] text) {
        ByteBuffer b = ByteBuffer.wrap(text);
        try {
            while (b.hasRemaining()) channel.write(b);
        } catch (IOException e) {
            org.slf4j.LoggerFactory.getLogger(MetricsFile.class)
                    .warn("writing metrics to {} failed: {}", path, e.toString());
        }
    }

    @Override
    public void close() {
        writer.shutdownNow();
        try {
            channel.close(); // also ends a write stuck on a full FIFO
        } catch (IOException e) {
            // nothing more to write anyway
        }
    }
}
