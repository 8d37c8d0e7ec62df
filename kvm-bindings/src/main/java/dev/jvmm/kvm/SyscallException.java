package dev.jvmm.kvm;

/**
 * A system call that failed. The message names the call (and the ioctl, where it is one),
 * errno's symbolic name and the C library's description of it.
 */
public class SyscallException extends RuntimeException {
    private final String call;
    private final int errno;

    public SyscallException(String call, int errno) {
        super(call + " failed: " + Errno.name(errno) + " (" + Libc.strerror(errno) + ")");
        this.call = call;
        this.errno = errno;
    }

    protected SyscallException(String call, int errno, String message) {
        super(message);
        this.call = call;
        this.errno = errno;
    }

    /** The call that failed, e.g. {@code ioctl(KVM_RUN)} or {@code open(/dev/kvm)}. */
    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }

    public String errnoName() {
        return Errno.name(errno);
    }
}
