package dev.jvmm.devices.legacy;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Carries a device's output bytes to an OutputStream off the vCPU thread. A guest prints one port write per
 * byte; writing each to the stream would be a syscall per byte, so bytes collect in a buffer that a writer
 * thread drains on a newline, when half full, or after a short linger. Two buffers swap, so the guest keeps
 * printing while the previous batch is written.
 *
 * <p>Nothing is dropped: when the buffer is full (the stream is slower than the guest), {@link #put} waits
 * for room, which holds up the printing vCPU as a slow serial line would. {@link #close} releases such a
 * wait (discarding what a blocked stream can no longer take). After a write error (say, EPIPE on stdout) the
 * rest is discarded, since nothing can take it.
 */
final class OutputPump implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(OutputPump.class);
    static final int DEFAULT_CAPACITY = 64 * 1024;
    private static final long LINGER_NANOS = TimeUnit.MILLISECONDS.toNanos(5);
    private static final long CLOSE_WAIT_MILLIS = 5000;

    private final String name;
    private final OutputStream out;
    private final int capacity;
    private byte[] filling;
    private byte[] draining;
    private int count;
    private long produced;
    private long written;
    private boolean urgent;
    private boolean closing;
    private boolean failed;
    private boolean writerDone;
    private long discarded;
    private Thread writer;

    OutputPump(String name, OutputStream out) {
        this(name, out, DEFAULT_CAPACITY);
    }

    OutputPump(String name, OutputStream out, int capacity) {
        if (capacity < 2) throw new IllegalArgumentException("capacity " + capacity);
        this.name = name;
        this.out = Objects.requireNonNull(out, "out");
        this.capacity = capacity;
    }

    /** Queues one byte; waits while the buffer is full. */
    synchronized void put(byte b) {
        if (failed) return;
        if (writerDone) { // closed and drained: nothing is queued that this byte could overtake
            writeDirectly(b);
            return;
        }
        if (writer == null) {
            if (closing) {
                writeDirectly(b);
                return;
            }
            startWriter();
        }
        boolean interrupted = false;
        while (count == capacity && !closing && !failed) {
            try {
                wait();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
        if (failed) return;
        if (writerDone) { // drained and gone while this byte waited
            writeDirectly(b);
            return;
        }
        if (count == capacity) { // closing with a stream that does not drain
            discarded++;
            return;
        }
        filling[count++] = b;
        produced++;
        // Wake the writer only when it has something new to act on, not once per byte.
        if (b == '\n' && !urgent) {
            urgent = true;
            notifyAll();
        } else if (count == 1 || count == capacity / 2) {
            notifyAll();
        }
    }

    /** Writes everything queued so far and flushes the stream; returns when done (or the stream failed). */
    synchronized void flush() {
        if (writer == null || failed) return;
        long target = produced;
        urgent = true;
        notifyAll();
        boolean interrupted = false;
        while (written < target && !failed && !writerDone) {
            try {
                wait(100);
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    /** Bytes the stream has accepted (for tests and statistics). */
    synchronized long bytesWritten() {
        return written;
    }

    /** Bytes given up because the VM closed while the stream would not take them. */
    synchronized long bytesDiscarded() {
        return discarded;
    }

    @Override
    public void close() {
        Thread w;
        synchronized (this) {
            if (closing) return;
            closing = true;
            notifyAll();
            w = writer;
        }
        if (w != null) {
            try {
                w.join(CLOSE_WAIT_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        synchronized (this) {
            try {
                if (!failed) out.flush();
            } catch (IOException e) {
                failed(e);
            }
        }
    }

    private void startWriter() {
        filling = new byte[capacity];
        draining = new byte[capacity];
        writer = Thread.ofPlatform().daemon().name(name + "-out").start(this::drainLoop);
    }

    private void drainLoop() {
        while (true) {
            byte[] batch;
            int n;
            synchronized (this) {
                try {
                    while (count == 0 && !closing) wait();
                    // Linger briefly so a line printed byte by byte leaves in one write.
                    long deadline = System.nanoTime() + LINGER_NANOS;
                    long left;
                    while (!urgent && !closing && count < capacity / 2 && (left = deadline - System.nanoTime()) > 0)
                        TimeUnit.NANOSECONDS.timedWait(this, left);
                } catch (InterruptedException e) {
                    writerDone = true;
                    return;
                }
                if (count == 0) { // closing with nothing left
                    writerDone = true;
                    notifyAll();
                    return;
                }
                batch = filling;
                filling = draining;
                draining = batch;
                n = count;
                count = 0;
                urgent = false;
                notifyAll(); // room for a waiting put()
            }
            try {
                out.write(batch, 0, n);
                out.flush();
            } catch (IOException | RuntimeException e) {
                synchronized (this) {
                    failed(e);
                    writerDone = true;
                    notifyAll();
                }
                return;
            }
            synchronized (this) {
                written += n;
                notifyAll();
            }
        }
    }

    private void writeDirectly(byte b) {
        try {
            out.write(b);
            produced++;
            written++;
        } catch (IOException e) {
            failed(e);
        }
    }

    private void failed(Exception e) {
        if (!failed) LOG.warn("{}: output stream failed, further output is discarded: {}", name, e.toString());
        failed = true;
    }
}
