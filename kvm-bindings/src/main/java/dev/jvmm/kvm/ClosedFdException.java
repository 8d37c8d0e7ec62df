package dev.jvmm.kvm;

/** A call on an object whose fd was already closed: a use-after-close bug in the caller, not a kernel error. */
public final class ClosedFdException extends IllegalStateException {
    private final String owner;

    public ClosedFdException(String owner) {
        super(owner + " is closed; it cannot be used after close()");
        this.owner = owner;
    }

    /** The object that was closed, as its {@link OwnedFd} names it. */
    public String owner() {
        return owner;
    }
}
