package dev.jvmm.core.irq;

/**
 * An interrupt pin a device raises with one signal per event rather than by driving a level; the guest learns why
 * from the device's own registers (virtio-mmio's InterruptStatus). With KVM it is an irqfd, so raising it is one
 * eventfd write and no ioctl. Made by {@link InterruptController#event}.
 */
public interface InterruptEvent extends AutoCloseable {
    /** One event: an edge, or the pin asserted until the guest's end of interrupt. Thread-safe; nothing once closed. */
    void trigger();

    @Override
    void close();
}
