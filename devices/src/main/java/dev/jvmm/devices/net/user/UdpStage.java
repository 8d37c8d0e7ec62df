package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.VirtioNetHeader;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.socket.DatagramPacket;
import java.net.InetSocketAddress;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * UDP: DHCP is answered here; every other guest flow (guest address and port) gets a host datagram socket, and
 * answers come back only from the addresses the guest sent to. Forwarded host ports map each remote sender to a
 * port on 10.0.2.2.
 */
final class UdpStage {
    static final int HEADER = 8;
    private static final int MAX_FLOWS = 512, MAX_PEERS_PER_FLOW = 64;
    /**
     * The most datagrams one UDP segmentation offload frame may split into, as Linux's UDP_MAX_SEGMENTS
     * (include/linux/udp.h: 1 << 7 in current kernels, 1 << 6 in older ones), which virtio_net_hdr_to_skb applies
     * to a guest's frames too: beyond it the frame is dropped whole, so a frame with a tiny gso_size cannot become
     * tens of thousands of host datagrams.
     */
    static final int MAX_GSO_SEGMENTS = 128;
    /** Datagrams a flow holds until its socket is bound: a whole segmentation frame (they count against the budget). */
    private static final int MAX_PENDING = MAX_GSO_SEGMENTS;
    /** A datagram for the guest must fit its 1500-byte MTU: no fragments on this link. */
    private static final int MAX_PAYLOAD = 1500 - Ipv4Stage.HEADER - HEADER;

    private final UserNetStack stack;
    private final Map<Long, Flow> flows = new HashMap<>();
    /** Gateway-side port -> the forward and remote host it stands for. */
    private final Map<Integer, ForwardPeer> forwardPeers = new HashMap<>();

    private final Map<InetSocketAddress, ForwardPeer> forwardPeersByRemote = new HashMap<>();

    private final long idleNanos;

    UdpStage(UserNetStack stack) {
        this.stack = stack;
        this.idleNanos = stack.tuning.udpIdle().toNanos();
    }

    int flowCount() {
        return flows.size();
    }

    void receive(Packet p) {
        ByteBuf b = p.buf;
        int o = p.l4Offset;
        if (p.l4Length < HEADER) {
            stack.drop("truncated UDP header");
            return;
        }
        int length = b.getUnsignedShort(o + 4);
        if (length < HEADER || length > p.l4Length) {
            stack.drop("bad UDP length");
            return;
        }
        p.l4Length = length;
        if (b.getUnsignedShort(o + 6) != 0 && !p.l4ChecksumOk()) {
            stack.drop("bad UDP checksum");
            return;
        }
        int srcPort = b.getUnsignedShort(o), dstPort = b.getUnsignedShort(o + 2);
        if (dstPort == DhcpServer.SERVER_PORT
                && (p.dst == Inet.LIMITED_BROADCAST || p.dst == Inet.BROADCAST || p.dst == Inet.GATEWAY)) {
            dhcp(p, o + HEADER, length - HEADER);
            return;
        }
        if (p.src == 0 || !Inet.singleHost(p.dst)) return; // broadcast, multicast: nothing else listens here
        int payload = o + HEADER, payloadLength = length - HEADER;
        boolean gso = p.gsoType == VirtioNetHeader.GSO_UDP_L4 && p.gsoSize > 0;
        int segment = gso ? p.gsoSize : Math.max(payloadLength, 1);
        if (gso && (payloadLength + segment - 1) / segment > MAX_GSO_SEGMENTS) {
            stack.drop("UDP segmentation into more than " + MAX_GSO_SEGMENTS + " datagrams");
            return;
        }
        for (int off = 0; off < payloadLength || off == 0; off += segment) {
            datagram(p, srcPort, dstPort, payload + off, Math.min(segment, payloadLength - off));
            if (payloadLength == 0) break;
        }
    }

