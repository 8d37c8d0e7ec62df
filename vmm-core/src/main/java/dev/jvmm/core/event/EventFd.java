package dev.jvmm.core.event;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.SyscallException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A Linux eventfd: the doorbell KVM rings for ioeventfd (a guest queue notification that never leaves the
 * kernel) and that jvmm rings for irqfd (an interrupt injected without an ioctl).
 */
public final class EventFd implements AutoCloseable {
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment readBuf = arena.allocate(ValueLayout.JAVA_LONG);
    private final MemorySegment writeBuf = arena.allocate(ValueLayout.JAVA_LONG);
    private volatile boolean closed;

    public EventFd(boolean nonBlocking) {
        this.fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | (nonBlocking ? Libc.EFD_NONBLOCK : 0));
    }

    public int fd() {
        return fd;
    }

    /** Adds 1 to the counter, waking a reader. Thread-safe. */
    public void signal() {
        synchronized (writeBuf) {
            writeBuf.set(ValueLayout.JAVA_LONG, 0, 1L);
            long r = Libc.writeRaw(fd, writeBuf, 8);
            if (r < 0 && r != -Errno.EAGAIN) throw new SyscallException("write(eventfd)", (int) -r);
        }
    }

    /**
     * Reads and resets the counter; blocks on a blocking eventfd until it is non-zero. Returns 0 when a
     * non-blocking eventfd had nothing. Only one thread reads a given eventfd.
     */
    public long await() {
        while (true) {
            long r = Libc.readRaw(fd, readBuf, 8);
            if (r == 8) return readBuf.get(ValueLayout.JAVA_LONG, 0);
            if (r == -Errno.EAGAIN) return 0;
            if (r == -Errno.EINTR) continue;
            throw new SyscallException("read(eventfd)", (int) -r);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Libc.close(fd);
        arena.close();
    }
}
