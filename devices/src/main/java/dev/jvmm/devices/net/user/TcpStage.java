package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.NetConfig;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Map;

/**
 * TCP: parses and checks the guest's segments, keeps the connection table, answers segments for no connection
 * with RST, and opens host connections for guest SYNs the policy allows.
 */
final class TcpStage {
    static final int FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
    static final int HEADER = 20;
    private static final int MAX_CONNECTIONS = 4096;

    final UserNetStack stack;
    private final Map<Long, TcpConnection> connections = new HashMap<>();
    /** The segment being processed; reused (one thread). */
    final Segment seg = new Segment();

    static final class Segment {
        int srcPort, dstPort, seq, ack, flags, window, payloadOffset, payloadLength;
        int mss, wscale; // -1 if absent
    }

    /** How long an established connection may pass no segment either way ({@link Tuning#tcpIdle()}). */
    final long idleNanos;

    TcpStage(UserNetStack stack) {
        this.stack = stack;
        this.idleNanos = stack.tuning.tcpIdle().toNanos();
    }

    static long key(int remoteIp, int guestPort, int remotePort) {
        return ((remoteIp & 0xffffffffL) << 32) | ((long) guestPort << 16) | remotePort;
    }

    int connectionCount() {
        return connections.size();
    }

    void receive(Packet p) {
        ByteBuf b = p.buf;
        int o = p.l4Offset;
        if (p.l4Length < HEADER) {
            stack.drop("truncated TCP header");
            return;
        }
        int dataOffset = (b.getUnsignedByte(o + 12) >>> 4) * 4;
        if (dataOffset < HEADER || dataOffset > p.l4Length) {
            stack.drop("bad TCP data offset");
            return;
        }
        if (!p.l4ChecksumOk()) {
            stack.drop("bad TCP checksum");
            return;
        }
        Segment s = seg;
        s.srcPort = b.getUnsignedShort(o);
        s.dstPort = b.getUnsignedShort(o + 2);
        s.seq = b.getInt(o + 4);
        s.ack = b.getInt(o + 8);
        s.flags = b.getUnsignedByte(o + 13);
        s.window = b.getUnsignedShort(o + 14);
        s.payloadOffset = o + dataOffset;
        s.payloadLength = p.l4Length - dataOffset;
        s.mss = -1;
        s.wscale = -1;
        if ((s.flags & SYN) != 0 && !options(b, o + HEADER, o + dataOffset, s)) {
            stack.drop("malformed TCP options");
            return;
        }
        if (s.srcPort == 0 || s.dstPort == 0) {
            stack.drop("TCP port 0");
            return;
        }
        TcpConnection c = connections.get(key(p.dst, s.srcPort, s.dstPort));
        if (c != null && c.guestIp == p.src) {
            c.segment(p, s);
            return;
        }
        if ((s.flags & RST) != 0) return;
        if ((s.flags & (SYN | ACK | FIN)) != SYN) {
            reset(p.src, p.dst, s);
            return;
        }
        InetSocketAddress target = stack.policy.translate(NetConfig.Protocol.TCP, p.dst, s.dstPort);
        if (target == null) {
            stack.refused(NetConfig.Protocol.TCP, p.dst, s.dstPort);
            stack.counters.increment(FlowCounters.Counter.TCP_REFUSED);
            reset(p.src, p.dst, s);
            return;
        }
        if (connections.size() >= MAX_CONNECTIONS) {
            stack.counters.increment(FlowCounters.Counter.TCP_REFUSED);
            reset(p.src, p.dst, s);
            return;
        }
        c = new TcpConnection(this, key(p.dst, s.srcPort, s.dstPort), p.src, s.srcPort, p.dst, s.dstPort);
        connections.put(c.key, c);
        c.connectFromGuest(s, target);
    }

    /** Parses MSS and window scale; false if an option's length runs past the header. */
    private static boolean options(ByteBuf b, int i, int end, Segment s) {
        while (i < end) {
            int kind = b.getUnsignedByte(i);
            if (kind == 0) return true;
            if (kind == 1) {
                i++;
                continue;
            }
            if (i + 1 >= end) return false;
            int len = b.getUnsignedByte(i + 1);
            if (len < 2 || i + len > end) return false;
            if (kind == 2 && len == 4) s.mss = b.getUnsignedShort(i + 2);
            if (kind == 3 && len == 3) s.wscale = b.getUnsignedByte(i + 2);
            i += len;
        }
        return true;
    }