    /** One datagram of the guest's: {@code n} bytes at {@code offset} of its frame. */
    private void datagram(Packet p, int srcPort, int dstPort, int offset, int n) {
        if (p.dst == Inet.GATEWAY) {
            ForwardPeer peer = forwardPeers.get(dstPort);
            if (peer != null && peer.guestPort == srcPort) {
                peer.lastUsed = stack.now();
                int cost = toHostCost(peer.channel, p, n);
                if (cost > 0) {
                    write(peer.channel, new DatagramPacket(p.payload(offset, n, stack.alloc), peer.remote), cost);
                    stack.counters.add(FlowCounters.Counter.UDP_TX_BYTES, n);
                }
                return;
            }
        }
        InetSocketAddress target = stack.policy.translate(NetConfig.Protocol.UDP, p.dst, dstPort);
        if (target == null) {
            stack.refused(NetConfig.Protocol.UDP, p.dst, dstPort);
            stack.icmp.unreachable(p, IcmpStage.CODE_ADMIN_PROHIBITED);
            return;
        }
        long key = ((long) p.src << 16) | srcPort;
        Flow flow = flows.get(key);
        if (flow == null) {
            if (flows.size() >= MAX_FLOWS) {
                stack.drop("too many UDP flows");
                return;
            }
            flow = new Flow(key, p.src, srcPort);
            flows.put(key, flow);
            stack.counters.increment(FlowCounters.Counter.UDP_OPENED);
            flow.open();
        }
        if (!flow.peers.containsKey(target)) {
            if (flow.peers.size() >= MAX_PEERS_PER_FLOW) {
                stack.drop("too many UDP peers for one flow");
                return;
            }
            flow.peers.put(target, new int[] {p.dst, dstPort});
        }
        flow.lastUsed = stack.now();
        if (flow.ready || flow.pending.size() < MAX_PENDING) {
            int cost = toHostCost(flow.ready ? flow.channel : null, p, n);
            if (cost > 0) {
                flow.send(new DatagramPacket(p.payload(offset, n, stack.alloc), target), cost);
                stack.counters.add(FlowCounters.Counter.UDP_TX_BYTES, n);
            }
        } else {
            stack.drop("UDP flow's socket not bound yet");
        }
    }

    /**
     * What a datagram of {@code n} bytes costs the budget, taken; 0 (counted as a drop) if it cannot go: its host
     * socket is backed up (a NAT drops then too, rather than queue without bound) or the budget is spent.
     */
    private int toHostCost(Channel ch, Packet p, int n) {
        if (ch != null && !ch.isWritable()) {
            stack.drop("host UDP socket backed up");
            return 0;
        }
        int cost = p.holds(n) + GuestDataBudget.ENTRY_COST;
        if (!stack.budget.tryTake(cost)) {
            stack.drop("user network budget spent");
            return 0;
        }
        return cost;
    }

    /** Writes a datagram whose {@code cost} is taken; the budget gets it back once the socket sent (or dropped) it. */
    private void write(Channel ch, DatagramPacket packet, int cost) {
        ch.writeAndFlush(packet).addListener(stack.budget.releaseWhenDone(cost));
    }

    private void dhcp(Packet p, int offset, int length) {
        byte[] req = new byte[length];
        p.buf.getBytes(offset, req);
        byte[] reply = DhcpServer.reply(req);
        if (reply == null) return;
        // The client has no address yet: the reply goes to the broadcast address, at the client's MAC.
        stack.link.guestMac = p.srcMac;
        toGuest(
                Inet.GATEWAY,
                DhcpServer.SERVER_PORT,
                Inet.LIMITED_BROADCAST,
                DhcpServer.CLIENT_PORT,
                io.netty.buffer.Unpooled.wrappedBuffer(reply),
                p.srcMac);
    }

    /** Sends a datagram to the guest (releases {@code data}); {@code mac} overrides the guest's MAC if not -1. */
    void toGuest(int src, int srcPort, int dst, int dstPort, ByteBuf data, long mac) {
        try {
            int n = data.readableBytes();
            if (n > MAX_PAYLOAD) {
                stack.drop("datagram of " + n + " bytes exceeds the guest MTU");
                return;
            }
            ByteBuf b = stack.ipv4.newPacket(HEADER + n);
            b.writeShort(srcPort).writeShort(dstPort).writeShort(HEADER + n).writeShort(0);
            b.writeBytes(data, data.readerIndex(), n);
            if (mac >= 0 && dst == Inet.LIMITED_BROADCAST) {
                long saved = stack.link.guestMac;
                stack.link.guestMac = mac;
                stack.ipv4.sendL4(b, Inet.PROTO_UDP, src, dst, 0, 0, HEADER);
                stack.link.guestMac = saved;
            } else {
                stack.ipv4.sendL4(b, Inet.PROTO_UDP, src, dst, 0, 0, HEADER);
            }
        } finally {
            data.release();
        }
    }

    void tick(long now) {
        for (Iterator<Flow> it = flows.values().iterator(); it.hasNext(); ) {
            Flow f = it.next();
            if (now - f.lastUsed > idleNanos) {
                it.remove();
                f.close();
            }
        }
        for (Iterator<ForwardPeer> it = forwardPeers.values().iterator(); it.hasNext(); ) {
            ForwardPeer peer = it.next();
            if (now - peer.lastUsed > idleNanos) {
                it.remove();
                forwardPeersByRemote.remove(peer.remote);
                stack.releasePort(peer.gatewayPort);
            }
        }
    }

