package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;

/**
 * ICMP: echo requests to the gateway and DNS addresses are answered here; ICMP errors tell the guest a
 * destination is refused. Echo to other hosts is not forwarded (that needs ping sockets; see the report).
 */
final class IcmpStage {
    static final int ECHO_REPLY = 0, UNREACHABLE = 3, ECHO_REQUEST = 8;
    static final int CODE_PORT_UNREACHABLE = 3, CODE_ADMIN_PROHIBITED = 13;
    private static final int MAX_QUOTE = 28;
    private final UserNetStack stack;

    IcmpStage(UserNetStack stack) {
        this.stack = stack;
    }

    void receive(Packet p) {
        ByteBuf b = p.buf;
        if (p.l4Length < 8 || !Inet.verifies(Inet.sum(b, p.l4Offset, p.l4Length))) {
            stack.drop("malformed ICMP");
            return;
        }
        int type = b.getUnsignedByte(p.l4Offset);
        if (type != ECHO_REQUEST) return;
        if (!stack.isVirtualHost(p.dst)) {
            if (!stack.policy.restrict()) stack.drop("ICMP echo to " + Inet.text(p.dst) + " is not forwarded");
            else unreachable(p, CODE_ADMIN_PROHIBITED);
            return;
        }
        ByteBuf r = stack.ipv4.newPacket(p.l4Length);
        r.writeBytes(b, p.l4Offset, p.l4Length);
        int l4 = stack.link.headroom() + Ipv4Stage.HEADER;
        r.setByte(l4, ECHO_REPLY);
        stack.ipv4.sendIcmp(r, p.dst, p.src);
    }

    /** Destination unreachable for the packet in {@code p}, quoting its IP header and first 8 bytes. */
    void unreachable(Packet p, int code) {
        int quote = Math.min(p.ipTotalLength, p.ipHeaderLength + 8);
        ByteBuf r = stack.ipv4.newPacket(8 + Math.max(quote, MAX_QUOTE));
        r.writeByte(UNREACHABLE).writeByte(code).writeShort(0).writeInt(0);
        r.writeBytes(p.buf, p.ipOffset, quote);
        stack.ipv4.sendIcmp(r, p.dst, p.src);
    }
}
