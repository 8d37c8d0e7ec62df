package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.VirtioNetHeader;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;

/**
 * The link to the guest: takes frames apart (vnet header, Ethernet) and hands ARP and IPv4 on; builds frames for
 * the guest and delivers them, holding a bounded backlog while the guest has no receive buffers.
 */
final class EthernetStage {
    static final long GATEWAY_MAC = 0x52550a000202L;
    static final long BROADCAST_MAC = 0xffffffffffffL;
    static final int ETH_HEADER = 14, TYPE_IPV4 = 0x0800, TYPE_ARP = 0x0806;
    /** Beyond this the backlog drops frames (TCP resends); below {@link #ROOM} TCP may emit more data. */
    private static final int BACKLOG_LIMIT = 4 << 20, ROOM = 1 << 20;

    private final UserNetStack stack;
    private final ByteBufAllocator alloc;
    private GuestPort port;
    private int hdrLen;
    private boolean csumToGuest, tsoToGuest;
    private final ArrayDeque<ByteBuf> backlog = new ArrayDeque<>();
    /** The pieces of a frame for {@link GuestPort#deliver(MemorySegment[], int)}; reused (one thread). */
    private MemorySegment[] parts = new MemorySegment[8];

    private long backlogBytes;
    /**
     * Bytes of frames that went to the guest by {@link GuestPort#deliverHeld} since its last interrupt. A burst
     * interrupts it every {@link #BURST} bytes as well, so that it starts on the first frames while later ones are
     * copied (a burst can fill all its buffers, 4 MiB).
     */
    private long heldBytes;

    private static final int BURST = 256 << 10;
    /** The guest's MAC, learned from its frames; -1 until it has sent one. */
    long guestMac = -1;

    EthernetStage(UserNetStack stack, ByteBufAllocator alloc) {
        this.stack = stack;
        this.alloc = alloc;
    }

    void attach(NetLinkConfig config, GuestPort port) {
        this.port = port;
        this.hdrLen = config.vnetHeaderLength();
        this.csumToGuest = config.toGuest().contains(NetOffload.CSUM);
        this.tsoToGuest = csumToGuest && config.toGuest().contains(NetOffload.TSO4);
    }

    void detach() {
        port = null;
        heldBytes = 0;
        while (!backlog.isEmpty()) backlog.poll().release();
        backlogBytes = 0;
        guestMac = -1;
    }

    boolean attached() {
        return port != null;
    }

    void backendFailed(String where, Throwable cause) {
        if (port != null) port.backendFailed(where, cause);
    }

    boolean partialChecksums() {
        return csumToGuest;
    }

    boolean segmentationOffload() {
        return tsoToGuest;
    }

    /** Room to queue more TCP data for the guest. */
    boolean hasRoom() {
        return port != null && backlogBytes < ROOM;
    }

    // ---- from the guest ----

