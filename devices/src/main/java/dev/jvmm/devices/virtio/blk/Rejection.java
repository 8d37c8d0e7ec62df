package dev.jvmm.devices.virtio.blk;

/**
 * Why {@link BlockRequestParser} refused a request, and what the guest is told: S_IOERR for a request the
 * device understands but will not do as asked, S_UNSUPP for one it does not do at all. The first two cannot be
 * answered (there is no header to know the request by, or no byte to put a status in): such a chain breaks the
 * protocol and the device needs a reset.
 */
public enum Rejection {
    /** Fewer than 16 device-readable bytes: no request header. */
    NO_HEADER(-1),
    /** No device-writable byte at the end of the chain for the status. */
    NO_STATUS(-1),
    /** A request type this device does not serve (virtio-blk types jvmm lacks, or unknown ones). */
    UNSUPPORTED_TYPE(VirtioBlock.S_UNSUPP),
    /** Discard or write-zeroes without the driver having accepted the feature. */
    FEATURE_NOT_NEGOTIATED(VirtioBlock.S_UNSUPP),
    /** A discard/write-zeroes segment with flags other than unmap. */
    UNKNOWN_FLAGS(VirtioBlock.S_UNSUPP),
    /** The unmap flag on a discard segment, where the spec reserves it. */
    UNMAP_ON_DISCARD(VirtioBlock.S_UNSUPP),
    /** A write, discard or write-zeroes to a read-only disk. */
    READ_ONLY(VirtioBlock.S_IOERR),
    /** Read or write data that is not a whole number of 512-byte sectors. */
    NOT_WHOLE_SECTORS(VirtioBlock.S_IOERR),
    /** A sector range that does not lie within the capacity (a "negative" u64 sector included). */
    OUT_OF_RANGE(VirtioBlock.S_IOERR),
    /** A discard/write-zeroes payload that is not one or more whole 16-byte segments. */
    MALFORMED_SEGMENTS(VirtioBlock.S_IOERR),
    /** More discard/write-zeroes segments than max_discard_seg. */
    TOO_MANY_SEGMENTS(VirtioBlock.S_IOERR),
    /** A discard/write-zeroes segment of more than max_discard_sectors. */
    SEGMENT_TOO_LARGE(VirtioBlock.S_IOERR);

    private final int status;

    Rejection(int status) {
        this.status = status;
    }

    /** Whether the guest can be told: the request completes with {@link #status()}. */
    public boolean answerable() {
        return status >= 0;
    }

    /** The virtio-blk status byte the request completes with (S_IOERR or S_UNSUPP). */
    public int status() {
        if (status < 0) throw new IllegalStateException(this + " cannot be answered");
        return status;
    }
}
