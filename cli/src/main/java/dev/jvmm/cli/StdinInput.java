package dev.jvmm.cli;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * This process's standard input (fd 0) as a stream whose blocked read {@link #wake()} ends (as end of input).
 * Why not System.in: a thread blocked in read(2) on a terminal or a pipe that stays open cannot be interrupted,
 * and HotSpot holds the process's exit for 300 ms waiting for threads in native code, so every run with a
 * console ended 300 ms late. Reads wait in poll(2) on fd 0 and an eventfd instead. One reader thread at a time.
 */
final class StdinInput extends InputStream {
    private static final long POLLFD_SIZE = Libc.POLLFD.byteSize();

    private final EventFd wakeup = new EventFd(true);
    private final Arena arena = Arena.ofShared();
    private final MemorySegment fds = arena.allocate(Libc.POLLFD, 2);
    private final MemorySegment buf = arena.allocate(4096);
    private volatile boolean woken;
    private final int fd;

    StdinInput() {
        this(0);
    }

    /** Reads {@code fd} instead of standard input (tests: a pipe of their own). */
    StdinInput(int fd) {
        this.fd = fd;
    }

    /**
     * This process's standard input as {@code jvmm}'s main() hands it to a command: the consoles read it through a
     * StdinInput. Any other stream, System.in included (an embedder may have replaced it), is read as it is.
     */
    static InputStream ofProcess() {
        return new ProcessStdin();
    }

    private static boolean isProcessStdin(InputStream in) {
        return in instanceof ProcessStdin;
    }

    private static final class ProcessStdin extends java.io.FilterInputStream {
        ProcessStdin() {
            super(System.in);
        }
    }

    /** What a console's reader thread reads: fd 0 through a StdinInput where {@code in} is the process's own. */
    static InputStream readerFor(InputStream in) {
        return isProcessStdin(in) ? new StdinInput() : in;
    }

    /**
     * Stops {@code reader}, a thread reading {@code source} (from {@link #readerFor}): a StdinInput is woken, the
     * thread waited for (1 s) and its buffers freed once it ended; another stream's reader is interrupted and
     * waited for {@code otherMillis} (0: not at all).
     */
    static void stop(InputStream source, Thread reader, long otherMillis) throws InterruptedException {
        reader.interrupt();
        if (!(source instanceof StdinInput stdin)) {
            if (otherMillis > 0) reader.join(otherMillis);
            return;
        }
        stdin.wake();
        reader.join(1000);
        if (!reader.isAlive()) stdin.close(); // else it is still using the buffers: left to the process's end
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) == 1 ? one[0] & 0xff : -1;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        java.util.Objects.checkFromIndexSize(off, len, b.length);
        if (len == 0) return 0;
        while (!woken) {
            watch(0, fd);
            watch(1, wakeup.fd());
            int n = Libc.pollRaw(fds, 2, -1);
            if (n == -Errno.EINTR) continue;
            if (n < 0) throw new IOException("poll(standard input): " + Libc.strerror(-n));
            if (revents(1) != 0 || woken) break;
            if (revents(0) == 0) continue;
            long r = Libc.readRaw(fd, buf, Math.min(len, buf.byteSize()));
            if (r == -Errno.EINTR || r == -Errno.EAGAIN) continue;
            if (r < 0) throw new IOException("read(standard input): " + Libc.strerror((int) -r));
            if (r == 0) return -1;
            MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, b, off, (int) r);
            return (int) r;
        }
        return -1;
    }

    /** Ends a blocked read, and every later one, as end of input. Any thread. */
    void wake() {
        woken = true;
        wakeup.signal();
    }

    /** Frees the buffers: only once the reader has returned (after {@link #wake()}). */
    @Override
    public void close() {
        wakeup.close();
        arena.close();
    }

    private void watch(int slot, int fd) {
        long at = slot * POLLFD_SIZE;
        fds.set(ValueLayout.JAVA_INT, at, fd);
        fds.set(ValueLayout.JAVA_SHORT, at + 4, Libc.POLLIN);
        fds.set(ValueLayout.JAVA_SHORT, at + 6, (short) 0);
    }

    private short revents(int slot) {
        return fds.get(ValueLayout.JAVA_SHORT, slot * POLLFD_SIZE + 6);
    }
}
