package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;

/** ARP: answers for the gateway and DNS addresses and learns the guest's MAC. */
final class ArpStage {
    private static final int LENGTH = 28, REQUEST = 1, REPLY = 2;
    private final UserNetStack stack;

    ArpStage(UserNetStack stack) {
        this.stack = stack;
    }

    void receive(Packet p) {
        ByteBuf b = p.buf;
        int o = b.readerIndex();
        if (b.readableBytes() < LENGTH
                || b.getUnsignedShort(o) != 1
                || b.getUnsignedShort(o + 2) != EthernetStage.TYPE_IPV4
                || b.getUnsignedByte(o + 4) != 6
                || b.getUnsignedByte(o + 5) != 4) {
            stack.drop("malformed ARP");
            return;
        }
        int op = b.getUnsignedShort(o + 6);
        long senderMac = ((long) b.getUnsignedShort(o + 8) << 32) | b.getUnsignedInt(o + 10);
        int senderIp = b.getInt(o + 14);
        int targetIp = b.getInt(o + 24);
        if (senderMac != p.srcMac) {
            stack.drop("ARP sender differs from frame source");
            return;
        }
        if (Inet.inNetwork(senderIp) && !stack.isVirtualHost(senderIp)) stack.link.guestMac = senderMac;
        if (op == REQUEST && stack.isVirtualHost(targetIp)) {
            ByteBuf r = stack.link.newFrame(LENGTH);
            write(r, REPLY, EthernetStage.GATEWAY_MAC, targetIp, senderMac, senderIp);
            stack.link.send(r, EthernetStage.TYPE_ARP, senderMac, 0, 0, 0, 0, 0);
        }
    }

    /** Asks who has {@code ip} (the guest, before it has spoken), so later packets know where to go. */
    void request(int ip) {
        if (!stack.link.attached()) return;
        ByteBuf r = stack.link.newFrame(LENGTH);
        write(r, REQUEST, EthernetStage.GATEWAY_MAC, Inet.GATEWAY, 0, ip);
        stack.link.send(r, EthernetStage.TYPE_ARP, EthernetStage.BROADCAST_MAC, 0, 0, 0, 0, 0);
    }

    private static void write(ByteBuf r, int op, long senderMac, int senderIp, long targetMac, int targetIp) {
        r.writeShort(1)
                .writeShort(EthernetStage.TYPE_IPV4)
                .writeByte(6)
                .writeByte(4)
                .writeShort(op);
        r.writeShort((int) (senderMac >>> 32)).writeInt((int) senderMac).writeInt(senderIp);
        r.writeShort((int) (targetMac >>> 32)).writeInt((int) targetMac).writeInt(targetIp);
    }
}
