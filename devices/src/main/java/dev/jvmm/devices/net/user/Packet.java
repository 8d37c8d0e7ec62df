package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * One guest frame as the stages parsed it so far; one instance is reused for every frame (the stack runs on
 * one thread). Offsets index {@link #buf}.
 */
final class Packet {
    ByteBuf buf;
    /** From the vnet header: the L4 checksum is partial (NEEDS_CSUM) or already checked (DATA_VALID). */
    boolean checksumTrusted;

    int gsoType;
    int gsoSize;
    long srcMac;
    int ipOffset, ipHeaderLength, ipTotalLength;
    int src, dst, protocol;
    int l4Offset, l4Length;

    void reset(ByteBuf frame) {
        buf = frame;
        checksumTrusted = false;
        gsoType = 0;
        gsoSize = 0;
        srcMac = 0;
        ipOffset = ipHeaderLength = ipTotalLength = 0;
        src = dst = protocol = 0;
        l4Offset = l4Length = 0;
    }

    /**
     * Whether a payload of {@code len} bytes is copied out of the frame rather than sliced: a slice keeps the whole
     * frame alive while it waits for a host socket, and Netty counts only the slice. Copied unless it is at least
     * half the frame, so a queued payload never holds more than twice its size.
     */
    boolean copies(int len) {
        return 2L * len < buf.capacity();
    }

    /** The memory a payload of {@code len} bytes keeps alive while queued ({@link #payload}). */
    int holds(int len) {
        return copies(len) ? len : buf.capacity();
    }

    /** {@code len} bytes at {@code offset} for a host socket, owned by the caller: a compact copy or a slice. */
    ByteBuf payload(int offset, int len, ByteBufAllocator alloc) {
        if (!copies(len)) return buf.retainedSlice(offset, len);
        return alloc.directBuffer(len, len).writeBytes(buf, offset, len);
    }

    /** The L4 checksum holds, counting the pseudo header, or the vnet header vouches for it. */
    boolean l4ChecksumOk() {
        if (checksumTrusted) return true;
        long s = Inet.sum(buf, l4Offset, l4Length) + Inet.pseudoHeader(src, dst, protocol, l4Length);
        return Inet.verifies(s);
    }
}
