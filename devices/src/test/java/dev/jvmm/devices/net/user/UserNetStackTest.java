package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.user.Frames.GUEST_MAC;
import static dev.jvmm.devices.net.user.Inet.GATEWAY;
import static dev.jvmm.devices.net.user.Inet.GUEST;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.net.FlowStats;
import dev.jvmm.devices.net.GuestPorts;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.devices.net.VirtioNetHeader;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The user-mode stack driven frame by frame, as a hostile guest would, without root or namespaces. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class UserNetStackTest {
    static final int SYN = 0x02, RST = 0x04, ACK = 0x10, FIN = 0x01, PSH = 0x08;
    final LinkedBlockingQueue<byte[]> toGuest = new LinkedBlockingQueue<>();
    UserNetBackend user;
    NetQueue queue;

    /** {@code --net user,OPTIONS}, with the host's discard port as resolver (no DNS here). */
    static NetConfig.User config(String options) {
        return (NetConfig.User) NetConfig.parse("user,resolver=127.0.0.1:9" + (options.isEmpty() ? "" : "," + options));
    }

    void start(String options) {
        user = UserNetBackend.start(config(options));
        queue = user.activate(NetLinkConfig.plain(), List.of(GuestPorts.collecting(toGuest)))
                .get(0);
    }

    @AfterEach
    void stop() {
        if (user != null) user.close();
    }

    /** Transmits as a device would: BUSY means try again once the backend has room. */
    void send(byte[] frame) throws InterruptedException {
        Frames.transmit(queue, frame);
    }

    Frames.Out next(Predicate<Frames.Out> what, long millis) throws InterruptedException {
        return Frames.next(toGuest, what, millis);
    }

    Frames.Out tcpTo(int port, long millis) throws InterruptedException {
        return next(o -> o.protocol() == 6 && o.dstPort() == port, millis);
    }

    /** The connection counters once the stack's thread has handled everything sent so far. */
    FlowStats flows() {
        user.flowCounts(); // a round trip through the stack's thread
        return user.flowStats().orElseThrow();
    }

    @Test
    void arpForTheGatewayIsAnswered() throws Exception {
        start("");
        send(Frames.arpRequest(GUEST, GATEWAY));
        Frames.Out r = next(o -> o.type() == 0x0806, 2000);
        assertNotNull(r);
        byte[] f = r.raw();
        assertEquals(2, f[14 + 7]); // reply
        assertEquals(EthernetStage.GATEWAY_MAC, java.nio.ByteBuffer.wrap(f).getLong(14 + 8 - 2) & 0xffffffffffffL);
        assertEquals(GUEST_MAC, java.nio.ByteBuffer.wrap(f).getLong(0) >>> 16);
        send(Frames.arpRequest(GUEST, Inet.ip(10, 0, 2, 77)));
        assertNull(next(o -> o.type() == 0x0806, 300), "no answer for an address nobody has");
    }

    @Test
    void echoToTheGatewayIsAnswered() throws Exception {
        start("");
        send(Frames.icmpEcho(GUEST, GATEWAY, 0x4242, 7));
        Frames.Out r = next(o -> o.protocol() == 1, 2000);
        assertNotNull(r);
        assertEquals(0, r.payload()[0]);
        assertEquals(GATEWAY, r.src());
        assertEquals(GUEST, r.dst());
        assertTrue(r.checksumOk());
        assertEquals(0x0102030405060708L, java.nio.ByteBuffer.wrap(r.payload()).getLong(8));
    }

    @Test
    void hostileFramesAreDroppedAndCountedAndTheStackCarriesOn() throws Exception {
        start("");
        byte[] syn = Frames.tcp(GUEST, GATEWAY, 40000, 1, 1000, 0, SYN, 65535, new byte[0], new byte[0]);
        List<byte[]> bad = new java.util.ArrayList<>();
        bad.add(Arrays.copyOf(syn, 20)); // IP header cut short
        byte[] ihl = syn.clone();
        ihl[14] = 0x44;
        bad.add(ihl); // IHL below 5
        byte[] total = syn.clone();
        total[16] = (byte) 0xff;
        bad.add(total); // total length beyond the frame
        byte[] ipsum = syn.clone();
        ipsum[24] ^= 1;
        bad.add(ipsum); // bad header checksum
        byte[] frag = syn.clone();
        frag[20] = 0x20;
        bad.add(fixIpChecksum(frag)); // more fragments
        byte[] tcpsum = syn.clone();
        tcpsum[syn.length - 1] ^= 1;
        bad.add(tcpsum); // bad TCP checksum
        byte[] doff = syn.clone();
        doff[14 + 20 + 12] = (byte) 0xf0;
        bad.add(doff); // data offset beyond the segment
        byte[] udp = Frames.udp(GUEST, GATEWAY, 5000, 9, new byte[10]);
        byte[] udplen = udp.clone();
        udplen[14 + 20 + 4] = 0x7f;
        bad.add(udplen); // UDP length beyond the packet
        byte[] udpsum = udp.clone();
        udpsum[udp.length - 1] ^= 1;
        bad.add(udpsum);
        bad.add(Arrays.copyOf(Frames.arpRequest(GUEST, GATEWAY), 30)); // truncated ARP
        byte[] spoof = Frames.icmpEcho(Inet.ip(192, 168, 1, 1), GATEWAY, 1, 1);
        bad.add(spoof); // source outside the network
        byte[] badOpt = Frames.tcp(GUEST, GATEWAY, 40001, 1, 1, 0, SYN, 100, new byte[] {2, 9, 0, 0}, new byte[0]);
        bad.add(badOpt); // MSS option whose length runs off the header
        long before = user.droppedFrames();
        for (byte[] f : bad) send(f);
        assertEquals(TxResult.DROPPED, queue.transmit(MemorySegment.ofArray(new byte[5])));
        Random random = new Random(11);
        for (int i = 0; i < 3000; i++) {
            byte[] f = (i % 2 == 0 ? syn : udp).clone();
            for (int k = 0; k < 4; k++) f[random.nextInt(f.length)] = (byte) random.nextInt();
            send(Arrays.copyOf(f, 14 + random.nextInt(f.length - 13)));
        }
        send(Frames.arpRequest(GUEST, GATEWAY));
        assertNotNull(next(o -> o.type() == 0x0806, 5000), "the stack still answers after the garbage");
        assertTrue(user.droppedFrames() - before >= bad.size() + 1, "dropped " + (user.droppedFrames() - before));
        assertNull(
                next(o -> o.protocol() == 6 && o.srcPort() == 1 && (o.flags() & SYN) != 0, 300),
                "no SYN-ACK for a malformed SYN");
    }

    static byte[] fixIpChecksum(byte[] f) {
        f[24] = 0;
        f[25] = 0;
        int c = Frames.checksum(f, 14, 20, 0);
        f[24] = (byte) (c >>> 8);
        f[25] = (byte) c;
        return f;
    }

    @Test
    void synToARefusedAddressAndStraySegmentsGetResets() throws Exception {
        start("");
        send(Frames.tcp(GUEST, Inet.ip(127, 0, 0, 1), 40000, 80, 5000, 0, SYN, 65535, new byte[0], new byte[0]));
        Frames.Out r = tcpTo(40000, 2000);
        assertNotNull(r);
        assertEquals(RST | ACK, r.flags());
        assertEquals(5001, r.ack());
        assertTrue(r.checksumOk());
        send(Frames.tcp(GUEST, GATEWAY, 40001, 80, 5000, 777, ACK, 65535, new byte[0], new byte[0]));
        r = tcpTo(40001, 2000);
        assertNotNull(r);
        assertEquals(RST, r.flags());
        assertEquals(777, r.seq());
    }

    @Test
    void nothingAnswersForABroadcastOrMulticastAddress() throws Exception {
        start("");
        // No reset and no ICMP error may come from such an address (RFC 1122 3.2.2, 4.2.3.10).
        for (int dst : new int[] {Inet.BROADCAST, Inet.LIMITED_BROADCAST, Inet.ip(224, 0, 0, 1), Inet.ip(0, 1, 2, 3)}) {
            send(Frames.tcp(GUEST, dst, 40000, 80, 5000, 0, SYN, 65535, new byte[0], new byte[0]));
            send(Frames.icmpEcho(GUEST, dst, 5, 1));
            send(Frames.udp(GUEST, dst, 40000, 9, new byte[4]));
        }
        assertNull(next(o -> o.type() == 0x0800, 500), "an answer from a broadcast or multicast address");
        send(Frames.icmpEcho(GUEST, Inet.ip(127, 0, 0, 1), 5, 1));
        assertNotNull(next(o -> o.protocol() == 1, 2000), "a refused unicast address is still answered");
    }

    @Test
    void anEchoWhoseReplyWouldExceedTheMtuGetsNone() throws Exception {
        start("");
        for (int size : new int[] {1481, 1480}) { // ICMP message sizes: 1480 fills a 1500-byte IP packet
            byte[] m = new byte[size];
            m[0] = 8;
            m[5] = (byte) size;
            int c = Frames.checksum(m, 0, m.length, 0);
            m[2] = (byte) (c >>> 8);
            m[3] = (byte) c;
            send(Frames.ethernet(EthernetStage.GATEWAY_MAC, 0x0800, Frames.ipv4(GUEST, GATEWAY, 1, m)));
        }
        Frames.Out r = next(o -> o.protocol() == 1, 2000);
        assertNotNull(r);
        assertEquals(1480, r.payload().length, "only the echo that fits the MTU is answered");
        assertNull(next(o -> o.protocol() == 1, 300));
    }

    @Test
    void restrictRefusesTcpAndUdpToTheHost() throws Exception {
        start("restrict=on");
        send(Frames.tcp(GUEST, GATEWAY, 40000, 22, 1, 0, SYN, 65535, new byte[0], new byte[0]));
        Frames.Out r = tcpTo(40000, 2000);
        assertNotNull(r);
        assertEquals(RST | ACK, r.flags());
        send(Frames.udp(GUEST, Inet.DNS, 5353, 53, new byte[12]));
        Frames.Out u = next(o -> o.protocol() == 1, 2000);
        assertNotNull(u);
        assertEquals(3, u.payload()[0]);
        assertEquals(13, u.payload()[1]);
        assertTrue(u.checksumOk());
        assertEquals(new FlowStats(0, 0, 1, 0, 0, 2, 0, 0, 0, 0), flows(), "one refused connection, two NAT refusals");
    }

    @Test
    void aConnectionTheHostRefusesIsCountedRefusedNotByTheNat() throws Exception {
        start("hostloopback=on");
        int closed;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        send(Frames.tcp(GUEST, GATEWAY, 40000, closed, 1, 0, SYN, 65535, new byte[0], new byte[0]));
        Frames.Out r = tcpTo(40000, 3000);
        assertNotNull(r);
        assertEquals(RST | ACK, r.flags(), "the host's refusal, passed on");
        FlowStats f = flows();
        assertEquals(1, f.tcpRefused(), f.toString());
        assertEquals(0, f.natRefused(), f.toString());
        assertEquals(0, f.tcpOpened(), f.toString());
    }

    @Test
    void byDefaultTheGatewaysPortsAreClosedToTheGuest() throws Exception {
        start("");
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                DatagramSocket udpServer = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            send(Frames.tcp(GUEST, GATEWAY, 40000, server.getLocalPort(), 1, 0, SYN, 65535, new byte[0], new byte[0]));
            Frames.Out r = tcpTo(40000, 2000);
            assertNotNull(r);
            assertEquals(RST | ACK, r.flags(), "refused as a closed port is");
            send(Frames.udp(
                    GUEST, GATEWAY, 5555, udpServer.getLocalPort(), "ping".getBytes(StandardCharsets.US_ASCII)));
            Frames.Out u = next(o -> o.protocol() == 1, 2000);
            assertNotNull(u);
            assertEquals(3, u.payload()[0]);
            assertEquals(13, u.payload()[1], "administratively prohibited");
            server.setSoTimeout(200);
            assertThrows(java.net.SocketTimeoutException.class, server::accept, "nothing reached the host's loopback");
            udpServer.setSoTimeout(200);
            assertThrows(
                    java.net.SocketTimeoutException.class,
                    () -> udpServer.receive(new DatagramPacket(new byte[10], 10)));
        }
        FlowStats f = flows();
        assertEquals(2, f.natRefused(), f.toString());
        assertEquals(1, f.tcpRefused(), f.toString());
        assertEquals(0, f.tcpOpened() + f.udpFlowsOpened(), f.toString());
    }

    @Test
    void aGuestfwdAddressAnswersArpAndItsPortReachesTheHostService() throws Exception {
        int forward = Inet.ip(10, 0, 2, 100);
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            start("guestfwd=tcp:10.0.2.100:8080-127.0.0.1:" + server.getLocalPort());
            send(Frames.arpRequest(GUEST, forward));
            Frames.Out arp = next(o -> o.type() == 0x0806, 2000);
            assertNotNull(arp, "the guest finds 10.0.2.100 on its link");
            assertEquals(
                    forward, java.nio.ByteBuffer.wrap(arp.raw()).getInt(14 + 14), "the reply says who has 10.0.2.100");
            send(Frames.tcp(GUEST, forward, 40000, 8080, 1, 0, SYN, 65535, new byte[0], new byte[0]));
            Frames.Out synAck = tcpTo(40000, 3000);
            assertNotNull(synAck);
            assertEquals(SYN | ACK, synAck.flags());
            assertEquals(forward, synAck.src());
            server.setSoTimeout(5000);
            server.accept().close();
            send(Frames.tcp(GUEST, forward, 40001, 8081, 1, 0, SYN, 65535, new byte[0], new byte[0]));
            Frames.Out other = tcpTo(40001, 2000);
            assertNotNull(other);
            assertEquals(RST | ACK, other.flags(), "only the forwarded port");
        }
    }

    @Test
    void udpFlowsReachTheHostAndOnlyItsAnswersComeBack() throws Exception {
        start("hostloopback=on");
        try (DatagramSocket server = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(5000);
            send(Frames.udp(GUEST, GATEWAY, 5555, server.getLocalPort(), "ping".getBytes(StandardCharsets.US_ASCII)));
            DatagramPacket p = new DatagramPacket(new byte[100], 100);
            server.receive(p);
            assertEquals("ping", new String(p.getData(), 0, p.getLength(), StandardCharsets.US_ASCII));
            server.send(new DatagramPacket("pong".getBytes(StandardCharsets.US_ASCII), 4, p.getSocketAddress()));
            Frames.Out r = next(o -> o.protocol() == 17, 3000);
            assertNotNull(r);
            assertEquals(GATEWAY, r.src());
            assertEquals(server.getLocalPort(), r.srcPort());
            assertEquals(5555, r.dstPort());
            assertEquals("pong", new String(r.payload(), StandardCharsets.US_ASCII));
            assertTrue(r.checksumOk());
            try (DatagramSocket stranger = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
                stranger.send(new DatagramPacket(new byte[4], 4, p.getSocketAddress()));
            }
            assertNull(next(o -> o.protocol() == 17, 300), "a host the guest never sent to cannot reach it");
        }
        FlowStats f = flows();
        assertEquals(1, f.udpFlowsOpened(), f.toString());
        assertEquals(1, f.udpFlowsCurrent(), f.toString());
        assertEquals(4, f.udpTxBytes(), "ping: " + f);
        assertEquals(4, f.udpRxBytes(), "pong, and not the stranger's datagram: " + f);
        user.deactivate(); // the driver's reset closes every flow
        assertEquals(0, user.flowStats().orElseThrow().udpFlowsCurrent());
    }

    /** A frame with a 12-byte vnet header asking for nothing (its checksums are complete). */
    static byte[] vnet(byte[] frame) {
        byte[] f = new byte[12 + frame.length];
        System.arraycopy(frame, 0, f, 12, frame.length);
        return f;
    }

    @Test
    void hostBytesReachATsoGuestInLargeSegmentsWithPartialChecksumsAndArriveWhole() throws Exception {
        hostBytesReachATsoGuest(GuestPorts.collecting(toGuest));
    }

    /** The stack holds a burst's interrupt back ({@code deliverHeld}) but always sends it at the burst's end. */
    @Test
    void aGuestThatLooksOnlyWhenInterruptedSeesEveryBurstWhole() throws Exception {
        hostBytesReachATsoGuest(GuestPorts.interruptDriven(toGuest));
    }

    private void hostBytesReachATsoGuest(dev.jvmm.devices.net.GuestPort guest) throws Exception {
        user = UserNetBackend.start(config("hostloopback=on"));
        NetLinkConfig tso = new NetLinkConfig(12, java.util.EnumSet.of(NetOffload.CSUM, NetOffload.TSO4));
        queue = user.activate(tso, List.of(guest)).get(0);
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(5000);
            int port = server.getLocalPort(), iss = 7000;
            byte[] synOptions = {2, 4, 0x05, (byte) 0xb4, 1, 3, 3, 7}; // MSS 1460, window scale 7
            send(vnet(Frames.tcp(GUEST, GATEWAY, 40000, port, iss, 0, SYN, 65535, synOptions, new byte[0])));
            byte[] synAck = nextVnetTcp(3000);
            assertNotNull(synAck);
            int ours = Frames.Out.parse(Arrays.copyOfRange(synAck, 12, synAck.length))
                            .seq()
                    + 1;
            send(vnet(Frames.tcp(GUEST, GATEWAY, 40000, port, iss + 1, ours, ACK, 65535, new byte[0], new byte[0])));
            byte[] sent = new byte[300_000];
            new Random(17).nextBytes(sent);
            try (Socket host = server.accept()) {
                host.getOutputStream().write(sent);
                java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
                int large = 0;
                while (got.size() < sent.length) {
                    byte[] f = nextVnetTcp(5000);
                    assertNotNull(f, "the host's bytes stopped after " + got.size());
                    java.nio.ByteBuffer h = java.nio.ByteBuffer.wrap(f).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    Frames.Out o = Frames.Out.parse(Arrays.copyOfRange(f, 12, f.length));
                    if (o.payload().length == 0 || o.seq() != ours + got.size()) continue;
                    assertEquals(VirtioNetHeader.F_NEEDS_CSUM, f[0], "checksum left to the guest");
                    assertEquals(14 + 20, h.getShort(6), "csum_start: the TCP header");
                    assertEquals(16, h.getShort(8), "csum_offset: TCP's checksum field");
                    int l4 = 12 + 14 + 20, l4Length = f.length - l4;
                    int partial = ((f[l4 + 16] & 0xff) << 8) | (f[l4 + 17] & 0xff);
                    long p = Frames.pseudo(GATEWAY, GUEST, 6, l4Length);
                    while ((p >>> 16) != 0) p = (p & 0xffff) + (p >>> 16);
                    assertEquals(p, partial, "the checksum field holds the pseudo-header's sum");
                    if (o.payload().length > 1460) {
                        large++;
                        assertEquals(VirtioNetHeader.GSO_TCPV4, f[1], "gso_type");
                        assertEquals(1460, h.getShort(4), "gso_size: the guest's MSS");
                        assertEquals(14 + 20 + 20, h.getShort(2), "hdr_len");
                        assertTrue(o.payload().length <= 65535 - 40, "one IPv4 packet");
                    } else assertEquals(0, f[1], "no GSO for a segment within the MSS");
                    got.write(o.payload());
                    int ack = ours + got.size();
                    send(vnet(Frames.tcp(
                            GUEST, GATEWAY, 40000, port, iss + 1, ack, ACK, 65535, new byte[0], new byte[0])));
                }
                assertArrayEquals(sent, got.toByteArray());
                assertTrue(large > 0, "no segment above the MSS");
            }
        }
    }

    /** The next TCP frame for the guest, vnet header included. */
    byte[] nextVnetTcp(long millis) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        for (byte[] f; (f = toGuest.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) != null; )
            if (f.length > 12 + 14 + 40 && f[12 + 12] == 8 && f[12 + 13] == 0 && f[12 + 14 + 9] == 6) return f;
        return null;
    }

    @Test
    void tcpHandshakeDataRetransmissionAndReset() throws Exception {
        start("hostloopback=on");
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(5000);
            int port = server.getLocalPort();
            int iss = 1_000_000;
            send(Frames.tcp(
                    GUEST,
                    GATEWAY,
                    40000,
                    port,
                    iss,
                    0,
                    SYN,
                    65535,
                    new byte[] {2, 4, 0x05, (byte) 0xb4},
                    new byte[0]));
            Frames.Out synAck = tcpTo(40000, 3000);
            assertNotNull(synAck);
            assertEquals(SYN | ACK, synAck.flags());
            assertEquals(iss + 1, synAck.ack());
            assertTrue(synAck.checksumOk());
            int ours = synAck.seq() + 1;
            send(Frames.tcp(GUEST, GATEWAY, 40000, port, iss + 1, ours, ACK, 65535, new byte[0], new byte[0]));
            try (Socket host = server.accept()) {
                host.setSoTimeout(5000);
                host.getOutputStream().write("abc".getBytes(StandardCharsets.US_ASCII));
                Frames.Out data = next(o -> o.protocol() == 6 && o.payload().length > 0, 3000);
                assertNotNull(data);
                assertEquals(ours, data.seq());
                assertEquals("abc", new String(data.payload(), StandardCharsets.US_ASCII));
                // Not acknowledged: the same bytes come again after the retransmission timeout.
                Frames.Out again = next(o -> o.protocol() == 6 && o.payload().length > 0, 3000);
                assertNotNull(again, "no retransmission");
                assertEquals(ours, again.seq());
                assertEquals("abc", new String(again.payload(), StandardCharsets.US_ASCII));
                // Guest data, acknowledging ours; then data out of order, which must not reach the host.
                send(Frames.tcp(
                        GUEST,
                        GATEWAY,
                        40000,
                        port,
                        iss + 1,
                        ours + 3,
                        ACK | PSH,
                        65535,
                        new byte[0],
                        "xyz".getBytes(StandardCharsets.US_ASCII)));
                Frames.Out ack = next(o -> o.protocol() == 6 && o.ack() == iss + 4, 3000);
                assertNotNull(ack);
                InputStream in = host.getInputStream();
                assertEquals("xyz", new String(in.readNBytes(3), StandardCharsets.US_ASCII));
                send(Frames.tcp(
                        GUEST,
                        GATEWAY,
                        40000,
                        port,
                        iss + 10,
                        ours + 3,
                        ACK | PSH,
                        65535,
                        new byte[0],
                        "zzz".getBytes(StandardCharsets.US_ASCII)));
                Frames.Out dup = next(o -> o.protocol() == 6 && o.payload().length == 0, 3000);
                assertNotNull(dup);
                assertEquals(iss + 4, dup.ack(), "a duplicate ACK for the hole");
                // A reset outside the window is ignored; one at rcv.nxt resets the host's side.
                send(Frames.tcp(GUEST, GATEWAY, 40000, port, iss + 4 + (1 << 30), 0, RST, 0, new byte[0], new byte[0]));
                host.getOutputStream().write('!');
                assertNotNull(
                        next(o -> o.protocol() == 6 && o.payload().length == 1, 3000),
                        "connection survived a blind reset");
                send(Frames.tcp(GUEST, GATEWAY, 40000, port, iss + 4, 0, RST, 0, new byte[0], new byte[0]));
                SocketException e = assertThrows(SocketException.class, () -> {
                    int b = in.read();
                    if (b < 0) throw new AssertionError("EOF instead of a reset");
                });
                assertTrue(e.getMessage().toLowerCase().contains("reset"), e.getMessage());
            }
        }
        assertEquals(0, user.flowCounts()[0]);
        // One connection opened and reset; "xyz" went to the host (the out-of-order "zzz" did not), "abc" and "!"
        // came from it (each counted once, however often it was retransmitted).
        assertEquals(new FlowStats(1, 1, 0, 0, 0, 0, 3, 4, 0, 0), flows());
    }

    /** Payloads of segments to the guest's {@code port}, in order, until a FIN; null if the FIN does not come. */
    String receiveUntilFin(int port, int expectedSeq) throws InterruptedException {
        StringBuilder got = new StringBuilder();
        int seq = expectedSeq;
        for (; ; ) {
            Frames.Out o = tcpTo(port, 3000);
            if (o == null) return null;
            if (o.seq() != seq) continue; // a retransmission
            got.append(new String(o.payload(), StandardCharsets.US_ASCII));
            seq += o.payload().length;
            if ((o.flags() & FIN) != 0) return got.toString();
        }
    }

    @Test
    void hostBytesAndFinThatArriveBeforeTheGuestCompletesTheHandshakeReachTheGuest() throws Exception {
        start("hostloopback=on");
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(5000);
            int port = server.getLocalPort();
            send(Frames.tcp(GUEST, GATEWAY, 40000, port, 1, 0, SYN, 65535, new byte[0], new byte[0]));
            Frames.Out synAck = tcpTo(40000, 3000);
            assertNotNull(synAck);
            try (Socket host = server.accept()) {
                // The host speaks first and half-closes while the guest's ACK is still on its way.
                host.getOutputStream().write("banner".getBytes(StandardCharsets.US_ASCII));
                host.shutdownOutput();
                Thread.sleep(300);
                send(Frames.tcp(
                        GUEST, GATEWAY, 40000, port, 2, synAck.seq() + 1, ACK, 65535, new byte[0], new byte[0]));
                assertEquals("banner", receiveUntilFin(40000, synAck.seq() + 1));
            }
        }
    }

    @Test
    void forwardedClientBytesAndFinSentBeforeTheGuestAnswersReachTheGuest() throws Exception {
        start("hostfwd=tcp:127.0.0.1:0-:8080");
        send(Frames.arpRequest(GUEST, GATEWAY)); // the stack learns the guest's MAC
        assertNotNull(next(o -> o.type() == 0x0806, 2000));
        try (Socket client = new Socket()) {
            client.connect(user.forwardAddresses().get(0), 5000);
            client.getOutputStream().write("hello guest".getBytes(StandardCharsets.US_ASCII));
            client.shutdownOutput();
            Frames.Out syn = tcpTo(8080, 3000);
            assertNotNull(syn);
            assertEquals(SYN, syn.flags());
            Thread.sleep(300); // the client's bytes and FIN reach the stack before the guest answers
            send(Frames.tcp(
                    GUEST,
                    GATEWAY,
                    8080,
                    syn.srcPort(),
                    5000,
                    syn.seq() + 1,
                    SYN | ACK,
                    65535,
                    new byte[0],
                    new byte[0]));
            assertEquals("hello guest", receiveUntilFin(8080, syn.seq() + 1));
        }
        FlowStats f = flows();
        assertEquals(1, f.tcpOpened(), "the forwarded connection, once the guest answered: " + f);
        assertEquals(11, f.tcpRxBytes(), f.toString());
    }

    @Test
    void guestBytesQueuedForASlowHostReaderOutliveTimeWait() throws Exception {
        start("hostloopback=on");
        try (ServerSocket server = new ServerSocket()) {
            server.setReceiveBufferSize(
                    4096); // the accepted socket takes little, so the stack's channel holds the rest
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 1);
            server.setSoTimeout(5000);
            int port = server.getLocalPort();
            send(Frames.tcp(GUEST, GATEWAY, 40000, port, 0, 0, SYN, 65535, new byte[] {1, 3, 3, 7}, new byte[0]));
            Frames.Out synAck = tcpTo(40000, 3000);
            assertNotNull(synAck);
            int ours = synAck.seq() + 1;
            send(Frames.tcp(GUEST, GATEWAY, 40000, port, 1, ours, ACK, 65535, new byte[0], new byte[0]));
            try (Socket host = server.accept()) {
                // Push until the stack's window closes: the host does not read yet.
                int next = 1, stalls = 0;
                byte[] chunk = new byte[60000];
                while (stalls < 2 && next - 1 < (16 << 20)) {
                    for (int i = 0; i < chunk.length; i++) chunk[i] = (byte) ((next - 1 + i) % 251);
                    send(Frames.tcp(GUEST, GATEWAY, 40000, port, next, ours, ACK, 65535, new byte[0], chunk));
                    Frames.Out a =
                            next(o -> o.protocol() == 6 && o.dstPort() == 40000 && o.payload().length == 0, 1000);
                    int acked = a == null ? next : a.ack();
                    stalls = acked - next < chunk.length ? stalls + 1 : 0;
                    if (acked - next > 0) next = acked;
                }
                int total = next - 1;
                assertTrue(total > (1 << 20), "the stack took only " + total + " bytes");
                host.shutdownOutput();
                Frames.Out fin = next(o -> o.protocol() == 6 && o.dstPort() == 40000 && (o.flags() & FIN) != 0, 3000);
                assertNotNull(fin);
                send(Frames.tcp(
                        GUEST, GATEWAY, 40000, port, next, ours + 1, FIN | ACK, 65535, new byte[0], new byte[0]));
                Thread.sleep(3000); // TIME_WAIT runs out while most bytes still wait for the host to read them
                host.setSoTimeout(10_000);
                byte[] got = host.getInputStream().readAllBytes();
                assertEquals(total, got.length, "bytes the host received");
                for (int i = 0; i < got.length; i++) {
                    if (got[i] != (byte) (i % 251)) throw new AssertionError("byte " + i + " differs");
                }
            }
        }
        assertEquals(0, user.flowCounts()[0]);
    }

    @Test
    void aGuestThatTakesNoFramesMakesTheStackStopReadingTheHost() throws Exception {
        user = UserNetBackend.start(config("hostloopback=on"));
        java.util.concurrent.atomic.AtomicBoolean accepting = new java.util.concurrent.atomic.AtomicBoolean(true);
        queue = user.activate(NetLinkConfig.plain(), List.of(GuestPorts.collecting(toGuest, accepting::get)))
                .get(0);
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            int port = server.getLocalPort();
            send(Frames.tcp(GUEST, GATEWAY, 40000, port, 1, 0, SYN, 65535, new byte[] {3, 3, 14, 0}, new byte[0]));
            Frames.Out synAck = tcpTo(40000, 3000);
            assertNotNull(synAck);
            // A huge window (65535 << 14): only the missing rx buffers hold the stack back.
            send(Frames.tcp(GUEST, GATEWAY, 40000, port, 2, synAck.seq() + 1, ACK, 65535, new byte[0], new byte[0]));
            accepting.set(false);
            try (Socket host = server.accept()) {
                host.setSendBufferSize(64 << 10);
                Thread writer = Thread.ofPlatform().daemon().start(() -> {
                    try {
                        host.getOutputStream().write(new byte[64 << 20]);
                    } catch (IOException ignored) {
                        // the socket closes at the end of the test
                    }
                });
                writer.join(2000);
                assertTrue(writer.isAlive(), "64 MiB went somewhere although the guest took nothing");
            }
        }
    }
}