    /** RST for a segment that belongs to no connection (RFC 793 "reset generation"). */
    void reset(int guestIp, int remoteIp, Segment s) {
        int segLen = s.payloadLength + ((s.flags & SYN) != 0 ? 1 : 0) + ((s.flags & FIN) != 0 ? 1 : 0);
        if ((s.flags & ACK) != 0) {
            sendControl(remoteIp, s.dstPort, guestIp, s.srcPort, s.ack, 0, RST, 0);
        } else {
            sendControl(remoteIp, s.dstPort, guestIp, s.srcPort, 0, s.seq + segLen, RST | ACK, 0);
        }
    }

    /** A segment without data (and without options). */
    void sendControl(int src, int srcPort, int dst, int dstPort, int seq, int ack, int flags, int window) {
        ByteBuf b = stack.ipv4.newPacket(HEADER);
        writeHeader(b, srcPort, dstPort, seq, ack, flags, window, HEADER);
        stack.ipv4.sendL4(b, Inet.PROTO_TCP, src, dst, 0, 0, HEADER);
    }

    static void writeHeader(
            ByteBuf b, int srcPort, int dstPort, int seq, int ack, int flags, int window, int headerLength) {
        b.writeShort(srcPort).writeShort(dstPort).writeInt(seq).writeInt(ack);
        b.writeByte((headerLength / 4) << 4)
                .writeByte(flags)
                .writeShort(window)
                .writeShort(0)
                .writeShort(0);
    }

    /** Connections that took guest data in the current batch ({@link #flushLater}). */
    private final ArrayList<TcpConnection> pendingFlush = new ArrayList<>();

    /** {@code c} took guest data: its host channel is flushed and the guest ACKed at the batch's end. */
    void flushLater(TcpConnection c) {
        if (c.flushPending) return;
        c.flushPending = true;
        pendingFlush.add(c);
    }

    /** The end of a batch of guest frames: one flush and at most one ACK per connection that took data. */
    void endOfBatch() {
        for (int i = 0; i < pendingFlush.size(); i++) {
            TcpConnection c = pendingFlush.get(i);
            c.flushPending = false;
            c.flushAndAck();
        }
        pendingFlush.clear();
    }

    void remove(TcpConnection c) {
        connections.remove(c.key, c);
    }

    /** The guest drained its receive backlog: connections with data waiting send more. */
    void resumeOutput() {
        if (connections.isEmpty()) return;
        for (TcpConnection c : connections.values()) { // output() never removes a connection
            if (!stack.link.hasRoom()) return;
            c.output();
        }
    }

    void tick(long now) {
        if (connections.isEmpty()) return;
        for (TcpConnection c : new ArrayList<>(connections.values())) c.tick(now);
    }

    void closeAll() {
        pendingFlush.clear();
        for (TcpConnection c : new ArrayList<>(connections.values())) c.abortHost();
        connections.clear();
    }

    /** A host client connected to a forwarded port: open a connection to the guest from a gateway port. */
    void acceptForwarded(Channel child, NetConfig.HostForward forward) {
        if (!stack.link.attached() || connections.size() >= MAX_CONNECTIONS) {
            stack.counters.increment(FlowCounters.Counter.TCP_REFUSED);
            child.close();
            return;
        }
        int port = stack.allocatePort();
        if (port < 0) {
            stack.counters.increment(FlowCounters.Counter.TCP_REFUSED);
            child.close();
            return;
        }
        int guestIp = forward.guestAddress().map(Inet::ip).orElse(Inet.GUEST);
        TcpConnection c = new TcpConnection(
                this, key(Inet.GATEWAY, forward.guestPort(), port), guestIp, forward.guestPort(), Inet.GATEWAY, port);
        c.gatewayPort = port;
        connections.put(c.key, c);
        c.connectToGuest(child);
    }
}
