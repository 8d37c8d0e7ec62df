package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;

/** IPv4 addresses as ints, the virtual network's addresses, and the Internet checksum. */
final class Inet {
    static final int NETWORK = ip(10, 0, 2, 0), NETMASK = ip(255, 255, 255, 0);
    static final int GATEWAY = ip(10, 0, 2, 2), DNS = ip(10, 0, 2, 3), GUEST = ip(10, 0, 2, 15);
    static final int BROADCAST = NETWORK | ~NETMASK, LIMITED_BROADCAST = -1, LOOPBACK = ip(127, 0, 0, 1);
    static final int PROTO_ICMP = 1, PROTO_TCP = 6, PROTO_UDP = 17;

    private Inet() {}

    static int ip(int a, int b, int c, int d) {
        return (a << 24) | (b << 16) | (c << 8) | d;
    }

    static boolean inNetwork(int ip) {
        return (ip & NETMASK) == NETWORK;
    }

    /**
     * Whether {@code ip} can name one host: not "this network" (0/8), multicast, the limited broadcast or this
     * network's broadcast. Nothing answers for the others (RFC 1122 3.2.2, 4.2.3.10), so no reply ever comes from one.
     */
    static boolean singleHost(int ip) {
        return (ip >>> 24) != 0 && (ip >>> 28) != 0xe && ip != LIMITED_BROADCAST && ip != BROADCAST;
    }

    static InetAddress address(int ip) {
        try {
            return InetAddress.getByAddress(
                    new byte[] {(byte) (ip >>> 24), (byte) (ip >>> 16), (byte) (ip >>> 8), (byte) ip});
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    /** The IPv4 address as an int, or 0 for anything else (IPv6). */
    static int ip(InetAddress address) {
        if (!(address instanceof Inet4Address)) return 0;
        byte[] b = address.getAddress();
        return ((b[0] & 0xff) << 24) | ((b[1] & 0xff) << 16) | ((b[2] & 0xff) << 8) | (b[3] & 0xff);
    }

    static String text(int ip) {
        return (ip >>> 24) + "." + ((ip >>> 16) & 0xff) + "." + ((ip >>> 8) & 0xff) + "." + (ip & 0xff);
    }

    /** The ones'-complement sum of a byte range, unfolded (add more, then {@link #fold}). */
    static long sum(ByteBuf b, int offset, int length) {
        long s = 0;
        int i = 0;
        for (; i + 4 <= length; i += 4) s += b.getUnsignedInt(offset + i);
        if (i + 2 <= length) {
            s += b.getUnsignedShort(offset + i);
            i += 2;
        }
        if (i < length) s += b.getUnsignedByte(offset + i) << 8;
        return s;
    }

    static long pseudoHeader(int src, int dst, int proto, int length) {
        return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
    }

    static int fold(long s) {
        while ((s >>> 16) != 0) s = (s & 0xffff) + (s >>> 16);
        return (int) s;
    }

    /** The checksum to store: the complement of the folded sum (the field itself counted as zero). */
    static int checksum(long sum) {
        return ~fold(sum) & 0xffff;
    }

    /** True if a range whose checksum field is included sums to all ones. */
    static boolean verifies(long sum) {
        return fold(sum) == 0xffff;
    }
}
