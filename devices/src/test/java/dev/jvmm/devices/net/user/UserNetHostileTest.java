package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.user.Inet.GATEWAY;
import static dev.jvmm.devices.net.user.Inet.GUEST;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.net.GuestPorts;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.devices.net.VirtioNetHeader;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.socket.nio.NioDatagramChannel;
import java.lang.foreign.MemorySegment;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What a hostile guest can make the user network hold on the host. Direct memory is measured on an unpooled
 * allocator of the test's own, which counts every byte the stack keeps alive.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class UserNetHostileTest {
    static final int SYN = 0x02, RST = 0x04, ACK = 0x10;
    static final int GUEST_PORT = 40000;
    final LinkedBlockingQueue<byte[]> toGuest = new LinkedBlockingQueue<>();
    final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(true);
    final List<Throwable> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
    UserNetBackend user;
    NetQueue queue;

    void start(Tuning tuning) {
        user = UserNetBackend.start(
                UserNetStackTest.config("hostloopback=on"),
                PingSocketHost.factory(alloc, PingSocketHost::openInCurrentNamespace),
                tuning.withAlloc(alloc));
        queue = user.activate(NetLinkConfig.plain(), List.of(GuestPorts.collecting(toGuest, () -> true, failures)))
                .get(0);
    }

    @AfterEach
    void stop() {
        if (user != null) user.close();
        assertEquals(List.of(), failures, "failures the stack reported");
    }

    long directBytes() {
        return alloc.metric().usedDirectMemory();
    }

    void send(byte[] frame) throws InterruptedException {
        TxResult r;
        for (int i = 0; (r = queue.transmit(MemorySegment.ofArray(frame))) == TxResult.BUSY && i < 500; i++)
            Thread.sleep(10);
        assertEquals(TxResult.SENT, r);
    }

    Frames.Out next(Predicate<Frames.Out> what, long millis) throws InterruptedException {
        return Frames.next(toGuest, what, millis);
    }

    /** A guest connection to a host server that never reads; the guest's sequence numbers and the last ACK seen. */
    final class Connection {
        final int guestPort, port;
        final int ours;
        int next = 1;
        Frames.Out lastAck;

        Connection(int guestPort, int port) throws InterruptedException {
            this.guestPort = guestPort;
            this.port = port;
            // Window scaling 7 from the guest: the stack scales its window by 7 as well.
            send(Frames.tcp(GUEST, GATEWAY, guestPort, port, 0, 0, SYN, 65535, new byte[] {1, 3, 3, 7}, new byte[0]));
            Frames.Out synAck = next(o -> o.protocol() == 6 && o.dstPort() == guestPort, 3000);
            assertNotNull(synAck);
            ours = synAck.seq() + 1;
            send(segment(next, new byte[0]));
        }

        byte[] segment(int seq, byte[] data) {
            return Frames.tcp(GUEST, GATEWAY, guestPort, port, seq, ours, ACK, 65535, new byte[0], data);
        }

        /** The window the stack offers now, in bytes. */
        long window() {
            return lastAck == null ? Long.MAX_VALUE : (long) lastAck.window() << TcpConnection.RCV_WSCALE;
        }

        /**
         * Waits for the stack to acknowledge everything up to {@code seq}; false if it did not within half a second.
         */
        boolean awaitAck(int seq) throws InterruptedException {
            for (; ; ) {
                Frames.Out a = next(o -> o.protocol() == 6 && o.dstPort() == guestPort, 500);
                if (a == null) return false;
                lastAck = a;
                if (a.ack() - seq >= 0) return true;
            }
        }

        /**
         * Sends 60,000-byte segments until the stack holds {@code pending} bytes for the host itself (the host
         * socket's kernel buffers are full): its offered window shrinks by what it holds. Returns false if the
         * window closed first.
         */
        boolean fillUntilTheStackHolds(long pending) throws InterruptedException {
            return fill(() -> window() < TcpConnection.HOST_HIGH_WATER - pending);
        }

        /** Sends 60,000-byte segments until the stack's window stays shut; true if {@code enough} said stop first. */
        boolean fill(java.util.function.BooleanSupplier enough) throws InterruptedException {
            byte[] chunk = new byte[60000];
            for (int stalls = 0; stalls < 3; ) {
                if (enough.getAsBoolean()) return true;
                send(segment(next, chunk));
                if (awaitAck(next + chunk.length)) {
                    next += chunk.length;
                    stalls = 0;
                } else {
                    if (lastAck != null && lastAck.ack() - next > 0) next = lastAck.ack();
                    stalls++;
                }
            }
            return false;
        }
    }

    @Test
    void aOneByteSegmentInAPaddedFrameKeepsOnlyItsByte() throws Exception {
        start(Tuning.defaults());
        try (ServerSocket server = new ServerSocket()) {
            server.setReceiveBufferSize(4096);
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 1);
            server.setSoTimeout(5000);
            Connection c = new Connection(GUEST_PORT, server.getLocalPort());
            try (Socket host = server.accept()) {
                assertTrue(c.fillUntilTheStackHolds(512 << 10), "the host socket's buffers never filled");
                long before = directBytes();
                // 1500 one-byte segments, each at the start of a 65,000-byte frame whose IP total length says 41.
                for (int i = 0; i < 1500; i++) send(Arrays.copyOf(c.segment(c.next + i, new byte[] {'x'}), 65000));
                assertTrue(c.awaitAck(c.next + 1500), "the stack took the 1500 bytes");
                long pinned = directBytes() - before;
                assertTrue(pinned < 64 << 10, "1500 bytes of data pin " + (pinned >> 10) + " KiB of direct memory");
            }
        }
    }

    /** A loopback server whose accepted sockets take little (4 KiB receive buffer) and are never read here. */
    static ServerSocket slowServer() throws java.io.IOException {
        ServerSocket server = new ServerSocket();
        server.setReceiveBufferSize(4096);
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 4);
        server.setSoTimeout(5000);
        return server;
    }

    /**
     * The other direction: hosts that send as fast as they can to a guest that never acknowledges. Each connection
     * stops reading at 4 MiB of its own; the network's limit stops them all far sooner, and acknowledging frees
     * room that the waiting connections read into again.
     */
    @Test
    void theBudgetBoundsWhatTheStackHoldsFromHostsForAGuestThatNeverAcknowledges() throws Exception {
        long budget = 1 << 20;
        int connections = 4;
        start(Tuning.defaults().withBudget(budget));
        try (ServerSocket server = new ServerSocket()) {
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), connections);
            server.setSoTimeout(5000);
            List<Socket> hosts = new java.util.ArrayList<>();
            List<Connection> guest = new java.util.ArrayList<>();
            try {
                for (int i = 0; i < connections; i++) {
                    guest.add(new Connection(GUEST_PORT + i, server.getLocalPort()));
                    Socket host = server.accept();
                    hosts.add(host);
                    Thread.ofPlatform().daemon().start(() -> {
                        byte[] chunk = new byte[64 << 10];
                        try {
                            while (true) host.getOutputStream().write(chunk);
                        } catch (java.io.IOException closed) {
                            // the test is over
                        }
                    });
                }
                long held = heldOnceSteady();
                assertTrue(
                        held < budget + (1 << 20),
                        connections + " connections hold " + (held >> 10) + " KiB from hosts with a budget of "
                                + (budget >> 10) + " KiB (each may hold 4 MiB alone)");
                // The guest acknowledges what it got on its first connection: the stack reads from hosts again.
                long received = 0;
                int end = guest.get(0).ours;
                for (Frames.Out o; (o = next(f -> f.protocol() == 6, 200)) != null; ) {
                    if (o.dstPort() != GUEST_PORT || o.payload().length == 0) continue;
                    received += o.payload().length;
                    if (o.seq() + o.payload().length - end > 0) end = o.seq() + o.payload().length;
                }
                assertTrue(received > 0, "the guest got no data on its first connection");
                Connection first = guest.get(0);
                send(Frames.tcp(
                        GUEST,
                        GATEWAY,
                        first.guestPort,
                        first.port,
                        first.next,
                        end,
                        ACK,
                        65535,
                        new byte[0],
                        new byte[0]));
                Frames.Out more = next(f -> f.protocol() == 6 && f.payload().length > 0, 5000);
                assertNotNull(more, "no more host data after the guest acknowledged " + (received >> 10) + " KiB");
            } finally {
                for (Socket h : hosts) h.close();
            }
        }
    }

    /** Direct memory the stack holds once it has stopped growing (no growth for a second; at most 20 s). */
    long heldOnceSteady() throws InterruptedException {
        long last = -1;
        for (int steady = 0, rounds = 0; steady < 10 && rounds < 200; rounds++) {
            Thread.sleep(100);
            long now = directBytes();
            steady = now == last ? steady + 1 : 0;
            last = now;
        }
        return last;
    }

    @Test
    void theBudgetBoundsWhatTheStackHoldsForHostsThatDoNotReadAcrossConnections() throws Exception {
        long budget = 1 << 20;
        start(Tuning.defaults().withBudget(budget));
        try (ServerSocket server = slowServer()) {
            Connection a = new Connection(GUEST_PORT, server.getLocalPort());
            try (Socket hostA = server.accept()) {
                // The window closes at the budget, long before the host socket's 4 MiB high water mark.
                assertFalse(a.fill(() -> directBytes() > 2 * budget), "the stack held 2 MiB for one connection");
                Connection b = new Connection(GUEST_PORT + 1, server.getLocalPort());
                try (Socket hostB = server.accept()) {
                    b.fill(() -> false);
                    long held = directBytes();
                    assertTrue(
                            held < budget + (128 << 10),
                            "two connections hold " + (held >> 10) + " KiB with a budget of " + (budget >> 10));
                    assertTrue(b.window() < 64 << 10, "the second connection's window is " + b.window());
                }
            }
        }
    }

    @Test
    void idleFlowsEndAfterTheirIdleTime() throws Exception {
        start(Tuning.defaults().withIdle(Duration.ofMillis(300), Duration.ofMillis(300)));
        try (ServerSocket server = slowServer();
                DatagramSocket udpServer = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            send(Frames.udp(GUEST, GATEWAY, 5555, udpServer.getLocalPort(), new byte[] {1}));
            Connection c = new Connection(GUEST_PORT, server.getLocalPort());
            try (Socket host = server.accept()) {
                send(c.segment(c.next, new byte[] {'x'}));
                assertTrue(c.awaitAck(c.next + 1));
                assertEquals('x', host.getInputStream().read());
                int[] flows = user.flowCounts();
                assertTrue(flows[0] == 1 && flows[1] == 1, Arrays.toString(flows));
                Frames.Out rst = next(o -> o.protocol() == 6 && (o.flags() & RST) != 0, 3000);
                assertNotNull(rst, "the guest hears that the idle connection is gone");
                host.setSoTimeout(3000);
                assertThrows(SocketException.class, () -> host.getInputStream().read(), "so does the host's peer");
                for (int i = 0; i < 100 && user.flowCounts()[1] > 0; i++) Thread.sleep(20);
                assertArrayEquals(new int[] {0, 0, 0}, user.flowCounts());
            }
        }
    }

    /**
     * NIO datagram channels that report themselves backed up: their kernel buffer full, as a slow host link makes it.
     */
    static Transport backedUpDatagrams() {
        Transport nio = Transport.nio();
        return new Transport(nio.name(), nio.stream(), nio.server(), () -> {
            NioDatagramChannel ch = new NioDatagramChannel();
            ch.pipeline().addFirst(new ChannelInboundHandlerAdapter() {
                @Override
                public void channelRegistered(ChannelHandlerContext ctx) {
                    ctx.channel().unsafe().outboundBuffer().setUserDefinedWritability(1, false);
                    ctx.fireChannelRegistered();
                }
            });
            return ch;
        });
    }

    @Test
    void datagramsForABackedUpHostSocketAreDroppedAndCounted() throws Exception {
        start(Tuning.defaults().withTransport(backedUpDatagrams()));
        try (DatagramSocket server = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            long dropped = user.droppedFrames();
            for (int i = 0; i < 20; i++) send(Frames.udp(GUEST, GATEWAY, 5555, server.getLocalPort(), new byte[100]));
            server.setSoTimeout(500);
            assertThrows(SocketTimeoutException.class, () -> server.receive(new DatagramPacket(new byte[200], 200)));
            assertEquals(20, user.droppedFrames() - dropped);
        }
    }

    /** A UDP frame with a vnet header asking for segmentation into {@code gsoSize}-byte datagrams. */
    static byte[] usoFrame(int dstPort, int payload, int gsoSize) {
        byte[] f = Frames.udp(GUEST, GATEWAY, 5555, dstPort, new byte[payload]);
        ByteBuffer b = ByteBuffer.allocate(VirtioNetHeader.LENGTH_V1 + f.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(VirtioNetHeader.OFF_GSO_TYPE, (byte) VirtioNetHeader.GSO_UDP_L4);
        b.putShort(VirtioNetHeader.OFF_GSO_SIZE, (short) gsoSize);
        b.put(VirtioNetHeader.LENGTH_V1, f);
        return b.array();
    }

    @Test
    void aUdpSegmentationFrameOfMoreThan128DatagramsIsDroppedWhole() throws Exception {
        user = UserNetBackend.start(
                UserNetStackTest.config("hostloopback=on"),
                PingSocketHost.factory(alloc, PingSocketHost::openInCurrentNamespace),
                Tuning.defaults().withAlloc(alloc));
        queue = user.activate(
                        new NetLinkConfig(VirtioNetHeader.LENGTH_V1, java.util.Set.of()),
                        List.of(GuestPorts.collecting(toGuest, () -> true, failures)))
                .get(0);
        try (DatagramSocket server = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            server.setReceiveBufferSize(1 << 20);
            long dropped = user.droppedFrames();
            send(usoFrame(server.getLocalPort(), 1000, 1)); // 1000 one-byte datagrams: over the limit
            send(usoFrame(server.getLocalPort(), 1280, 10)); // 128 datagrams of 10 bytes: at the limit
            server.setSoTimeout(500);
            int received = 0;
            try {
                for (DatagramPacket d = new DatagramPacket(new byte[100], 100); ; received++) {
                    server.receive(d);
                    assertEquals(10, d.getLength(), "datagram " + received);
                }
            } catch (SocketTimeoutException end) {
                // all there is
            }
            assertEquals(UdpStage.MAX_GSO_SEGMENTS, received);
            assertEquals(1, user.droppedFrames() - dropped);
        }
    }
}
