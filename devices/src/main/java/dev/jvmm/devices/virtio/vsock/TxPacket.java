package dev.jvmm.devices.virtio.vsock;

import dev.jvmm.devices.virtio.DescriptorChain;
import java.lang.foreign.MemorySegment;

/**
 * A chain of the transmit queue, decoded and checked once: a packet the device acts on, one whose header breaks a
 * rule (answered with a reset where that makes sense), or one without a header at all (dropped).
 */
public sealed interface TxPacket {
    /** The largest payload a packet may carry either way (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
    int MAX_PAYLOAD = 64 * 1024;

    /** The host's well-known CID, the only destination this device serves. */
    long HOST_CID = 2;

    /** A well-formed stream packet from the guest to the host; its payload follows the header in the chain. */
    record Valid(VsockHeader header, VsockOp op) implements TxPacket {}

    /** A header that breaks {@code problem}. */
    record Invalid(VsockHeader header, Problem problem) implements TxPacket {}

    /** No header can be read: {@code readable} device-readable bytes, {@code writable} device-writable ones. */
    record Unreadable(long readable, long writable) implements TxPacket {}

    /** What is wrong with a packet whose header could be read. */
    enum Problem {
        /** src_cid is not the guest's CID: a spoofed packet, dropped without an answer. */
        SPOOFED_SOURCE,
        /** dst_cid is not the host (2): nothing here serves it. */
        NOT_FOR_HOST,
        /** A type other than stream (seqpacket is not offered). */
        UNSUPPORTED_TYPE,
        /** op is VIRTIO_VSOCK_OP_INVALID or unknown. */
        UNKNOWN_OP,
        /** len is more than {@link #MAX_PAYLOAD}. */
        PAYLOAD_TOO_LONG,
        /** len is more than the chain holds after the header. */
        PAYLOAD_BEYOND_CHAIN
    }

    /**
     * Decodes the chain a guest with CID {@code guestCid} put on the transmit queue, reading the header through
     * {@code scratch} (at least {@link VsockHeader#SIZE} bytes). Device-writable buffers in a transmit chain are a
     * driver error (5.10.6.2 has the driver put header and payload in device-readable ones): such a chain is
     * unreadable.
     */
    static TxPacket decode(DescriptorChain chain, MemorySegment scratch, long guestCid) {
        long readable = chain.readableLength();
        if (readable < VsockHeader.SIZE || chain.writableCount() != 0)
            return new Unreadable(readable, chain.writableLength());
        chain.readFrom(0, scratch, 0, VsockHeader.SIZE);
        VsockHeader h = VsockHeader.read(scratch);
        long len = Integer.toUnsignedLong(h.len());
        if (h.srcCid() != guestCid) return new Invalid(h, Problem.SPOOFED_SOURCE);
        if (h.dstCid() != HOST_CID) return new Invalid(h, Problem.NOT_FOR_HOST);
        if (h.type() != VsockHeader.TYPE_STREAM) return new Invalid(h, Problem.UNSUPPORTED_TYPE);
        VsockOp op = h.knownOp();
        if (op == null) return new Invalid(h, Problem.UNKNOWN_OP);
        if (len > MAX_PAYLOAD) return new Invalid(h, Problem.PAYLOAD_TOO_LONG);
        // Bytes after len are ignored, as Linux's vhost does; fewer than len is a lie about the payload.
        if (len > readable - VsockHeader.SIZE) return new Invalid(h, Problem.PAYLOAD_BEYOND_CHAIN);
        return new Valid(h, op);
    }
}
