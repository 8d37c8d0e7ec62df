package dev.jvmm.core.irq;

/**
 * One MSI/MSI-X vector wired to the guest: with KVM, a GSI routing entry plus an irqfd, so triggering it
 * is one eventfd write and no ioctl. The address and data are the guest's, reprogrammed when it writes
 * the MSI-X table.
 */
public interface MsiRoute extends AutoCloseable {
    void update(long address, int data);

    void trigger();

    @Override
    void close();
}
