package dev.jvmm.devices.net.user;

import com.code_intelligence.jazzer.api.BugDetectors;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.VirtioNetHeader;
import dev.jvmm.kvm.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.AddressedEnvelope;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Fuzzes the user-mode network stack with sequences of whole Ethernet frames from the guest. The stack (the
 * {@link UserNetStack} a {@link UserNetBackend} runs, with its real stages and Netty host channels) is built once;
 * each input attaches a guest link (with or without a vnet header and offloads), plays a script of actions, and
 * detaches it. Most actions build a frame from fields with valid checksums (ARP, ICMP, UDP, DHCP, TCP that
 * follows the stack's sequence numbers so connections get established and carry data), with quirks chosen by the
 * input (bad checksums, IP options, fragments, padding, wrong lengths, vnet flags and GSO); others send raw bytes,
 * mutate or cut the last frame, wait for the host side, stop and resume the guest's receive buffers, or move the
 * stack's clock (which stands still otherwise) past its timers and run them: retransmission, TIME_WAIT, idle flows.
 *
 * <p>Properties, checked after every action: nothing thrown out of the stack's frame handling (the harness calls
 * {@link EthernetStage#receive} past {@link UserNetStack#fromGuest}'s backstop, so a missing length check shows up
 * as the IndexOutOfBoundsException it is) and no failure reported to the device; every frame sent to the guest well
 * formed (see {@link Session#checkFrame}), within the MTU unless it is TCP within the MSS the guest announced; the
 * budget for host-bound data between 0 and its limit; no host connection or datagram anywhere but the harness's own
 * loopback service; ARP, DHCP and ping to the gateway answered when asked properly. After each input, with the guest
 * detached, the budget and the stack's direct memory (on an allocator of the harness's own) must be all given back.
 *
 * <p>The host stays closed: the NAT policy counts every address as the host's own (so nothing leaves without
 * hostloopback=on, which is off), 10.0.2.3:53 resolves at a loopback echo service of the harness (UDP and TCP on
 * one port), and guestfwd 10.0.2.100:80 leads to the same service. Host channels are Netty NIO ones whose connect
 * and send refuse any other destination, and Jazzer's SSRF detector allows that service only.
 *
 * <p>In a normal test run Jazzer replays the inputs under src/test/resources/.../UserNetFuzzTestInputs; {@link
 * #main} rewrites the hand-made ones there. The input format is {@link Fixture#run}'s.
 */
class UserNetFuzzTest {
    static final int FWD = Inet.ip(10, 0, 2, 100), FWD_PORT = 80;
    static final int SYN = TcpStage.SYN, ACK = TcpStage.ACK, FIN = TcpStage.FIN, RST = TcpStage.RST;
    static final int PSH = TcpStage.PSH;
    /** A small budget, so that host-bound data reaches it. */
    static final long BUDGET = 256 << 10;

    static final int MAX_ACTIONS = 64, MTU = 1500, ETH = 14;
    static final NetLinkConfig[] LINKS = {
        NetLinkConfig.plain(),
        new NetLinkConfig(VirtioNetHeader.LENGTH_V1, Set.of()),
        new NetLinkConfig(VirtioNetHeader.LENGTH_V1, EnumSet.of(NetOffload.CSUM)),
        new NetLinkConfig(VirtioNetHeader.LENGTH_V1, EnumSet.of(NetOffload.CSUM, NetOffload.TSO4)),
        new NetLinkConfig(VirtioNetHeader.LENGTH, EnumSet.of(NetOffload.CSUM, NetOffload.TSO4)),
    };

    static final int A_RAW = 0, A_ARP = 1, A_ICMP = 2, A_UDP = 3, A_DHCP = 4, A_TCP = 5, A_WAIT = 6, A_RX = 7;
    static final int A_TICK = 8, A_MUTATE = 9, A_CUT = 10, ACTIONS = 11;

    /** Quirks of a frame's IPv4 envelope (its first field). */
    static final int Q_BAD_IP_SUM = 1, Q_BAD_L4_SUM = 2, Q_IP_OPTIONS = 4, Q_FRAGMENT = 8, Q_PADDING = 16;

    static final int Q_TOTAL_LENGTH = 32, Q_VNET_FLAGS = 64, Q_BROADCAST_MAC = 128;

    private static Fixture fixture;

    static synchronized Fixture fixture() throws IOException {
        if (fixture == null) fixture = new Fixture();
        return fixture;
    }

    @FuzzTest(maxDuration = "30s")
    void guestFrames(byte[] input) throws Exception {
        fixture().run(input);
    }

    // ---- the stack and the host side it may reach ----

    static final class Fixture {
        final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(true);
        final EchoService service = new EchoService();
        final UserNetStack stack;
        final Queue<byte[]> toGuest = new ConcurrentLinkedQueue<>();
        final AtomicLong delivered = new AtomicLong();
        final List<Throwable> failures = new CopyOnWriteArrayList<>();
        final Packet packet = new Packet();
        /** The stack's clock: it stands still but for {@link Session#tick}, which moves it on and runs the timers. */
        final AtomicLong clock = new AtomicLong(1L << 40);

        volatile boolean accepting = true;

        final GuestPort port = new GuestPort() {
            @Override
            public boolean deliver(MemorySegment frame) {
                if (!accepting) return false;
                toGuest.add(frame.toArray(ValueLayout.JAVA_BYTE));
                delivered.incrementAndGet();
                return true;
            }

            @Override
            public void txReady() {}

            @Override
            public void backendFailed(String where, Throwable cause) {
                failures.add(new AssertionError("the stack reported a failure in " + where, cause));
            }
        };

        Fixture() throws IOException {
            Guard.allowed = service.address;
            try {
                BugDetectors.allowNetworkConnections((host, p) -> p == service.address.getPort() && loopback(host));
            } catch (IllegalStateException noAgent) {
                // run outside Jazzer: nothing hooks connections, and Guard still refuses the others
            }
            String cfg = "user,resolver=127.0.0.1:" + service.address.getPort() + ",guestfwd=tcp:" + Inet.text(FWD)
                    + ":" + FWD_PORT + "-127.0.0.1:" + service.address.getPort();
            NetConfig.User config = (NetConfig.User) NetConfig.parse(cfg);
            Transport transport = new Transport(
                    "nio (fuzz harness)",
                    GuardedSocketChannel.class,
                    NioServerSocketChannel.class,
                    UserNetFuzzTest::guardedDatagramChannel);
            Tuning tuning = Tuning.defaults()
                    .withAlloc(alloc)
                    .withTransport(transport)
                    .withBudget(BUDGET)
                    .withClock(clock::get);
            EventLoopGroup group = transport.newGroup(new DefaultThreadFactory("fuzz-usernet", true));
            // Every address counts as the host's own: without hostloopback=on no guest flow leaves for it.
            NatPolicy policy = new NatPolicy(config, service.address, ip -> true);
            stack = new UserNetStack(group.next(), tuning, policy, replies -> new RefusingEchoHost());
        }

        private static boolean loopback(String host) {
            try {
                return InetAddress.getByName(host).isLoopbackAddress();
            } catch (IOException e) {
                return false;
            }
        }

        /** One input: a byte that picks the link ({@link #LINKS}), then up to {@link #MAX_ACTIONS} actions. */
        void run(byte[] input) throws Exception {
            FuzzBytes.Reader in = new FuzzBytes.Reader(input);
            Session s = new Session(this, LINKS[in.u8() % LINKS.length]);
            toGuest.clear();
            failures.clear();
            Guard.violations.clear();
            accepting = true;
            onLoop(() -> stack.link.attach(s.link, port));
            try {
                for (int n = 0; n < MAX_ACTIONS && in.more(); n++) s.action(in);
                s.settle();
            } finally {
                onLoop(stack::detach);
            }
            checkAllGivenBack();
        }

        /** With the guest detached, every flow is closed: the budget and the stack's buffers are all back. */
        private void checkAllGivenBack() throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
            for (; ; ) {
                long[] held = onLoop(
                        () -> new long[] {stack.budget.used(), alloc.metric().usedDirectMemory()});
                if (held[0] == 0 && held[1] == 0) return;
                if (System.nanoTime() - deadline > 0) {
                    throw new AssertionError("with the guest detached the stack still holds " + held[0]
                            + " bytes of its budget and " + held[1] + " bytes of direct memory");
                }
                Thread.sleep(1);
            }
        }

        /** Runs {@code c} on the stack's thread and waits for it; what it throws is thrown here. */
        <T> T onLoop(Callable<T> c) throws Exception {
            try {
                return stack.loop.submit(c).get(10, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof Exception x) throw x;
                if (e.getCause() instanceof Error x) throw x;
                throw e;
            } catch (TimeoutException e) {
                throw new AssertionError("the stack's event loop did not answer within 10 s");
            }
        }

        void onLoop(Runnable r) throws Exception {
            onLoop(() -> {
                r.run();
                return null;
            });
        }

        /** On the stack's thread: what the stack holds for host sockets stays within its limit. */
        void checkBudget() {
            long used = stack.budget.used(), limit = stack.budget.limit();
            if (used < 0 || used > limit)
                throw new AssertionError("the budget for host-bound data holds " + used + " of " + limit + " bytes");
        }
    }

    /** Where the stack's host channels may go; anything else is recorded and refused. */
    static final class Guard {
        static volatile InetSocketAddress allowed;
        static final List<String> violations = new CopyOnWriteArrayList<>();

        static void check(String what, SocketAddress to) throws IOException {
            if (to == null || to.equals(allowed)) return;
            violations.add(what + " to " + to);
            throw new SocketException("the fuzz harness refuses " + what + " to " + to);
        }
    }

    /** A TCP channel that connects only where {@link Guard} allows. */
    public static final class GuardedSocketChannel extends NioSocketChannel {
        @Override
        protected boolean doConnect(SocketAddress remote, SocketAddress local) throws Exception {
            Guard.check("a host TCP connection", remote);
            return super.doConnect(remote, local);
        }
    }

    /** A UDP channel that sends only where {@link Guard} allows (NioDatagramChannel is final: a handler checks). */
    static NioDatagramChannel guardedDatagramChannel() {
        NioDatagramChannel ch = new NioDatagramChannel();
        ch.pipeline().addFirst(new ChannelOutboundHandlerAdapter() {
            @Override
            public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
                try {
                    if (msg instanceof AddressedEnvelope<?, ?> e) Guard.check("a host datagram", e.recipient());
                } catch (IOException refused) {
                    ReferenceCountUtil.release(msg);
                    promise.setFailure(refused);
                    return;
                }
                ctx.write(msg, promise);
            }
        });
        return ch;
    }

    /** The host refuses ping sockets (the policy lets no echo out anyway). */
    static final class RefusingEchoHost implements EchoHost {
        @Override
        public long open() {
            return -Errno.EACCES;
        }

        @Override
        public int send(long socket, int dst, ByteBuf icmp) {
            return -Errno.EBADF;
        }

        @Override
        public void close(long socket) {}

        @Override
        public void close() {}
    }

    /**
     * The loopback service behind 10.0.2.3:53 and guestfwd: UDP and TCP echo on one port. A TCP read that starts
     * with 'R' resets the connection, 'F' ends the service's side, 'B' is answered with 100 KB; a datagram that
     * starts with 'B' is answered with 1600 bytes (too big for the guest's MTU), 'T' twice.
     */
    static final class EchoService {
        final InetSocketAddress address;
        private final ServerSocket tcp;
        private final DatagramSocket udp;

        EchoService() throws IOException {
            InetAddress lo = InetAddress.getLoopbackAddress();
            ServerSocket t = null;
            DatagramSocket u = null;
            for (int attempt = 0; u == null; attempt++) {
                t = new ServerSocket(0, 1024, lo);
                try {
                    u = new DatagramSocket(new InetSocketAddress(lo, t.getLocalPort()));
                } catch (SocketException e) {
                    t.close();
                    if (attempt == 20) throw e;
                }
            }
            tcp = t;
            udp = u;
            address = new InetSocketAddress(lo, tcp.getLocalPort());
            Thread.ofPlatform().daemon().name("fuzz-echo-tcp").start(this::accept);
            Thread.ofPlatform().daemon().name("fuzz-echo-udp").start(this::datagrams);
        }

        private void accept() {
            for (; ; ) {
                try {
                    Socket c = tcp.accept();
                    Thread.ofVirtual().start(() -> serve(c));
                } catch (IOException e) {
                    return;
                }
            }
        }

        private static void serve(Socket c) {
            try (c) {
                InputStream in = c.getInputStream();
                OutputStream out = c.getOutputStream();
                byte[] buf = new byte[65536];
                boolean ended = false;
                for (int n; (n = in.read(buf)) > 0; ) {
                    if (buf[0] == 'R') {
                        c.setSoLinger(true, 0);
                        return;
                    }
                    if (ended) continue;
                    if (buf[0] == 'F') {
                        c.shutdownOutput();
                        ended = true;
                    } else if (buf[0] == 'B') {
                        out.write(new byte[100 << 10]);
                    } else {
                        out.write(buf, 0, n);
                    }
                }
                if (!ended) c.shutdownOutput();
            } catch (IOException e) {
                // the stack reset or closed it
            }
        }

        private void datagrams() {
            byte[] buf = new byte[65536];
            for (; ; ) {
                try {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    udp.receive(p);
                    byte[] d = Arrays.copyOf(p.getData(), p.getLength());
                    if (d.length > 0 && d[0] == 'B') d = new byte[1600];
                    udp.send(new DatagramPacket(d, d.length, p.getSocketAddress()));
                    if (d.length > 0 && d[0] == 'T') udp.send(new DatagramPacket(d, d.length, p.getSocketAddress()));
                } catch (IOException e) {
                    if (udp.isClosed()) return;
                }
            }
        }
    }

    // ---- one input ----

    /** The fields of a frame's IPv4 envelope: quirks, and what some of them need. */
    static final class Envelope {
        int quirks;
        byte[] ipOptions = new byte[0];
        int fragment = 0x4000, padding, totalLength = -1, vnetFlags;

        static Envelope read(FuzzBytes.Reader in) {
            Envelope e = new Envelope();
            e.quirks = in.u8();
            if ((e.quirks & Q_IP_OPTIONS) != 0) {
                int words = 1 + in.u8() % 10;
                e.ipOptions = Arrays.copyOf(in.bytes(4 * words), 4 * words);
            }
            if ((e.quirks & Q_FRAGMENT) != 0) e.fragment = in.u16();
            if ((e.quirks & Q_PADDING) != 0) e.padding = in.u8();
            if ((e.quirks & Q_TOTAL_LENGTH) != 0) e.totalLength = in.u16();
            if ((e.quirks & Q_VNET_FLAGS) != 0) e.vnetFlags = in.u8() & 3;
            return e;
        }
    }

    /** One input's script being played: the link, and what the guest knows of its connections. */
    static final class Session {
        final Fixture fx;
        final NetLinkConfig link;
        final int hdrLen;
        /** Per TCP flow ({@link TcpStage#key}): the guest's next sequence number, the stack's. */
        final Map<Long, Integer> guestNext = new HashMap<>(), stackNext = new HashMap<>();
        /** The largest MSS the guest announced in a SYN (536 without one): TCP to the guest stays within it. */
        int mssBound = 536;

        byte[] last;
        int action;

        Session(Fixture fx, NetLinkConfig link) {
            this.fx = fx;
            this.link = link;
            this.hdrLen = link.vnetHeaderLength();
        }

        /** One action: a byte that picks it ({@code A_*}), then its fields as the method for it reads them. */
        void action(FuzzBytes.Reader in) throws Exception {
            action++;
            switch (in.u8() % ACTIONS) {
                case A_RAW -> transmit(in.bytes(in.u16() % 2048));
                case A_ARP -> arp(in);
                case A_ICMP -> icmp(in);
                case A_UDP -> udp(in);
                case A_DHCP -> dhcp(in);
                case A_TCP -> tcp(in);
                case A_WAIT -> await(1 + in.u8() % 4);
                case A_RX -> {
                    fx.accepting = (in.u8() & 1) != 0;
                    fx.onLoop(() -> {
                        fx.stack.link.rxReady();
                        fx.checkBudget();
                    });
                    settle();
                }
                case A_TICK -> tick(in.u8());
                case A_MUTATE -> mutate(in);
                case A_CUT -> {
                    int n = in.u16();
                    if (last != null) transmit(Arrays.copyOf(last, n % (last.length + 65)));
                }
                default -> throw new AssertionError();
            }
        }

        // ---- actions ----

        /** ARP: op (XOR 1), sender and target address choices, MAC choice, corruption bits. */
        private void arp(FuzzBytes.Reader in) throws Exception {
            int op = in.u8() ^ 1;
            int sender = source(in), target = icmpDestination(in);
            int macs = in.u8(), corrupt = in.u8();
            long frameMac = Frames.GUEST_MAC, senderMac = Frames.GUEST_MAC;
            switch (macs) {
                case 1 -> senderMac = 0x525400654321L;
                case 2 -> frameMac = senderMac = 0x0100005e0001L; // multicast
                case 3 -> frameMac = senderMac = 0;
                default -> {}
            }
            ByteBuffer b = ByteBuffer.allocate(28);
            b.putShort((short) ((corrupt & 1) != 0 ? 6 : 1));
            b.putShort((short) ((corrupt & 2) != 0 ? 0x86dd : 0x0800));
            b.put((byte) ((corrupt & 4) != 0 ? 8 : 6)).put((byte) 4).putShort((short) op);
            b.putShort((short) (senderMac >>> 32)).putInt((int) senderMac).putInt(sender);
            b.putShort((short) 0).putInt(0).putInt(target);
            byte[] arp = (corrupt & 8) != 0 ? Arrays.copyOf(b.array(), 27) : b.array();
            long dstMac = (corrupt & 16) != 0 ? EthernetStage.GATEWAY_MAC : EthernetStage.BROADCAST_MAC;
            byte[] f = ethernet(dstMac, frameMac, EthernetStage.TYPE_ARP, arp);
            List<byte[]> out = transmit(vnet(f, 0, 0, 0, 0, 0, 0));
            if (fx.accepting && op == 1 && macs == 0 && corrupt == 0 && virtualHost(target)) {
                long replies = out.stream()
                        .filter(r -> type(r) == EthernetStage.TYPE_ARP
                                && ByteBuffer.wrap(r).getShort(hdrLen + ETH + 6) == 2
                                && ByteBuffer.wrap(r).getInt(hdrLen + ETH + 14) == target)
                        .count();
                expect(replies == 1, "one ARP reply for " + Inet.text(target) + ", got " + replies, out);
            }
        }

        /** ICMP: envelope, source and destination choices, type (XOR 8), code, id, sequence, data length. */
        private void icmp(FuzzBytes.Reader in) throws Exception {
            Envelope e = Envelope.read(in);
            int src = source(in), dst = icmpDestination(in);
            int type = in.u8() ^ IcmpStage.ECHO_REQUEST, code = in.u8(), id = in.u16(), seq = in.u16();
            int len = Math.min(size(in), 65000);
            byte[] m = new byte[8 + len];
            ByteBuffer.wrap(m)
                    .put((byte) type)
                    .put((byte) code)
                    .putShort((short) 0)
                    .putShort((short) id)
                    .putShort((short) seq);
            for (int i = 8; i < m.length; i++) m[i] = (byte) (i * 7);
            List<byte[]> out = transmit(ipFrame(e, src, dst, Inet.PROTO_ICMP, m, 2, false, 0, 0, 8));
            if (fx.accepting
                    && e.quirks == 0
                    && type == IcmpStage.ECHO_REQUEST
                    && (dst == Inet.GATEWAY || dst == Inet.DNS)
                    && guestSource(src)
                    && 20 + m.length <= MTU) {
                long replies = out.stream()
                        .filter(r -> protocol(r) == Inet.PROTO_ICMP
                                && Arrays.equals(
                                        Arrays.copyOfRange(r, hdrLen + ETH + 20 + 4, r.length),
                                        Arrays.copyOfRange(m, 4, m.length)))
                        .count();
                expect(replies == 1, "one echo reply from " + Inet.text(dst) + ", got " + replies, out);
            }
        }

        /**
         * UDP: envelope, source, destination choice, source port choice, payload (0: bytes from the input after a
         * length byte; 1: a DHCP request; else a pattern of a chosen size after its first byte), and with a vnet
         * header a GSO choice.
         */
        private void udp(FuzzBytes.Reader in) throws Exception {
            Envelope e = Envelope.read(in);
            int src = source(in);
            int dst, dstPort;
            switch (in.u8()) {
                case 1 -> {
                    dst = Inet.GATEWAY;
                    dstPort = DhcpServer.SERVER_PORT;
                }
                case 2 -> {
                    dst = Inet.LIMITED_BROADCAST;
                    dstPort = DhcpServer.SERVER_PORT;
                }
                case 3 -> {
                    dst = Inet.GATEWAY;
                    dstPort = in.u16();
                }
                case 4 -> {
                    dst = in.u32();
                    dstPort = in.u16();
                }
                case 5 -> {
                    dst = Inet.BROADCAST;
                    dstPort = in.u16();
                }
                case 6 -> {
                    dst = Inet.ip(224, 0, 0, 251);
                    dstPort = 5353;
                }
                case 7 -> {
                    dst = Inet.DNS;
                    dstPort = in.u16();
                }
                case 8 -> {
                    dst = FWD;
                    dstPort = FWD_PORT;
                }
                default -> {
                    dst = Inet.DNS;
                    dstPort = 53;
                }
            }
            int srcPort = port(in, 40000, 8);
            byte[] data = switch (in.u8()) {
                case 0 -> in.bytes(in.u8());
                case 1 -> DhcpServerFuzzTest.request(in).payload();
                default -> pattern(in);
            };
            int gsoType = 0, gsoSize = 0;
            if (hdrLen > 0) {
                int g = in.u8();
                if (g != 0) {
                    gsoType = g == 1 ? VirtioNetHeader.GSO_UDP_L4 : g;
                    gsoSize = in.u16();
                }
            }
            data = Arrays.copyOf(data, Math.min(data.length, 65000));
            byte[] u = new byte[8 + data.length];
            ByteBuffer.wrap(u)
                    .putShort((short) srcPort)
                    .putShort((short) dstPort)
                    .putShort((short) u.length)
                    .putShort((short) 0)
                    .put(data);
            transmit(ipFrame(e, src, dst, Inet.PROTO_UDP, u, 6, true, gsoType, gsoSize, 8));
        }

        /** DHCP: envelope, addressing choice (0: 0.0.0.0 to broadcast), then {@link DhcpServerFuzzTest#request}. */
        private void dhcp(FuzzBytes.Reader in) throws Exception {
            Envelope e = Envelope.read(in);
            int way = in.u8() % 3;
            int src = way == 0 ? 0 : Inet.GUEST;
            int dst = way == 0 ? Inet.LIMITED_BROADCAST : way == 1 ? Inet.GATEWAY : Inet.BROADCAST;
            DhcpServerFuzzTest.Request req = DhcpServerFuzzTest.request(in);
            byte[] u = new byte[8 + req.payload().length];
            ByteBuffer.wrap(u)
                    .putShort((short) DhcpServer.CLIENT_PORT)
                    .putShort((short) DhcpServer.SERVER_PORT)
                    .putShort((short) u.length)
                    .putShort((short) 0)
                    .put(req.payload());
            List<byte[]> out = transmit(ipFrame(e, src, dst, Inet.PROTO_UDP, u, 6, true, 0, 0, 8));
            List<byte[]> replies =
                    out.stream().filter(r -> dhcpReply(r) != null).toList();
            for (byte[] r : replies) DhcpServerFuzzTest.checkAnswers(req.payload(), dhcpReply(r));
            if (fx.accepting && e.quirks == 0 && req.owed() >= 0) {
                expect(replies.size() == (req.owed() > 0 ? 1 : 0), "DHCP replies: " + replies.size(), out);
                if (req.owed() > 0) {
                    byte[] type = DhcpServerFuzzTest.options(dhcpReply(replies.get(0)))
                            .get(53);
                    expect(type[0] == req.owed(), "DHCP reply of type " + type[0], out);
                }
            }
        }

        /**
         * TCP: envelope, source, destination choice, source port choice, flags (XOR SYN), sequence and
         * acknowledgement choices (0: what the guest and the stack are at), window (XOR 0xffff), options choice,
         * payload size and first byte, and with a vnet header a GSO choice.
         */
        private void tcp(FuzzBytes.Reader in) throws Exception {
            Envelope e = Envelope.read(in);
            int src = source(in);
            int dst, dstPort;
            switch (in.u8()) {
                case 1 -> {
                    dst = Inet.DNS;
                    dstPort = 53;
                }
                case 2 -> {
                    dst = Inet.GATEWAY;
                    dstPort = in.u16();
                }
                case 3 -> {
                    dst = in.u32();
                    dstPort = in.u16();
                }
                case 4 -> {
                    dst = FWD;
                    dstPort = in.u16();
                }
                case 5 -> {
                    dst = Inet.ip(10, 0, 2, in.u8());
                    dstPort = in.u16();
                }
                default -> {
                    dst = FWD;
                    dstPort = FWD_PORT;
                }
            }
            int srcPort = port(in, 40000, 4);
            int flags = in.u8() ^ SYN;
            long flow = TcpStage.key(dst, srcPort, dstPort);
            int seq = guestNext.getOrDefault(flow, 1000 + srcPort);
            switch (in.u8()) {
                case 0 -> {}
                case 1 -> seq += (short) in.u16();
                default -> seq = in.u32();
            }
            int ack = stackNext.getOrDefault(flow, 0);
            switch (in.u8()) {
                case 0 -> {}
                case 1 -> ack += (short) in.u16();
                default -> ack = in.u32();
            }
            int window = in.u16() ^ 0xffff;
            byte[] options = switch (in.u8()) {
                case 0 -> (flags & SYN) != 0 ? new byte[] {2, 4, 0x05, (byte) 0xb4, 1, 3, 3, 7} : new byte[0];
                case 1 -> new byte[0];
                case 2 -> {
                    int mss = in.u16();
                    yield new byte[] {2, 4, (byte) (mss >>> 8), (byte) mss};
                }
                case 3 -> {
                    int mss = in.u16(), ws = in.u8();
                    yield new byte[] {2, 4, (byte) (mss >>> 8), (byte) mss, 1, 3, 3, (byte) ws};
                }
                default -> {
                    byte[] raw = in.bytes(in.u8() % 41);
                    yield Arrays.copyOf(raw, (raw.length + 3) / 4 * 4);
                }
            };
            byte[] data = pattern(in);
            data = Arrays.copyOf(data, Math.min(data.length, 65000));
            int gsoType = 0, gsoSize = 0;
            if (hdrLen > 0) {
                int g = in.u8();
                if (g != 0) {
                    gsoType = g == 1 ? VirtioNetHeader.GSO_TCPV4 : g;
                    gsoSize = in.u16();
                }
            }
            int hl = 20 + options.length;
            byte[] t = new byte[hl + data.length];
            ByteBuffer.wrap(t)
                    .putShort((short) srcPort)
                    .putShort((short) dstPort)
                    .putInt(seq)
                    .putInt(ack)
                    .put((byte) ((hl / 4) << 4))
                    .put((byte) flags)
                    .putShort((short) window)
                    .putShort((short) 0)
                    .putShort((short) 0)
                    .put(options)
                    .put(data);
            guestNext.put(flow, seq + data.length + ((flags & SYN) != 0 ? 1 : 0) + ((flags & FIN) != 0 ? 1 : 0));
            transmit(ipFrame(e, src, dst, Inet.PROTO_TCP, t, 16, true, gsoType, gsoSize, hl));
        }

        /**
         * Moves the stack's clock on (0: not at all; 1 to 7 past one of its timers: a TCP retransmission, SYN and
         * TIME_WAIT, ICMP and UDP idle, TCP idle; else by that many tens of milliseconds) and runs its timers.
         */
        private void tick(int choice) throws Exception {
            long ms = switch (choice) {
                case 0 -> 0;
                case 1 -> 250;
                case 2 -> 1_700;
                case 3 -> 2_100;
                case 4 -> 31_000;
                case 5 -> 61_000;
                case 6 -> 26_000;
                case 7 -> 125 * 60_000;
                default -> choice * 10L;
            };
            fx.clock.addAndGet(TimeUnit.MILLISECONDS.toNanos(ms));
            fx.onLoop(() -> {
                fx.stack.tick();
                fx.checkBudget();
            });
            settle();
        }

        /** Waits until {@code frames} more reach the guest (host answers), or 10 ms. */
        private void await(int frames) throws Exception {
            long target = fx.delivered.get() + frames, deadline = System.nanoTime() + 10_000_000L;
            while (fx.delivered.get() < target && System.nanoTime() - deadline < 0) LockSupport.parkNanos(20_000);
            fx.onLoop(fx::checkBudget);
            settle();
        }

        /** Flips up to four bytes of the last frame, then fixes its IPv4 (bit 0) and L4 (bit 1) checksums. */
        private void mutate(FuzzBytes.Reader in) throws Exception {
            int n = 1 + in.u8() % 4;
            int[] at = new int[n], xor = new int[n];
            for (int k = 0; k < n; k++) {
                at[k] = in.u16();
                xor[k] = in.u8();
            }
            int fix = in.u8();
            if (last == null || last.length == 0) return;
            byte[] f = last.clone();
            for (int k = 0; k < n; k++) f[at[k] % f.length] ^= (byte) xor[k];
            int ip = hdrLen + ETH;
            if (f.length >= ip + 20 && type(f) == EthernetStage.TYPE_IPV4) {
                int ihl = (f[ip] & 0xf) * 4, total = ByteBuffer.wrap(f).getShort(ip + 2) & 0xffff;
                if ((fix & 1) != 0 && ihl >= 20 && ip + ihl <= f.length) {
                    f[ip + 10] = f[ip + 11] = 0;
                    putShort(f, ip + 10, Frames.checksum(f, ip, ihl, 0));
                }
                int proto = f[ip + 9] & 0xff, l4 = ip + ihl, len = Math.min(total, f.length - ip) - ihl;
                int field = proto == 6 ? 16 : proto == 17 ? 6 : proto == 1 ? 2 : -1;
                if ((fix & 2) != 0 && ihl >= 20 && field >= 0 && len >= field + 2) {
                    f[l4 + field] = f[l4 + field + 1] = 0;
                    int src = ByteBuffer.wrap(f).getInt(ip + 12),
                            dst = ByteBuffer.wrap(f).getInt(ip + 16);
                    long pseudo = proto == 1 ? 0 : Frames.pseudo(src, dst, proto, len);
                    putShort(f, l4 + field, Frames.checksum(f, l4, len, pseudo));
                }
            }
            transmit(f);
        }

        // ---- choices ----

        private static int source(FuzzBytes.Reader in) {
            return switch (in.u8()) {
                case 1 -> 0;
                case 2 -> Inet.ip(10, 0, 2, in.u8());
                case 3 -> in.u32();
                case 4 -> Inet.GATEWAY;
                case 5 -> Inet.ip(10, 0, 2, 16);
                default -> Inet.GUEST;
            };
        }

        private static int icmpDestination(FuzzBytes.Reader in) {
            return switch (in.u8()) {
                case 1 -> Inet.DNS;
                case 2 -> FWD;
                case 3 -> in.u32();
                case 4 -> Inet.ip(10, 0, 2, in.u8());
                case 5 -> Inet.LIMITED_BROADCAST;
                case 6 -> Inet.BROADCAST;
                default -> Inet.GATEWAY;
            };
        }

        /** A guest port: 0 the usual one, 1 the DHCP client's, 2 any, else one of {@code count} near the usual. */
        private static int port(FuzzBytes.Reader in, int usual, int count) {
            int v = in.u8();
            return switch (v) {
                case 0 -> usual;
                case 1 -> DhcpServer.CLIENT_PORT;
                case 2 -> in.u16();
                default -> usual + v % count;
            };
        }

        /** A size: below 0x8000 up to 1399 bytes, above it up to 64 KB in steps of 2. */
        private static int size(FuzzBytes.Reader in) {
            int v = in.u16();
            return (v & 0x8000) == 0 ? v % 1400 : (v & 0x7fff) * 2;
        }

        /** A payload of a chosen size, its first byte from the input (the echo service reads it), then a pattern. */
        private static byte[] pattern(FuzzBytes.Reader in) {
            int n = size(in);
            byte[] d = new byte[n];
            for (int i = 0; i < n; i++) d[i] = (byte) ('a' + i % 26);
            int first = in.u8();
            if (n > 0 && first != 0) d[0] = (byte) first;
            return d;
        }

        private static boolean virtualHost(int ip) {
            return ip == Inet.GATEWAY || ip == Inet.DNS || ip == FWD;
        }

        /** A source address the stack takes from the guest. */
        private static boolean guestSource(int ip) {
            return Inet.inNetwork(ip) && !virtualHost(ip) && ip != Inet.NETWORK && ip != Inet.BROADCAST;
        }

        // ---- frames ----

        private static byte[] ethernet(long dst, long src, int type, byte[] payload) {
            ByteBuffer b = ByteBuffer.allocate(ETH + payload.length);
            b.putShort((short) (dst >>> 32)).putInt((int) dst);
            b.putShort((short) (src >>> 32)).putInt((int) src);
            b.putShort((short) type).put(payload);
            return b.array();
        }

        /** {@code frame} behind a vnet header, when the link has one. */
        private byte[] vnet(byte[] frame, int flags, int gsoType, int hdr, int gsoSize, int csumStart, int csumOff) {
            if (hdrLen == 0) return frame;
            ByteBuffer b = ByteBuffer.allocate(hdrLen + frame.length).order(ByteOrder.LITTLE_ENDIAN);
            b.put((byte) flags).put((byte) gsoType).putShort((short) hdr).putShort((short) gsoSize);
            b.putShort((short) csumStart).putShort((short) csumOff);
            b.position(hdrLen);
            b.put(frame);
            return b.array();
        }

        /**
         * An IPv4 frame around {@code l4} (its checksum field at {@code csumField}, zero, is filled in, over the
         * pseudo header if {@code pseudo}), with the envelope's quirks.
         */
        private byte[] ipFrame(
                Envelope e,
                int src,
                int dst,
                int proto,
                byte[] l4,
                int csumField,
                boolean pseudo,
                int gsoType,
                int gsoSize,
                int l4HeaderLength) {
            int c = Frames.checksum(l4, 0, l4.length, pseudo ? Frames.pseudo(src, dst, proto, l4.length) : 0);
            if ((e.quirks & Q_BAD_L4_SUM) != 0) c ^= 1;
            putShort(l4, csumField, c);
            int ihl = 20 + e.ipOptions.length;
            int total = Math.min(ihl + l4.length, 65535);
            byte[] p = new byte[total + e.padding];
            ByteBuffer b = ByteBuffer.wrap(p);
            b.put((byte) (0x40 | ihl / 4))
                    .put((byte) 0)
                    .putShort((short) (e.totalLength >= 0 ? e.totalLength : total))
                    .putShort((short) 1)
                    .putShort((short) e.fragment)
                    .put((byte) 64)
                    .put((byte) proto)
                    .putShort((short) 0)
                    .putInt(src)
                    .putInt(dst)
                    .put(e.ipOptions)
                    .put(l4, 0, total - ihl);
            int h = Frames.checksum(p, 0, ihl, 0);
            if ((e.quirks & Q_BAD_IP_SUM) != 0) h ^= 1;
            putShort(p, 10, h);
            long dstMac = (e.quirks & Q_BROADCAST_MAC) != 0 ? EthernetStage.BROADCAST_MAC : EthernetStage.GATEWAY_MAC;
            byte[] f = ethernet(dstMac, Frames.GUEST_MAC, EthernetStage.TYPE_IPV4, p);
            return vnet(f, e.vnetFlags, gsoType, ETH + ihl + l4HeaderLength, gsoSize, ETH + ihl, csumField);
        }

        // ---- to the stack and back ----

        /** Transmits as UserNetBackend's queue does, straight into the stack's frame handling; checks the replies. */
        List<byte[]> transmit(byte[] f) throws Exception {
            last = f;
            noteMss(f);
            if (f.length < hdrLen + ETH || f.length > hdrLen + ETH + 65535) return List.of(); // the queue drops these
            int keep = EthernetStage.usefulLength(MemorySegment.ofArray(f), hdrLen);
            fx.onLoop(() -> {
                ByteBuf b = fx.alloc.directBuffer(keep, keep).writeBytes(f, 0, keep);
                try {
                    if (fx.stack.link.attached()) fx.stack.link.receive(b, fx.packet);
                } finally {
                    b.release();
                }
                fx.checkBudget();
            });
            return settle();
        }

        /** Checks every frame that reached the guest since the last time, and what the stack reported. */
        List<byte[]> settle() {
            List<byte[]> out = new ArrayList<>();
            for (byte[] f; (f = fx.toGuest.poll()) != null; ) {
                try {
                    checkFrame(f);
                } catch (AssertionError e) {
                    throw new AssertionError(
                            "action " + action + ": frame to the guest " + hex(f) + ": " + e.getMessage()
                                    + "\nafter the guest's frame " + hex(last),
                            e);
                }
                track(f);
                out.add(f);
            }
            if (!fx.failures.isEmpty()) throw new AssertionError("action " + action, fx.failures.get(0));
            if (!Guard.violations.isEmpty())
                throw new AssertionError("action " + action + ": the stack reached out: " + Guard.violations);
            return out;
        }

        private void expect(boolean ok, String what, List<byte[]> out) {
            if (!ok) {
                StringBuilder s = new StringBuilder();
                for (byte[] f : out) s.append("\n  ").append(hex(f));
                throw new AssertionError(
                        "action " + action + ": expected " + what + " after " + hex(last) + "; the guest got:" + s);
            }
        }

        /** The MSS of every SYN the guest sends, as the stack reads it (64 to 65495), raises {@link #mssBound}. */
        private void noteMss(byte[] f) {
            ByteBuffer b = ByteBuffer.wrap(f);
            int ip = hdrLen + ETH;
            if (f.length < ip + 20 || type(f) != EthernetStage.TYPE_IPV4 || (f[ip + 9] & 0xff) != Inet.PROTO_TCP)
                return;
            int l4 = ip + (f[ip] & 0xf) * 4;
            if (f.length < l4 + 20 || (f[l4 + 13] & SYN) == 0) return;
            int end = Math.min(f.length, l4 + ((f[l4 + 12] & 0xff) >>> 4) * 4);
            for (int i = l4 + 20; i + 1 < end; ) {
                int kind = f[i] & 0xff, len = f[i + 1] & 0xff;
                if (kind == 0) return;
                if (kind == 1) {
                    i++;
                    continue;
                }
                if (kind == 2 && len == 4 && i + 4 <= end) {
                    int mss = b.getShort(i + 2) & 0xffff;
                    if (mss > 0) mssBound = Math.max(mssBound, Math.max(64, Math.min(mss, 65495)));
                }
                if (len < 2) return;
                i += len;
            }
        }

        /** Follows the stack's sequence numbers, so that the guest's next segment acknowledges them. */
        private void track(byte[] f) {
            if (protocol(f) != Inet.PROTO_TCP) return;
            ByteBuffer b = ByteBuffer.wrap(f);
            int ip = hdrLen + ETH, l4 = ip + 20;
            int total = b.getShort(ip + 2) & 0xffff, src = b.getInt(ip + 12);
            int srcPort = b.getShort(l4) & 0xffff, dstPort = b.getShort(l4 + 2) & 0xffff;
            int seq = b.getInt(l4 + 4), flags = f[l4 + 13] & 0xff;
            int data = total - 20 - ((f[l4 + 12] & 0xff) >>> 4) * 4;
            long flow = TcpStage.key(src, dstPort, srcPort);
            int end = seq + data + ((flags & SYN) != 0 ? 1 : 0) + ((flags & FIN) != 0 ? 1 : 0);
            Integer now = stackNext.get(flow);
            if ((flags & SYN) != 0 || now == null || end - now > 0) stackNext.put(flow, end);
            if ((flags & SYN) != 0 && (flags & ACK) == 0) guestNext.remove(flow);
        }

        // ---- what a frame to the guest must be ----

        /**
         * A frame to the guest: vnet header fields it may use (checksum and TSO only as negotiated), the gateway's
         * MAC as source, ARP that answers for a virtual host or asks for the guest, or IPv4 with IHL 5, a total
         * length that is the frame's, a valid header checksum, no fragment, a unicast source, the guest (or
         * broadcast for DHCP) as destination, and TCP, UDP or ICMP with a valid checksum (once completed where left
         * partial), within the MTU unless it is TCP within the guest's MSS.
         */
        void checkFrame(byte[] f) {
            ByteBuffer b = ByteBuffer.wrap(f);
            check(f.length >= hdrLen + ETH, "shorter than its headers");
            int flags = 0, gso = 0, hdr = 0, gsoSize = 0, csumStart = 0, csumOffset = 0;
            if (hdrLen > 0) {
                ByteBuffer le = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
                flags = f[0] & 0xff;
                gso = f[1] & 0xff;
                hdr = le.getShort(2) & 0xffff;
                gsoSize = le.getShort(4) & 0xffff;
                csumStart = le.getShort(6) & 0xffff;
                csumOffset = le.getShort(8) & 0xffff;
                if (hdrLen == VirtioNetHeader.LENGTH_V1) check(le.getShort(10) == 0, "num_buffers set");
                check(flags == 0 || flags == VirtioNetHeader.F_NEEDS_CSUM, "vnet flags " + flags);
                check(flags == 0 || link.toGuest().contains(NetOffload.CSUM), "a partial checksum not negotiated");
                check(gso == 0 || gso == VirtioNetHeader.GSO_TCPV4, "gso type " + gso);
                check(
                        gso == 0 || (link.toGuest().contains(NetOffload.TSO4) && flags != 0),
                        "TSO without TSO4 and a partial checksum");
            }
            int eth = hdrLen;
            long dstMac = ((b.getShort(eth) & 0xffffL) << 32) | (b.getInt(eth + 2) & 0xffffffffL);
            long srcMac = ((b.getShort(eth + 6) & 0xffffL) << 32) | (b.getInt(eth + 8) & 0xffffffffL);
            check(srcMac == EthernetStage.GATEWAY_MAC, "source MAC " + Long.toHexString(srcMac));
            boolean broadcast = dstMac == EthernetStage.BROADCAST_MAC;
            check(broadcast || (dstMac != 0 && (dstMac & 0x010000000000L) == 0), "destination MAC");
            int type = b.getShort(eth + 12) & 0xffff;
            if (type == EthernetStage.TYPE_ARP) {
                checkArp(b, eth + ETH, dstMac, flags | gso);
                return;
            }
            check(type == EthernetStage.TYPE_IPV4, "ether type " + Integer.toHexString(type));
            int ip = eth + ETH;
            check(f.length >= ip + 20, "IPv4 header cut short");
            check(f[ip] == 0x45, "version and IHL " + Integer.toHexString(f[ip] & 0xff));
            int total = b.getShort(ip + 2) & 0xffff;
            check(ip + total == f.length, "total length " + total + " in a frame of " + f.length);
            check(Frames.checksum(f, ip, 20, 0) == 0, "IPv4 header checksum");
            check((b.getShort(ip + 6) & 0x3fff) == 0, "a fragment");
            check(f[ip + 8] != 0, "TTL 0");
            int proto = f[ip + 9] & 0xff, src = b.getInt(ip + 12), dst = b.getInt(ip + 16);
            check(
                    (src >>> 24) != 0 && (src >>> 28) != 0xe && src != Inet.LIMITED_BROADCAST && src != Inet.BROADCAST,
                    "source " + Inet.text(src) + " is not a unicast address");
            if (dst == Inet.LIMITED_BROADCAST) check(broadcast, "broadcast to a unicast MAC");
            else {
                check(guestSource(dst), "destination " + Inet.text(dst) + " is no guest address");
                check(!broadcast, "unicast to the broadcast MAC");
            }
            int l4 = ip + 20, len = total - 20;
            check(gso == 0 || proto == Inet.PROTO_TCP, "GSO for protocol " + proto);
            if (flags != 0) {
                int field = proto == Inet.PROTO_TCP ? 16 : proto == Inet.PROTO_UDP ? 6 : -1;
                check(field > 0, "partial checksum for protocol " + proto);
                check(
                        csumStart == ETH + 20 && csumOffset == field,
                        "csum_start/offset " + csumStart + "/" + csumOffset);
                f = f.clone(); // the device completes it, as a NIC would
                f[l4 + field] = f[l4 + field + 1] = 0;
                long partial = b.getShort(l4 + field) & 0xffff;
                putShort(f, l4 + field, Frames.checksum(f, l4, len, partial));
            }
            switch (proto) {
                case Inet.PROTO_TCP -> {
                    check(len >= 20, "TCP header cut short");
                    int doff = ((f[l4 + 12] & 0xff) >>> 4) * 4;
                    check(doff >= 20 && doff <= len, "TCP data offset " + doff);
                    int data = len - doff;
                    if (gso != 0) {
                        check(gsoSize > 0 && gsoSize <= mssBound, "gso_size " + gsoSize + ", MSS " + mssBound);
                        check(hdr == ETH + 20 + doff, "hdr_len " + hdr);
                    } else {
                        check(data <= mssBound, "a segment of " + data + " bytes, MSS " + mssBound);
                    }
                    check(Frames.checksum(f, l4, len, Frames.pseudo(src, dst, proto, len)) == 0, "TCP checksum");
                }
                case Inet.PROTO_UDP -> {
                    check(total <= MTU, "a datagram of " + total + " bytes");
                    check(len >= 8 && (b.getShort(l4 + 4) & 0xffff) == len, "UDP length");
                    check(Frames.checksum(f, l4, len, Frames.pseudo(src, dst, proto, len)) == 0, "UDP checksum");
                    byte[] reply = dhcpReply(f);
                    if (reply != null) DhcpServerFuzzTest.checkWellFormed(reply);
                }
                case Inet.PROTO_ICMP -> {
                    check(total <= MTU, "an ICMP message of " + total + " bytes");
                    check(len >= 8, "ICMP header cut short");
                    int icmpType = f[l4] & 0xff, code = f[l4 + 1] & 0xff;
                    check(
                            icmpType == IcmpStage.ECHO_REPLY
                                    || (icmpType == IcmpStage.UNREACHABLE && (code <= 3 || code == 13)),
                            "ICMP type " + icmpType + " code " + code);
                    check(Frames.checksum(f, l4, len, 0) == 0, "ICMP checksum");
                }
                default -> check(false, "IP protocol " + proto);
            }
        }

        private void checkArp(ByteBuffer b, int o, long dstMac, int vnet) {
            check(vnet == 0, "vnet flags or GSO on ARP");
            check(b.limit() == o + 28, "ARP of " + (b.limit() - o) + " bytes");
            check(b.getShort(o) == 1 && b.getShort(o + 2) == 0x0800 && b.get(o + 4) == 6 && b.get(o + 5) == 4, "ARP");
            int op = b.getShort(o + 6);
            long sender = ((b.getShort(o + 8) & 0xffffL) << 32) | (b.getInt(o + 10) & 0xffffffffL);
            long target = ((b.getShort(o + 18) & 0xffffL) << 32) | (b.getInt(o + 20) & 0xffffffffL);
            check(sender == EthernetStage.GATEWAY_MAC, "ARP sender MAC");
            check(virtualHost(b.getInt(o + 14)), "ARP for " + Inet.text(b.getInt(o + 14)));
            if (op == 1) {
                check(dstMac == EthernetStage.BROADCAST_MAC && target == 0, "ARP request");
                check(guestSource(b.getInt(o + 24)), "ARP request for " + Inet.text(b.getInt(o + 24)));
            } else {
                check(op == 2 && target == dstMac, "ARP reply to " + Long.toHexString(target));
            }
        }

        private static void check(boolean ok, String what) {
            if (!ok) throw new AssertionError(what);
        }

        private int type(byte[] f) {
            return f.length < hdrLen + ETH ? -1 : ByteBuffer.wrap(f).getShort(hdrLen + 12) & 0xffff;
        }

        private int protocol(byte[] f) {
            return type(f) == EthernetStage.TYPE_IPV4 ? f[hdrLen + ETH + 9] & 0xff : -1;
        }

        /** The BOOTP payload of a frame from the DHCP server's port to the client's, or null. */
        private byte[] dhcpReply(byte[] f) {
            if (protocol(f) != Inet.PROTO_UDP) return null;
            int l4 = hdrLen + ETH + 20;
            ByteBuffer b = ByteBuffer.wrap(f);
            if ((b.getShort(l4) & 0xffff) != DhcpServer.SERVER_PORT
                    || (b.getShort(l4 + 2) & 0xffff) != DhcpServer.CLIENT_PORT) return null;
            return Arrays.copyOfRange(f, l4 + 8, f.length);
        }
    }

    static void putShort(byte[] b, int o, int v) {
        b[o] = (byte) (v >>> 8);
        b[o + 1] = (byte) v;
    }

    static String hex(byte[] f) {
        if (f == null) return "(none)";
        String h = HexFormat.of().formatHex(f, 0, Math.min(f.length, 96));
        return f.length > 96 ? h + "... (" + f.length + " bytes)" : h;
    }

    // ---- seeds ----

    /** Writes the fields of the actions above, for seeds. */
    static final class Script {
        final FuzzBytes.Writer w = new FuzzBytes.Writer();

        Script(int link) {
            w.u8(link);
        }

        Script raw(byte[] frame) {
            w.u8(A_RAW).u16(frame.length).bytes(frame);
            return this;
        }

        Script arpForGateway() {
            w.u8(A_ARP).u8(0).u8(0).u8(0).u8(0).u8(0);
            return this;
        }

        /** An echo request to 10.0.2.2 or 10.0.2.3 (choice 0 or 1) with {@code len} bytes of data. */
        Script ping(int dstChoice, int len) {
            w.u8(A_ICMP)
                    .u8(0)
                    .u8(0)
                    .u8(dstChoice)
                    .u8(0)
                    .u8(0)
                    .u16(0x4242)
                    .u16(1)
                    .u16(len);
            return this;
        }

        /** A UDP datagram from the guest's usual port; {@code dstChoice} as {@link Session#udp} reads it. */
        Script udp(int dstChoice, int[] dstFields, byte[] data) {
            w.u8(A_UDP).u8(0).u8(0).u8(dstChoice);
            for (int v : dstFields) w.u16(v);
            w.u8(0).u8(0).u8(data.length).bytes(data);
            return this;
        }

        /** UDP of {@code len} pattern bytes to 10.0.2.3:53 split by UDP GSO into {@code segment}-byte datagrams. */
        Script udpGso(int len, int segment) {
            w.u8(A_UDP).u8(0).u8(0).u8(0).u8(0).u8(2).u16(len).u8(0).u8(1).u16(segment);
            return this;
        }

        Script dhcp(int type, int requestedChoice, int serverIdChoice) {
            w.u8(A_DHCP).u8(0).u8(0);
            DhcpServerFuzzTest.request(w, type, 0x5eed, 0, requestedChoice, 0, serverIdChoice, 0);
            return this;
        }

        /**
         * A segment on the usual flow to 10.0.2.100:80 ({@code dstChoice} 0) or another, at the tracked sequence
         * numbers, with {@code data} pattern bytes starting with {@code first}.
         */
        Script tcp(int dstChoice, int[] dstFields, int flags, int data, int first, boolean vnet) {
            w.u8(A_TCP).u8(0).u8(0).u8(dstChoice);
            for (int v : dstFields) w.u16(v);
            w.u8(0).u8(flags ^ SYN).u8(0).u8(0).u16(0).u8(0).u16(data).u8(first);
            if (vnet) w.u8(0);
            return this;
        }

        Script await(int frames) {
            w.u8(A_WAIT).u8(frames - 1);
            return this;
        }

        Script rx(boolean on) {
            w.u8(A_RX).u8(on ? 1 : 0);
            return this;
        }

        /** Runs the timers after moving the clock on ({@link Session#tick}'s choice). */
        Script tick(int choice) {
            w.u8(A_TICK).u8(choice);
            return this;
        }

        byte[] bytes() {
            return w.toByteArray();
        }
    }

    /** Writes the hand-made seeds into the folder given (the Inputs folder of {@link #guestFrames}). */
    public static void main(String[] args) throws IOException {
        Path dir = Files.createDirectories(Path.of(args[0]));
        int[] none = {};
        Map<String, byte[]> seeds = new java.util.LinkedHashMap<>();
        seeds.put("arp-request", new Script(0).arpForGateway().bytes());
        seeds.put(
                "raw-arp-and-syn",
                new Script(0)
                        .raw(Frames.arpRequest(Inet.GUEST, Inet.DNS))
                        .raw(Frames.tcp(Inet.GUEST, FWD, 40001, 80, 5, 0, SYN, 65535, new byte[0], new byte[0]))
                        .await(1)
                        .bytes());
        seeds.put(
                "dhcp-discover-request",
                new Script(0).dhcp(1, 0, 0).dhcp(3, 1, 1).bytes());
        seeds.put(
                "ping-gateway-and-dns", new Script(0).ping(0, 56).ping(1, 1400).bytes());
        seeds.put(
                "dns-query",
                new Script(0)
                        .udp(
                                0,
                                none,
                                HexFormat.of().parseHex("123401000001000000000000076578616d706c6503636f6d0000010001"))
                        .await(1)
                        .bytes());
        seeds.put(
                "udp-refused",
                new Script(0)
                        .udp(3, new int[] {9999}, "x".getBytes(StandardCharsets.US_ASCII))
                        .udp(4, new int[] {0x08080808 >>> 16, 0x0808, 53}, new byte[] {1})
                        .bytes());
        seeds.put(
                "tcp-refused",
                new Script(0)
                        .tcp(2, new int[] {22}, SYN, 0, 0, false)
                        .tcp(3, new int[] {0x5db8, 0xd822, 443}, SYN, 0, 0, false)
                        .bytes());
        seeds.put(
                "tcp-guestfwd-echo",
                new Script(0)
                        .tcp(0, none, SYN, 0, 0, false)
                        .await(1)
                        .tcp(0, none, ACK, 0, 0, false)
                        .tcp(0, none, ACK | PSH, 5, 'h', false)
                        .await(2)
                        .tcp(0, none, ACK, 0, 0, false)
                        .tcp(0, none, ACK | FIN, 0, 0, false)
                        .await(2)
                        .tcp(0, none, ACK, 0, 0, false)
                        .tick(3)
                        .bytes());
        seeds.put(
                "tcp-dns-reset-by-host",
                new Script(0)
                        .tcp(1, none, SYN, 0, 0, false)
                        .await(1)
                        .tcp(1, none, ACK, 0, 0, false)
                        .tcp(1, none, ACK | PSH, 3, 'R', false)
                        .await(1)
                        .bytes());
        seeds.put(
                "tso-bulk-with-rx-stalls",
                new Script(3)
                        .tcp(0, none, SYN, 0, 0, true)
                        .await(1)
                        .tcp(0, none, ACK, 0, 0, true)
                        .tcp(0, none, ACK | PSH, 1, 'B', true)
                        .await(2)
                        .rx(false)
                        .tcp(0, none, ACK, 0, 0, true)
                        .await(1)
                        .rx(true)
                        .await(2)
                        .tcp(0, none, ACK, 0, 0, true)
                        .await(4)
                        .bytes());
        seeds.put("udp-gso", new Script(2).udpGso(1000, 100).await(4).bytes());
        seeds.put(
                "retransmit-then-give-up",
                new Script(0)
                        .tcp(0, none, SYN, 0, 0, false)
                        .await(1)
                        .tcp(0, none, ACK, 0, 0, false)
                        .tcp(0, none, ACK | PSH, 4, 'e', false)
                        .await(2)
                        .tick(1)
                        .tick(2)
                        .tick(26)
                        .tick(6)
                        .tick(6)
                        .bytes());
        seeds.put(
                "syn-ack-lost",
                new Script(0)
                        .tcp(0, none, SYN, 0, 0, false)
                        .await(1)
                        .tick(1)
                        .tick(2)
                        .tick(6)
                        .tick(6)
                        .tick(6)
                        .bytes());
        seeds.put(
                "idle-flows-expire",
                new Script(0)
                        .udp(0, none, "q".getBytes(StandardCharsets.US_ASCII))
                        .await(1)
                        .tcp(1, none, SYN, 0, 0, false)
                        .await(1)
                        .tcp(1, none, ACK, 0, 0, false)
                        .tick(5)
                        .tick(7)
                        .bytes());
        for (Map.Entry<String, byte[]> s : seeds.entrySet()) Files.write(dir.resolve(s.getKey()), s.getValue());
    }
}
