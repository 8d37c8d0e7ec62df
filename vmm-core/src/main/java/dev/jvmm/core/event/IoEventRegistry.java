package dev.jvmm.core.event;

/**
 * Registers guest writes that KVM completes in the kernel by signalling an eventfd (ioeventfd), so a queue
 * notification costs no exit to userspace. Without KVM (unit tests) an implementation may signal the
 * eventfd from a bus write instead.
 */
public interface IoEventRegistry {
    enum Space {
        PIO,
        MMIO
    }

    /** A guest write of {@code length} bytes (0: any length) to address signals {@code event}. */
    Registration register(Space space, long address, int length, EventFd event);

    interface Registration extends AutoCloseable {
        @Override
        void close();
    }
}
