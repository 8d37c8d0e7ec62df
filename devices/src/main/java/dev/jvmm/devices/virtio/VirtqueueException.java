package dev.jvmm.devices.virtio;

/**
 * The driver broke the virtqueue protocol (a descriptor loop, an index beyond the ring, a buffer outside RAM,
 * a misplaced ring). The queue cannot be trusted any more: the device enters DEVICE_NEEDS_RESET.
 */
public final class VirtqueueException extends RuntimeException {
    public VirtqueueException(String message) {
        super(message);
    }
}
