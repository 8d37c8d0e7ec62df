package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;

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

    /** The L4 checksum holds, counting the pseudo header, or the vnet header vouches for it. */
    boolean l4ChecksumOk() {
        if (checksumTrusted) return true;
        long s = Inet.sum(buf, l4Offset, l4Length) + Inet.pseudoHeader(src, dst, protocol, l4Length);
        return Inet.verifies(s);
    }
}