    void closeAll() {
        for (Flow f : flows.values()) f.close();
        flows.clear();
        for (ForwardPeer peer : forwardPeers.values()) stack.releasePort(peer.gatewayPort);
        forwardPeers.clear();
        forwardPeersByRemote.clear();
    }

    /**
     * A datagram arrived at a forwarded host port: pass it to the guest from a gateway port standing for the sender.
     */
    void forwarded(Channel channel, NetConfig.HostForward forward, DatagramPacket packet) {
        try {
            if (!stack.link.attached()) return;
            InetSocketAddress remote = packet.sender();
            ForwardPeer peer = forwardPeersByRemote.get(remote);
            if (peer == null) {
                int port = stack.allocatePort();
                if (port < 0) return;
                int guestIp = forward.guestAddress().map(Inet::ip).orElse(Inet.GUEST);
                peer = new ForwardPeer(channel, remote, port, guestIp, forward.guestPort());
                forwardPeers.put(port, peer);
                forwardPeersByRemote.put(remote, peer);
            }
            peer.lastUsed = stack.now();
            stack.counters.add(
                    FlowCounters.Counter.UDP_RX_BYTES, packet.content().readableBytes());
            toGuest(
                    Inet.GATEWAY,
                    peer.gatewayPort,
                    peer.guestIp,
                    peer.guestPort,
                    packet.content().retain(),
                    -1);
        } finally {
            packet.release();
        }
    }

    private static final class ForwardPeer {
        final Channel channel;
        final InetSocketAddress remote;
        final int gatewayPort, guestIp, guestPort;
        long lastUsed;

        ForwardPeer(Channel channel, InetSocketAddress remote, int gatewayPort, int guestIp, int guestPort) {
            this.channel = channel;
            this.remote = remote;
            this.gatewayPort = gatewayPort;
            this.guestIp = guestIp;
            this.guestPort = guestPort;
        }
    }

    private record Queued(DatagramPacket packet, int cost) {}

    private void unqueue(Queued q) {
        q.packet.release();
        stack.budget.release(q.cost);
    }

    /** One guest (address, port): a host socket and the destinations it sent to, as the guest named them. */
    private final class Flow extends ChannelInboundHandlerAdapter {
        final long key;
        final int guestIp, guestPort;
        final Map<InetSocketAddress, int[]> peers = new HashMap<>();
        /** Datagrams sent before the socket was bound, with the budget each took. */
        final ArrayDeque<Queued> pending = new ArrayDeque<>();

        Channel channel;
        boolean ready, closed;
        long lastUsed;

        Flow(long key, int guestIp, int guestPort) {
            this.key = key;
            this.guestIp = guestIp;
            this.guestPort = guestPort;
        }

        void open() {
            Bootstrap b = new Bootstrap()
                    .group(stack.loop)
                    .channelFactory(stack.transport.datagram())
                    .handler(this);
            b.bind(new InetSocketAddress(0)).addListener(f -> stack.guarded("a UDP flow", () -> bound(f.isSuccess())));
        }

        private void bound(boolean success) {
            if (!success) {
                close();
                flows.remove(key, this);
                return;
            }
            ready = true;
            for (Queued q; (q = pending.poll()) != null; ) {
                if (channel.isWritable()) {
                    channel.write(q.packet).addListener(stack.budget.releaseWhenDone(q.cost));
                } else {
                    unqueue(q);
                    stack.drop("host UDP socket backed up");
                }
            }
            channel.flush();
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            channel = ctx.channel();
            if (closed) channel.close();
        }

        /** Sends a datagram whose {@code cost} the budget granted; held until the socket is bound. */
        void send(DatagramPacket packet, int cost) {
            if (ready) write(channel, packet, cost);
            else pending.add(new Queued(packet, cost));
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            DatagramPacket packet = (DatagramPacket) msg;
            int[] visible = peers.get(packet.sender());
            if (visible == null) { // not an address the guest sent to: a NAT drops it
                packet.release();
                return;
            }
            lastUsed = stack.now();
            stack.counters.add(
                    FlowCounters.Counter.UDP_RX_BYTES, packet.content().readableBytes());
            toGuest(visible[0], visible[1], guestIp, guestPort, packet.content().retain(), -1);
            packet.release();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            // ICMP errors for earlier datagrams surface here as IOExceptions; UDP carries on. Anything else is
            // what channelRead threw.
            if (!(cause instanceof java.io.IOException)) stack.failed("a UDP flow", cause);
        }

        void close() {
            if (!closed) stack.counters.increment(FlowCounters.Counter.UDP_CLOSED);
            closed = true;
            for (Queued q; (q = pending.poll()) != null; ) {
                unqueue(q);
                stack.drop("UDP flow closed before its socket was bound");
            }
            if (channel != null) channel.close();
        }
    }
}
