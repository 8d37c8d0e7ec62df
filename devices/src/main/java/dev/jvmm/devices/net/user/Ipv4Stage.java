package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;

/** IPv4: checks every header field the guest wrote, then hands ICMP, UDP and TCP on; writes headers going back. */
final class Ipv4Stage {
    static final int HEADER = 20;
    private final UserNetStack stack;
    private int nextId;

    Ipv4Stage(UserNetStack stack) {
        this.stack = stack;
    }

    void receive(Packet p) {
        ByteBuf b = p.buf;
        int o = b.readerIndex();
        int available = b.readableBytes();
        if (available < HEADER) {
            stack.drop("truncated IPv4 header");
            return;
        }
        int vihl = b.getUnsignedByte(o);
        int ihl = (vihl & 0xf) * 4;
        int total = b.getUnsignedShort(o + 2);
        if ((vihl >>> 4) != 4 || ihl < HEADER || ihl > available || total < ihl || total > available) {
            stack.drop("bad IPv4 lengths");
            return;
        }
        if (!Inet.verifies(Inet.sum(b, o, ihl))) {
            stack.drop("bad IPv4 header checksum");
            return;
        }
        if ((b.getUnsignedShort(o + 6) & 0x3fff) != 0) {
            stack.drop("IPv4 fragment"); // the guest's MTU is 1500 and GSO covers large sends: fragments are not needed
            return;
        }
        p.ipOffset = o;
        p.ipHeaderLength = ihl;
        p.ipTotalLength = total;
        p.protocol = b.getUnsignedByte(o + 9);
        p.src = b.getInt(o + 12);
        p.dst = b.getInt(o + 16);
        p.l4Offset = o + ihl;
        p.l4Length = total - ihl;
        boolean dhcp = p.src == 0 && p.protocol == Inet.PROTO_UDP;
        if (!dhcp
                && (!Inet.inNetwork(p.src)
                        || stack.isVirtualHost(p.src)
                        || p.src == Inet.NETWORK
                        || p.src == Inet.BROADCAST)) {
            stack.drop("source " + Inet.text(p.src) + " outside the guest network");
            return;
        }
        if (!dhcp) stack.link.guestMac = p.srcMac;
        if (p.protocol != Inet.PROTO_UDP && !Inet.singleHost(p.dst)) {
            // TCP and ping to a broadcast or multicast address: no host answers, and neither a reset nor an ICMP
            // error may come from one (UDP sorts out DHCP first).
            stack.drop("IP protocol " + p.protocol + " to " + Inet.text(p.dst));
            return;
        }
        switch (p.protocol) {
            case Inet.PROTO_TCP -> stack.tcp.receive(p);
            case Inet.PROTO_UDP -> stack.udp.receive(p);
            case Inet.PROTO_ICMP -> stack.icmp.receive(p);
            default -> stack.drop("IP protocol " + p.protocol);
        }
    }

    /** A buffer with room for an IPv4 header; its writer index sits where the L4 header starts. */
    ByteBuf newPacket(int l4Capacity) {
        ByteBuf b = stack.link.newFrame(HEADER + l4Capacity);
        b.writerIndex(b.writerIndex() + HEADER);
        return b;
    }

    /** Fills in the IPv4 header of a packet from {@link #newPacket}; returns its offset in the buffer. */
    int writeHeader(ByteBuf b, int protocol, int src, int dst) {
        return writeHeader(b, protocol, src, dst, 0);
    }

    /** As {@link #writeHeader(ByteBuf, int, int, int)} for a packet with {@code more} bytes beyond {@code b}. */
    private int writeHeader(ByteBuf b, int protocol, int src, int dst, int more) {
        int o = stack.link.headroom();
        int total = b.writerIndex() - o + more;
        b.setByte(o, 0x45);
        b.setByte(o + 1, 0);
        b.setShort(o + 2, total);
        b.setShort(o + 4, nextId++);
        b.setShort(o + 6, 0x4000); // DF: nothing on this path fragments
        b.setByte(o + 8, 64);
        b.setByte(o + 9, protocol);
        b.setShort(o + 10, 0);
        b.setInt(o + 12, src);
        b.setInt(o + 16, dst);
        b.setShort(o + 10, Inet.checksum(Inet.sum(b, o, HEADER)));
        return o;
    }

    /**
     * Completes and sends a TCP or UDP packet: the L4 checksum is left partial for the guest's device to finish
     * when the guest accepted that, else computed here.
     */
    void sendL4(ByteBuf b, int protocol, int src, int dst, int gsoType, int gsoSize, int l4HeaderLength) {
        int ip = writeHeader(b, protocol, src, dst);
        int l4 = ip + HEADER;
        int l4Length = b.writerIndex() - l4;
        int csumField = protocol == Inet.PROTO_TCP ? 16 : 6;
        long pseudo = Inet.pseudoHeader(src, dst, protocol, l4Length);
        int eth = stack.link.headroom() - EthernetStage.ETH_HEADER;
        if (stack.link.partialChecksums()) {
            b.setShort(l4 + csumField, Inet.fold(pseudo));
            stack.link.sendIpv4(b, dst, gsoType, gsoSize, l4 - eth + l4HeaderLength, l4 - eth, csumField);
        } else {
            b.setShort(l4 + csumField, 0);
            int c = Inet.checksum(pseudo + Inet.sum(b, l4, l4Length));
            if (protocol == Inet.PROTO_UDP && c == 0) c = 0xffff;
            b.setShort(l4 + csumField, c);
            stack.link.sendIpv4(b, dst, 0, 0, 0, 0, 0);
        }
    }

    /**
     * As {@link #sendL4} for a TCP segment whose header is in {@code b} and whose {@code len} bytes of payload stay
     * in {@code data} at {@code at}: they are copied once, into the guest's buffers. False if the guest has no
     * room for it now; then nothing was sent and {@code b} is released all the same.
     */
    boolean sendTcpGather(ByteBuf b, int src, int dst, int gsoType, int gsoSize, ByteBuf data, int at, int len) {
        int ip = writeHeader(b, Inet.PROTO_TCP, src, dst, len);
        int l4 = ip + HEADER;
        int l4Header = b.writerIndex() - l4;
        long pseudo = Inet.pseudoHeader(src, dst, Inet.PROTO_TCP, l4Header + len);
        int eth = stack.link.headroom() - EthernetStage.ETH_HEADER;
        if (stack.link.partialChecksums()) {
            b.setShort(l4 + 16, Inet.fold(pseudo));
            return stack.link.sendIpv4Gather(
                    b, dst, gsoType, gsoSize, l4 - eth + l4Header, l4 - eth, 16, data, at, len);
        }
        b.setShort(l4 + 16, 0);
        b.setShort(l4 + 16, Inet.checksum(pseudo + Inet.sum(b, l4, l4Header) + Inet.sum(data, at, len)));
        return stack.link.sendIpv4Gather(b, dst, 0, 0, 0, 0, 0, data, at, len);
    }

    void sendIcmp(ByteBuf b, int src, int dst) {
        int ip = writeHeader(b, Inet.PROTO_ICMP, src, dst);
        int l4 = ip + HEADER;
        b.setShort(l4 + 2, 0);
        b.setShort(l4 + 2, Inet.checksum(Inet.sum(b, l4, b.writerIndex() - l4)));
        stack.link.sendIpv4(b, dst, 0, 0, 0, 0, 0);
    }
}