    private static final ValueLayout.OfShort BE_SHORT =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);

    /**
     * How much of a guest frame ({@code hdrLen} bytes of vnet header first) is worth copying: an IPv4 packet ends
     * at its total length, and whatever the guest put after it (Ethernet padding, or 64 KB of it) is left behind.
     * Other frames, and IPv4 whose lengths do not add up (the IPv4 stage drops those), are copied whole.
     */
    static int usefulLength(MemorySegment frame, int hdrLen) {
        long len = frame.byteSize();
        int ip = hdrLen + ETH_HEADER;
        if (len >= ip + Ipv4Stage.HEADER && (frame.get(BE_SHORT, hdrLen + 12) & 0xffff) == TYPE_IPV4) {
            int total = frame.get(BE_SHORT, ip + 2) & 0xffff;
            if (total >= Ipv4Stage.HEADER && ip + total < len) return ip + total;
        }
        return (int) len;
    }

    void receive(ByteBuf f, Packet p) {
        p.reset(f);
        int base = f.readerIndex();
        if (f.readableBytes() < hdrLen + ETH_HEADER) {
            stack.drop("runt frame");
            return;
        }
        if (hdrLen > 0) {
            int flags = f.getUnsignedByte(base + VirtioNetHeader.OFF_FLAGS);
            int gso = f.getUnsignedByte(base + VirtioNetHeader.OFF_GSO_TYPE) & ~VirtioNetHeader.GSO_ECN;
            if (gso != VirtioNetHeader.GSO_NONE
                    && gso != VirtioNetHeader.GSO_TCPV4
                    && gso != VirtioNetHeader.GSO_UDP_L4) {
                stack.drop("gso type " + gso);
                return;
            }
            p.gsoType = gso;
            p.gsoSize = f.getUnsignedShortLE(base + VirtioNetHeader.OFF_GSO_SIZE);
            p.checksumTrusted = (flags & (VirtioNetHeader.F_NEEDS_CSUM | VirtioNetHeader.F_DATA_VALID)) != 0;
        }
        int eth = base + hdrLen;
        long dstMac = mac(f, eth);
        long srcMac = mac(f, eth + 6);
        if ((srcMac & 0x010000000000L) != 0 || srcMac == 0) {
            stack.drop("bad source MAC");
            return;
        }
        if (dstMac != GATEWAY_MAC && (dstMac & 0x010000000000L) == 0) {
            return; // unicast to someone else: not for this network's only other host
        }
        p.srcMac = srcMac;
        int type = f.getUnsignedShort(eth + 12);
        f.readerIndex(eth + ETH_HEADER);
        switch (type) {
            case TYPE_IPV4 -> stack.ipv4.receive(p);
            case TYPE_ARP -> stack.arp.receive(p);
            default -> {} // IPv6 and the rest: this network has none
        }
    }

    private static long mac(ByteBuf f, int off) {
        return ((long) f.getUnsignedShort(off) << 32) | f.getUnsignedInt(off + 2);
    }

    // ---- to the guest ----

    /** Headroom before an IPv4 packet: vnet header and Ethernet header. */
    int headroom() {
        return hdrLen + ETH_HEADER;
    }

    /** A buffer whose writer index sits where the L3 payload starts; {@link #send} fills in the headers. */
    ByteBuf newFrame(int l3Capacity) {
        ByteBuf b = alloc.directBuffer(headroom() + l3Capacity);
        b.writerIndex(headroom());
        return b;
    }

    /**
     * Sends the frame built in {@code b} (L3 from {@link #headroom()} on). {@code gsoType}/{@code gsoSize} and
     * {@code csumStart}/{@code csumOffset} (relative to the Ethernet header; csumStart 0 = complete checksums)
     * go into the vnet header.
     */
    void send(
            ByteBuf b,
            int type,
            long dstMac,
            int gsoType,
            int gsoSize,
            int headerLength,
            int csumStart,
            int csumOffset) {
        if (port == null) {
            b.release();
            return;
        }
        writeLinkHeaders(b, type, dstMac, gsoType, gsoSize, headerLength, csumStart, csumOffset);
        deliver(b);
    }

    /** The vnet header (offloads as for {@link #send}) and the Ethernet header at the start of {@code b}. */
    private void writeLinkHeaders(
            ByteBuf b,
            int type,
            long dstMac,
            int gsoType,
            int gsoSize,
            int headerLength,
            int csumStart,
            int csumOffset) {
        int eth = hdrLen;
        b.setShort(eth, (int) (dstMac >>> 32));
        b.setInt(eth + 2, (int) dstMac);
        b.setShort(eth + 6, (int) (GATEWAY_MAC >>> 32));
        b.setInt(eth + 8, (int) GATEWAY_MAC);
        b.setShort(eth + 12, type);
        if (hdrLen > 0) {
            b.setZero(0, hdrLen);
            if (csumStart != 0) {
                b.setByte(VirtioNetHeader.OFF_FLAGS, VirtioNetHeader.F_NEEDS_CSUM);
                b.setShortLE(VirtioNetHeader.OFF_CSUM_START, csumStart);
                b.setShortLE(VirtioNetHeader.OFF_CSUM_OFFSET, csumOffset);
            }
            if (gsoType != VirtioNetHeader.GSO_NONE) {
                b.setByte(VirtioNetHeader.OFF_GSO_TYPE, gsoType);
                b.setShortLE(VirtioNetHeader.OFF_GSO_SIZE, gsoSize);
                b.setShortLE(VirtioNetHeader.OFF_HDR_LEN, headerLength);
            }
        }
        b.readerIndex(0);
    }

    /**
     * As {@link #sendIpv4}, for an IPv4 packet whose headers are in {@code b} and whose last {@code len} bytes
     * stay in {@code data} at {@code at} ({@link Ipv4Stage#sendTcpGather}). Nothing is queued: false if the guest
     * has no receive buffer for it now (or frames wait before it), and the caller sends it again after
     * {@link #rxReady}. {@code b} is released either way.
     */
    boolean sendIpv4Gather(
            ByteBuf b,
            int dstIp,
            int gsoType,
            int gsoSize,
            int headerLength,
            int csumStart,
            int csumOffset,
            ByteBuf data,
            int at,
            int len) {
        try {
            if (port == null) return true; // gone: as if sent, TCP's state goes with the connection
            if (guestMac < 0) {
                stack.arp.request(dstIp);
                return true; // lost, as any frame before ARP answers: TCP sends it again
            }
            if (!backlog.isEmpty()) return false;
            writeLinkHeaders(b, TYPE_IPV4, guestMac, gsoType, gsoSize, headerLength, csumStart, csumOffset);
            parts[0] = view(b, b.readerIndex(), b.readableBytes());
            int count = addViews(data, at, len, 1);
            // TCP sends a window's worth at a time: the guest hears of the burst once, at interruptGuest
            long frameBytes = parts[0].byteSize() + len;
            boolean sent = port.deliverHeld(parts, count);
            java.util.Arrays.fill(parts, 0, count, null);
            if (sent && (heldBytes += frameBytes) >= BURST) interruptGuest();
            return sent;
        } finally {
            b.release();
        }
    }

    /** The end of a burst of {@link #sendIpv4Gather} frames: the guest is interrupted once for all of them. */
    void interruptGuest() {
        if (heldBytes == 0) return;
        heldBytes = 0;
        if (port != null) port.interruptGuest();
    }

    /** Views of {@code len} bytes of {@code data} at {@code at} into {@link #parts} from {@code count}: new count. */
    private int addViews(ByteBuf data, int at, int len, int count) {
        if (!(data instanceof CompositeByteBuf c) || c.numComponents() <= 1) {
            if (count == parts.length) parts = java.util.Arrays.copyOf(parts, 2 * count);
            parts[count] = view(data, at, len);
            return count + 1;
        }
        for (int end = at + len; at < end; ) { // one view per component the range crosses
            int ci = c.toComponentIndex(at), start = c.toByteIndex(ci);
            ByteBuf component = c.internalComponent(ci); // its index 0 is the composite's index start
            int n = Math.min(end - at, component.readableBytes() - (at - start));
            if (count == parts.length) parts = java.util.Arrays.copyOf(parts, 2 * count);
            parts[count++] = view(component, component.readerIndex() + at - start, n);
            at += n;
        }
        return count;
    }

    /** A view of {@code len} bytes of {@code b} at {@code at}: no copy. */
    private static MemorySegment view(ByteBuf b, int at, int len) {
        if (b.hasMemoryAddress())
            return MemorySegment.ofAddress(b.memoryAddress() + at).reinterpret(len);
        return MemorySegment.ofBuffer(b.nioBuffer(at, len));
    }

    /** Sends an IPv4 packet to the guest's MAC; without one yet, asks for it by ARP and drops the packet. */
    void sendIpv4(ByteBuf b, int dstIp, int gsoType, int gsoSize, int headerLength, int csumStart, int csumOffset) {
        long mac = dstIp == Inet.LIMITED_BROADCAST ? BROADCAST_MAC : guestMac;
        if (mac < 0) {
            b.release();
            stack.arp.request(dstIp);
            return;
        }
        send(b, TYPE_IPV4, mac, gsoType, gsoSize, headerLength, csumStart, csumOffset);
    }

    private void deliver(ByteBuf b) {
        if (backlog.isEmpty() && offer(b)) return;
        int size = b.readableBytes();
        if (backlogBytes + size > BACKLOG_LIMIT) {
            b.release();
            stack.drop("guest receive backlog full");
            return;
        }
        backlog.add(b);
        backlogBytes += size;
    }

    private boolean offer(ByteBuf b) {
        MemorySegment seg = MemorySegment.ofBuffer(b.nioBuffer(b.readerIndex(), b.readableBytes()));
        if (!port.deliver(seg)) return false;
        b.release();
        return true;
    }

    /** The guest posted receive buffers: drain the backlog, then let TCP send more. */
    void rxReady() {
        if (port == null) return;
        while (!backlog.isEmpty()) {
            ByteBuf b = backlog.peek();
            int size = b.readableBytes();
            if (!offer(b)) return;
            backlog.poll();
            backlogBytes -= size;
        }
        stack.tcp.resumeOutput();
    }
}
