package dev.jvmm.core.event;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.OwnedFd;
import dev.jvmm.kvm.SyscallException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A Linux eventfd: the doorbell KVM rings for ioeventfd (a guest queue notification that never leaves the
 * kernel) and that jvmm rings for irqfd (an interrupt injected without an ioctl). After close() every call
 * throws ClosedFdException.
 */
public final class EventFd implements AutoCloseable {
    private final OwnedFd fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment readBuf = arena.allocate(ValueLayout.JAVA_LONG);
    private final MemorySegment writeBuf = arena.allocate(ValueLayout.JAVA_LONG);

    public EventFd(boolean nonBlocking) {
        this.fd = new OwnedFd(Libc.eventfd(0, Libc.EFD_CLOEXEC | (nonBlocking ? Libc.EFD_NONBLOCK : 0)), "EventFd");
    }

    /** The fd number, for the system call about to be made (KVM_IRQFD, KVM_IOEVENTFD); throws once closed. */
    public int fd() {
        return fd.get();
    }

    /** Adds 1 to the counter, waking a reader. Thread-safe. */
    public void signal() {
        synchronized (writeBuf) {
            int f = fd.get(); // before touching writeBuf, which close() frees
            writeBuf.set(ValueLayout.JAVA_LONG, 0, 1L);
            long r = Libc.writeRaw(f, writeBuf, 8);
            if (r < 0 && r != -Errno.EAGAIN) throw new SyscallException("write(eventfd)", (int) -r);
        }
    }

    /**
     * Reads and resets the counter; blocks on a blocking eventfd until it is non-zero. Returns 0 when a
     * non-blocking eventfd had nothing. Only one thread reads a given eventfd.
     */
    public long await() {
        while (true) {
            long r = Libc.readRaw(fd.get(), readBuf, 8);
            if (r == 8) return readBuf.get(ValueLayout.JAVA_LONG, 0);
            if (r == -Errno.EAGAIN) return 0;
            if (r == -Errno.EINTR) continue;
            throw new SyscallException("read(eventfd)", (int) -r);
        }
    }

    @Override
    public void close() {
        synchronized (writeBuf) { // not while a signal() is writing
            if (fd.isClosed()) return;
            fd.close();
            arena.close();
        }
    }
}
