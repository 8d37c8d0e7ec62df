package dev.jvmm.kvm;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A file descriptor and the one object that owns it: closed exactly once, and unusable after that. Reading the
 * number of a closed fd throws {@link ClosedFdException} naming the owner, so no call ever reaches the kernel
 * with a number that may by then belong to another file. Nothing more: no reference counting, no retries; an
 * owner that closes its fd while another thread still uses it must order the two itself (join the thread first).
 */
public final class OwnedFd implements AutoCloseable {
    private static final VarHandle CLOSED;

    static {
        try {
            CLOSED = MethodHandles.lookup().findVarHandle(OwnedFd.class, "closed", boolean.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final int fd;
    private final String owner;

    @SuppressWarnings("unused") // through CLOSED
    private volatile boolean closed;

    /**
     * Takes ownership of {@code fd}, which the caller must not close or use by number any more.
     *
     * @param owner names the object in messages, e.g. {@code "Vcpu 0"} or {@code "/dev/kvm"}
     */
    public OwnedFd(int fd, String owner) {
        if (fd < 0) throw new IllegalArgumentException("fd " + fd + " for " + owner + " is not a file descriptor");
        this.fd = fd;
        this.owner = owner;
    }

    /** The fd number, for the system call about to be made; throws {@link ClosedFdException} once closed. */
    public int get() {
        if (closed) throw new ClosedFdException(owner);
        return fd;
    }

    public boolean isClosed() {
        return closed;
    }

    public String owner() {
        return owner;
    }

    /** Closes the fd the first time it is called; later calls, from any thread, do nothing. */
    @Override
    public void close() {
        if (CLOSED.compareAndSet(this, false, true)) Libc.close(fd);
    }

    @Override
    public String toString() {
        return owner + " (fd " + fd + (closed ? ", closed)" : ")");
    }
}
