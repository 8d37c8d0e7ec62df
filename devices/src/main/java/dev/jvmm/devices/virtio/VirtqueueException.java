package dev.jvmm.devices.virtio;

/**
 * The driver broke the virtqueue protocol: which rule it broke is the {@link Kind}, for callers and tests to
 * branch on; the message says where, with the values, for people. The queue cannot be trusted any more: the
 * device enters DEVICE_NEEDS_RESET.
 */
public final class VirtqueueException extends RuntimeException {
    /** The rule the driver broke. */
    public enum Kind {
        // The layout, checked once at activation.
        /** A queue size that is not a power of two from 1 to the device's maximum. */
        BAD_QUEUE_SIZE,
        /** The descriptor table, available ring or used ring is not aligned as the spec requires. */
        RING_MISALIGNED,
        /** A ring or the descriptor table lies (partly) outside guest RAM. */
        RING_OUTSIDE_MEMORY,
        /** Two of the three areas overlap. */
        RINGS_OVERLAP,

        // The available ring.
        /** The available index runs ahead of the device by more than the queue size (or went backwards). */
        AVAIL_INDEX_OUT_OF_RANGE,
        /** The available ring names a head descriptor beyond the queue size. */
        HEAD_INDEX_OUT_OF_RANGE,

        // A descriptor chain.
        /** A next index beyond the descriptor table or the indirect table it is in. */
        NEXT_INDEX_OUT_OF_RANGE,
        /** A chain visits more descriptors than its table holds: it loops. */
        DESCRIPTOR_LOOP,
        /** A chain of more buffers than the queue size. */
        CHAIN_TOO_LONG,
        /** A chain whose buffers add up to more than 4 GiB. */
        CHAIN_TOO_LARGE,
        /** A device-readable buffer after a device-writable one. */
        READABLE_AFTER_WRITABLE,
        /** A buffer (partly) outside guest RAM. */
        BUFFER_OUTSIDE_MEMORY,
        /** An indirect descriptor although VIRTIO_F_INDIRECT_DESC was not negotiated. */
        INDIRECT_NOT_NEGOTIATED,
        /** An indirect descriptor inside an indirect table. */
        INDIRECT_NESTED,
        /** An indirect descriptor that also has the NEXT flag. */
        INDIRECT_WITH_NEXT,
        /** An indirect table whose length is not a positive multiple of 16. */
        INDIRECT_TABLE_BAD_LENGTH,
        /** An indirect table of more descriptors than the queue size. */
        INDIRECT_TABLE_TOO_LONG,
        /** An indirect table (partly) outside guest RAM. */
        INDIRECT_TABLE_OUTSIDE_MEMORY,

        // What a device needs of a chain.
        /**
         * A chain too short for the device's request to be answered: a virtio-blk request without its header or
         * status byte, a virtio-net receive buffer smaller than its header, a control command without its ack.
         */
        CHAIN_TOO_SHORT
    }

    private final Kind kind;

    public VirtqueueException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
