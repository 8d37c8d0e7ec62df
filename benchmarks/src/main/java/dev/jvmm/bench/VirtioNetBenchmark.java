package dev.jvmm.bench;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.jvmm.devices.net.VirtioNetHeader;
import dev.jvmm.devices.net.tap.TapBackend;
import dev.jvmm.devices.net.user.UserNetBackend;
import dev.jvmm.devices.virtio.net.VirtioNet;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.Tun;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Throughput of the virtio-net DEVICE with each backend, each next to a reference measured in the same run:
 * <ul>
 * <li>{@code user}: a mock guest driver ({@link NetGuest}) streams TCP to a socket on the host's loopback (via
 *     10.0.2.2) through VirtioNet and the user-mode stack, as a Linux guest does: TSO frames of up to 64 KiB
 *     (HOST_TSO4, checksum left to the device), the payload copied from an application buffer into each frame;
 *     the driver reads the stack's ACKs from its receive queue. {@code user-ref}: the same bytes through a plain
 *     Java socket pair over loopback.</li>
 * <li>{@code user-rx}: the other way, a host socket writing to the mock guest, which takes the stack's TSO frames
 *     (GUEST_TSO4, mergeable 4 KiB receive buffers, as Linux's grow to), copies each payload out and ACKs each batch.
 *     {@code user-rx-ref}: a Java socket pair over loopback, read by the benchmark thread.</li>
 * <li>{@code pasta} and {@code pasta-rx}: the same two transfers through passt's pasta, a Linux network
 *     namespace's TCP as the guest (needs root and the {@code passt} package; skipped without).</li>
 * <li>{@code tap}: the mock driver's frames through VirtioNet into a TAP interface in a network namespace
 *     (counted there by the kernel); {@code tap-ref}: a raw write(2) loop of the same frames on a TAP fd.
 *     Needs root and /dev/net/tun; without them the tap rows are skipped.</li>
 * </ul>
 * One benchmark operation is one frame: 1460 bytes of TCP payload for the user and pasta rows (the TCP rows move
 * {@code BATCH * 1460} bytes per invocation, in frames as large as the path makes them), 1514 for tap.
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp <benchmarks classpath>
 * dev.jvmm.bench.VirtioNetBenchmark [--no-tap] [--no-pasta] [--quick]}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
public class VirtioNetBenchmark {
    static final int BATCH = 64, MSS = 1460, FRAME = 14 + 20 + 20 + MSS, HDR = VirtioNet.HEADER;
    /** A TSO frame's payload: the most whole MSS-sized segments an IPv4 packet holds. */
    static final int TSO_PAYLOAD = (65535 - 40) / MSS * MSS;

    static final int TX_BUF = HDR + 14 + 40 + TSO_PAYLOAD, RX_BUF = 4096;
    static final long GATEWAY_MAC = 0x52550a000202L, GUEST_MAC = 0x525400123456L;
    static final int GUEST_IP = 0x0a00020f, GATEWAY_IP = 0x0a000202;
    static final java.lang.foreign.ValueLayout.OfInt NET_INT = JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    static final java.lang.foreign.ValueLayout.OfShort NET_SHORT = JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    /** What the mock guest's driver takes: TSO and checksum offload both ways, mergeable receive buffers. */
    static final long TCP_FEATURES = (1L << VirtioNet.F_MAC)
            | (1L << VirtioNet.F_CSUM)
            | (1L << VirtioNet.F_HOST_TSO4)
            | (1L << VirtioNet.F_GUEST_CSUM)
            | (1L << VirtioNet.F_GUEST_TSO4)
            | (1L << VirtioNet.F_MRG_RXBUF);

    @Param({"user", "user-ref", "user-rx", "user-rx-ref", "pasta", "pasta-rx", "tap", "tap-ref"})
    public String path;

    private LoopbackSink sink;
    private LoopbackSource source;
    private Socket client;
    private OutputStream out;
    private InputStream in;
    private final byte[] chunk = new byte[BATCH * MSS];
    private UserNetBackend user;
    private TapBackend tap;
    private Pasta pasta;
    private NetGuest guest;
    private String namespace;
    private int tapFd = -1;
    private Arena tapArena;
    private MemorySegment tapFrames;
    private GuestTcp tcp;
    private long framesSent;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        switch (path) {
            case "user", "user-ref", "pasta" -> {
                sink = new LoopbackSink();
                if (path.equals("user")) {
                    user = LoopbackSink.userNetToLoopback();
                    guest = new NetGuest(user, TCP_FEATURES, TX_BUF, RX_BUF);
                    tcp = new GuestTcp(guest, sink.port());
                    tcp.connect();
                } else {
                    connectClient(sink.port());
                    out = client.getOutputStream();
                }
                sink.drain();
            }
            case "user-rx", "user-rx-ref", "pasta-rx" -> {
                source = new LoopbackSource();
                if (path.equals("user-rx")) {
                    user = LoopbackSink.userNetToLoopback();
                    guest = new NetGuest(user, TCP_FEATURES, TX_BUF, RX_BUF);
                    tcp = new GuestTcp(guest, source.port());
                    tcp.connect();
                } else {
                    connectClient(source.port());
                    in = client.getInputStream();
                }
            }
            case "tap", "tap-ref" -> {
                requireRoot();
                namespace = "jvmm-bench-net-" + ProcessHandle.current().pid();
                Netns.run("ip", "netns", "add", namespace);
                if (path.equals("tap")) {
                    tap = Netns.openTap0(namespace);
                    guest = new NetGuest(tap, (1L << VirtioNet.F_MAC));
                    for (int id = 0; id < NetGuest.QUEUE; id++) writeTestFrame(guest.tx.bytes(id));
                } else {
                    tapFd = Netns.call(namespace, VirtioNetBenchmark::openRawTap);
                    Netns.run("ip", "netns", "exec", namespace, "ip", "link", "set", "tap0", "up");
                    tapArena = Arena.ofConfined();
                    tapFrames = tapArena.allocate(HDR + FRAME);
                    writeTestFrame(tapFrames);
                }
            }
            default -> throw new IllegalArgumentException(path);
        }
    }

    /** A client socket to the host's {@code port}: straight over loopback, or from pasta's namespace. */
    private void connectClient(int port) throws Exception {
        if (path.startsWith("pasta")) {
            requireRoot();
            pasta = Pasta.start("jvmm-bench-pasta-" + ProcessHandle.current().pid());
            client = Netns.call(pasta.namespace, () -> {
                Socket s = new Socket();
                s.connect(new InetSocketAddress(pasta.gateway, port), 10_000);
                return s;
            });
        } else {
            client = new Socket();
            client.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 10_000);
        }
    }

    /** A frame the namespace's kernel counts and drops: broadcast, an experimental EtherType. */
    private static void writeTestFrame(MemorySegment b) {
        b.asSlice(0, HDR).fill((byte) 0);
        for (int i = 0; i < 6; i++) b.set(JAVA_BYTE, HDR + i, (byte) 0xff);
        putMac(b, HDR + 6, GUEST_MAC);
        b.set(JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), HDR + 12, (short) 0x88b5);
        for (int i = 14; i < FRAME; i++) b.set(JAVA_BYTE, HDR + i, (byte) i);
    }

    static void putMac(MemorySegment b, long at, long mac) {
        for (int i = 0; i < 6; i++) b.set(JAVA_BYTE, at + i, (byte) (mac >>> (40 - 8 * i)));
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        if (path.equals("tap")) {
            long counted = rxPackets();
            System.out.printf(
                    "%n[tap] device completed %d frames, the namespace's tap0 counted %d%n", framesSent, counted);
        }
        if (path.equals("tap-ref"))
            System.out.printf("%n[tap-ref] wrote %d frames, tap0 counted %d%n", framesSent, rxPackets());
        if (tcp != null && sink != null)
            System.out.printf(
                    "%n[user] guest sent %d payload bytes, %d acknowledged; the host sink read %d%n",
                    tcp.sndNxt - tcp.isn - 1, tcp.sndUna - tcp.isn - 1, sink.bytesRead());
        if (tcp != null && source != null)
            System.out.printf(
                    "%n[user-rx] guest received %d payload bytes in order; the host source wrote %d%n",
                    tcp.received, source.bytesWritten());
        if (client != null) client.close();
        if (sink != null) sink.close();
        if (source != null) source.close();
        if (pasta != null) pasta.close();
        if (guest != null) guest.close();
        if (user != null) user.close();
        if (tap != null) tap.close();
        if (tapFd >= 0) Libc.close(tapFd);
        if (tapArena != null) tapArena.close();
        if (namespace != null) Netns.run("ip", "netns", "delete", namespace);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void frames() throws Exception {
        switch (path) {
            case "user" -> tcp.send(chunk.length);
            case "user-ref", "pasta" -> out.write(chunk);
            case "user-rx" -> tcp.receive(chunk.length);
            case "user-rx-ref", "pasta-rx" -> in.readNBytes(chunk, 0, chunk.length);
            case "tap" -> tapDevice(BATCH);
            default -> {
                for (int i = 0; i < BATCH; i++) {
                    long r = Libc.writeRaw(tapFd, tapFrames, HDR + FRAME);
                    if (r < 0) throw new IllegalStateException("write to the TAP failed: errno " + -r);
                }
            }
        }
        framesSent += BATCH;
    }

    private void tapDevice(int count) {
        NetGuest.Ring tx = guest.tx;
        for (int sent = 0; sent < count; ) {
            for (long e; (e = tx.poll()) >= 0; ) tx.release((int) (e >>> 32));
            int n = Math.min(count - sent, tx.freeCount());
            if (n == 0) {
                guest.awaitInterrupt(200);
                continue;
            }
            for (int i = 0; i < n; i++) tx.offer(tx.take(), HDR + FRAME, false);
            tx.publish();
            sent += n;
        }
    }

    private long rxPackets() {
        try {
            return Long.parseLong(
                    Netns.run("ip", "netns", "exec", namespace, "cat", "/sys/class/net/tap0/statistics/rx_packets")
                            .trim());
        } catch (Exception e) {
            return -1;
        }
    }

    /** A TAP fd made in the current thread's namespace, with the same vnet header the backend uses. */
    private static int openRawTap() {
        int fd = Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ifr = Tun.ifreq(a, "tap0");
            Tun.setFlags(ifr, Tun.IFF_TAP | Tun.IFF_NO_PI | Tun.IFF_VNET_HDR);
            Libc.ioctl(fd, "TUNSETIFF", Tun.TUNSETIFF, ifr);
            MemorySegment size = a.allocate(JAVA_INT_UNALIGNED);
            size.set(JAVA_INT_UNALIGNED, 0, HDR);
            Libc.ioctl(fd, "TUNSETVNETHDRSZ", Tun.TUNSETVNETHDRSZ, size);
            return fd;
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /**
     * The guest's side of one TCP connection to 10.0.2.2:port, enough to stream either way: handshake with MSS and
     * window scaling; sending, TSO frames of up to {@link #TSO_PAYLOAD} bytes with the checksum left to the device
     * (NEEDS_CSUM) and the payload copied in from an application buffer, the stack's ACKs read from the receive
     * queue to move the send window; receiving, the stack's frames read from mergeable buffers, their payload
     * copied out, one ACK per batch. Nothing is lost on this path, so nothing is retransmitted.
     */
    static final class GuestTcp {
        static final int WSCALE = 7, L4 = HDR + 14 + 20;
        final NetGuest guest;
        final int port;
        final int isn = 0x10000000;
        int sndNxt, sndUna, rcvNxt, sndWscale, ackedRcv;
        long window, received;
        /** Bytes the benchmark asked for beyond what was sent or received (negative: ahead of it). */
        private long owed;
        /** The application's side: copied into each frame sent, and each payload received is copied here. */
        private final MemorySegment app = MemorySegment.ofArray(new byte[TSO_PAYLOAD]);

        GuestTcp(NetGuest guest, int port) {
            this.guest = guest;
            this.port = port;
        }

        void connect() {
            sndNxt = isn;
            sndUna = isn;
            int id = guest.tx.take();
            guest.tx.offer(id, segment(guest.tx.bytes(id), 0x02, true, 0), false);
            guest.tx.publish();
            sndNxt++;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (rcvNxt == 0) {
                if (System.nanoTime() > deadline)
                    throw new IllegalStateException("no SYN-ACK from the user-mode stack");
                reap();
                guest.awaitInterrupt(1000);
            }
            ack(); // the handshake's last ACK
            while (guest.tx.freeCount() < NetGuest.QUEUE) {
                if (System.nanoTime() > deadline)
                    throw new IllegalStateException("the device did not take the handshake's ACK");
                reap();
                guest.awaitInterrupt(1000);
            }
        }

        /**
         * Writes vnet header, Ethernet, IPv4 and TCP headers (checksum partial; TSO when the payload is over one
         * MSS) for a segment with {@code payload} bytes (the caller puts them in) and returns the frame length.
         */
        int segment(MemorySegment b, int flags, boolean synOptions, int payload) {
            int tcpLen = (synOptions ? 28 : 20) + payload, ipLen = 20 + tcpLen;
            b.set(JAVA_BYTE, 0, (byte) 1); // NEEDS_CSUM
            b.set(JAVA_BYTE, 1, (byte) (payload > MSS ? 1 : 0)); // GSO_TCPV4
            VirtioNetHeader.setU16(b, 2, payload > MSS ? 14 + 40 : 0); // hdr_len
            VirtioNetHeader.setU16(b, 4, payload > MSS ? MSS : 0); // gso_size
            VirtioNetHeader.setU16(b, 6, 14 + 20); // csum_start
            VirtioNetHeader.setU16(b, 8, 16); // csum_offset
            VirtioNetHeader.setU16(b, 10, 0);
            int e = HDR;
            putMac(b, e, GATEWAY_MAC);
            putMac(b, e + 6, GUEST_MAC);
            b.set(NET_SHORT, e + 12, (short) 0x0800);
            int ip = e + 14;
            b.set(NET_INT, ip, 0x45000000 | ipLen);
            b.set(NET_INT, ip + 4, 0x4000); // id 0, DF
            b.set(NET_INT, ip + 8, 0x40060000); // TTL 64, TCP, checksum 0 until computed below
            b.set(NET_INT, ip + 12, GUEST_IP);
            b.set(NET_INT, ip + 16, GATEWAY_IP);
            long sum = 0;
            for (int i = 0; i < 20; i += 2) sum += b.get(NET_SHORT, ip + i) & 0xffff;
            b.set(NET_SHORT, ip + 10, (short) ~fold(sum));
            int t = ip + 20;
            b.set(NET_SHORT, t, (short) 40000);
            b.set(NET_SHORT, t + 2, (short) port);
            b.set(NET_INT, t + 4, sndNxt);
            b.set(NET_INT, t + 8, rcvNxt);
            b.set(NET_SHORT, t + 12, (short) ((((synOptions ? 28 : 20) / 4) << 12) | flags));
            b.set(NET_SHORT, t + 14, (short) 0xffff); // with scale 7: 8 MiB of receive window
            b.set(NET_INT, t + 16, 0);
            if (synOptions) { // MSS 1460, NOP, window scale 7, NOP x 3
                b.set(NET_INT, t + 20, 0x02040000 | MSS);
                b.set(NET_INT, t + 24, 0x01030300 | WSCALE);
            }
            long pseudo =
                    (GUEST_IP >>> 16) + (GUEST_IP & 0xffff) + (GATEWAY_IP >>> 16) + (GATEWAY_IP & 0xffff) + 6 + tcpLen;
            // NEEDS_CSUM: the pseudo-header sum in the checksum field, the device's side finishes it
            b.set(NET_SHORT, t + 16, (short) fold(pseudo));
            return HDR + 14 + ipLen;
        }

        static int fold(long s) {
            while ((s >>> 16) != 0) s = (s & 0xffff) + (s >>> 16);
            return (int) s;
        }

        /** Sends {@code bytes} of payload as the window and free descriptors allow, in frames of up to 64 KiB. */
        void send(long bytes) {
            NetGuest.Ring tx = guest.tx;
            owed += bytes;
            while (owed > 0) {
                reap();
                long room = window - (sndNxt - sndUna);
                int len = (int) Math.max(0, Math.min(TSO_PAYLOAD, room)) / MSS * MSS;
                if (len == 0 || tx.freeCount() == 0) {
                    guest.awaitInterrupt(200);
                    continue;
                }
                int id = tx.take();
                MemorySegment b = tx.bytes(id);
                MemorySegment.copy(app, 0, b, L4 + 20, len); // the application's write(2)
                tx.offer(id, segment(b, 0x18, false, len), false);
                tx.publish();
                sndNxt += len;
                owed -= len;
            }
        }

        /** Takes {@code bytes} of payload from the stack, ACKing each batch of frames read. */
        void receive(long bytes) {
            owed += bytes;
            while (owed > 0) {
                long got = received;
                reap();
                if (rcvNxt != ackedRcv) ack();
                if (received == got) guest.awaitInterrupt(200);
                owed -= received - got;
            }
        }

        /** A pure ACK of everything received, once a transmit descriptor is free. */
        private void ack() {
            NetGuest.Ring tx = guest.tx;
            while (tx.freeCount() == 0) {
                for (long e; (e = tx.poll()) >= 0; ) tx.release((int) (e >>> 32));
                if (tx.freeCount() == 0) guest.awaitInterrupt(200);
            }
            int id = tx.take();
            tx.offer(id, segment(tx.bytes(id), 0x10, false, 0), false);
            tx.publish();
            ackedRcv = rcvNxt;
        }

        /**
         * Frees completed tx descriptors; reads the stack's frames (SYN-ACK, ACKs, data spread over mergeable
         * buffers) and gives the buffers back.
         */
        void reap() {
            NetGuest.Ring tx = guest.tx, rx = guest.rx;
            for (long e; (e = tx.poll()) >= 0; ) tx.release((int) (e >>> 32));
            boolean gave = false;
            for (long e; (e = rx.poll()) >= 0; ) {
                int id = (int) (e >>> 32), len = (int) e;
                MemorySegment b = rx.bytes(id);
                int buffers = VirtioNetHeader.u16(b, VirtioNetHeader.OFF_NUM_BUFFERS);
                int ip = HDR + 14;
                if (len >= ip + 40 && b.get(NET_SHORT, HDR + 12) == 0x0800 && b.get(JAVA_BYTE, ip + 9) == 6) {
                    int t = ip + (b.get(JAVA_BYTE, ip) & 0xf) * 4;
                    int dataAt = t + ((b.get(JAVA_BYTE, t + 12) & 0xff) >>> 4) * 4;
                    int payload = (b.get(NET_SHORT, ip + 2) & 0xffff) - (dataAt - ip);
                    int flags = b.get(JAVA_BYTE, t + 13) & 0xff;
                    if ((flags & 0x12) == 0x12 && rcvNxt == 0) {
                        synAck(b, t, dataAt);
                    } else {
                        if ((flags & 0x10) != 0) {
                            int ack = b.get(NET_INT, t + 8);
                            if (ack - sndUna > 0 && ack - sndNxt <= 0) sndUna = ack;
                            window = (long) (b.get(NET_SHORT, t + 14) & 0xffff) << sndWscale;
                        }
                        if (payload > 0 && b.get(NET_INT, t + 4) == rcvNxt) {
                            copyOut(b, dataAt, len, buffers);
                            rcvNxt += payload;
                            received += payload;
                            buffers = 1; // copyOut took and gave back the others
                        }
                    }
                }
                for (int i = 1; i < buffers; i++) { // a frame not read: its other buffers go back unread
                    long more = rx.poll();
                    if (more < 0) throw new IllegalStateException("device published part of a frame");
                    rx.offer((int) (more >>> 32), rx.bufSize, true);
                }
                rx.offer(id, rx.bufSize, true);
                gave = true;
            }
            if (gave) rx.publish();
        }

        /** Copies a payload out of the frame's buffers (the application's read(2)) and gives back all but the first. */
        private void copyOut(MemorySegment first, int dataAt, int len, int buffers) {
            NetGuest.Ring rx = guest.rx;
            long at = Math.min(len - dataAt, app.byteSize());
            MemorySegment.copy(first, dataAt, app, 0, at);
            for (int i = 1; i < buffers; i++) {
                long e = rx.poll();
                if (e < 0) throw new IllegalStateException("device published part of a frame");
                int n = (int) Math.min((int) e, app.byteSize() - at);
                MemorySegment.copy(rx.bytes((int) (e >>> 32)), 0, app, at, n);
                at += n;
                rx.offer((int) (e >>> 32), rx.bufSize, true);
            }
        }

        /** The stack's SYN-ACK: its window scale from the options, its ISN, our SYN acknowledged. */
        private void synAck(MemorySegment b, int t, int optEnd) {
            rcvNxt = b.get(NET_INT, t + 4) + 1;
            ackedRcv = rcvNxt - 1;
            for (int o = t + 20; o < optEnd; ) {
                int kind = b.get(JAVA_BYTE, o) & 0xff;
                if (kind == 0) break;
                if (kind == 1) {
                    o++;
                    continue;
                }
                if (kind == 3) sndWscale = b.get(JAVA_BYTE, o + 2);
                o += Math.max(2, b.get(JAVA_BYTE, o + 1) & 0xff);
            }
            window = b.get(NET_SHORT, t + 14) & 0xffff; // a SYN's window is never scaled
            sndUna = b.get(NET_INT, t + 8);
        }
    }

    private static void requireRoot() throws Exception {
        if (!Netns.run("id", "-u").trim().equals("0")
                || !java.nio.file.Files.exists(java.nio.file.Path.of("/dev/net/tun"))) {
            throw new IllegalStateException(
                    "the tap and pasta rows need root and /dev/net/tun (run with --no-tap --no-pasta otherwise)");
        }
    }

    /** Each measured row and the row it is a ratio to, measured in the same run. */
    static final Map<String, String> REFERENCE = Map.of(
            "user", "user-ref",
            "user-rx", "user-rx-ref",
            "pasta", "user-ref",
            "pasta-rx", "user-rx-ref",
            "tap", "tap-ref");

    /**
     * Per-iteration frames/s of each path ({@code user}, {@code user-ref}, ...), the ratio of each row to its
     * reference per iteration pair ({@code user-ratio}: to the socket pair), and user-mode networking to pasta
     * ({@code user-pasta-ratio}, {@code user-rx-pasta-rx-ratio}).
     */
    public static Map<String, Stats> run(
            boolean withTap, boolean withPasta, int warmups, int iterations, int iterationMs) throws Exception {
        OptionsBuilder ob = new OptionsBuilder();
        ob.include("^" + VirtioNetBenchmark.class.getName().replace(".", "\\.") + "\\.frames$")
                .warmupIterations(warmups)
                .warmupTime(org.openjdk.jmh.runner.options.TimeValue.milliseconds(iterationMs))
                .measurementIterations(iterations)
                .measurementTime(org.openjdk.jmh.runner.options.TimeValue.milliseconds(iterationMs))
                .forks(1);
        List<String> paths = new ArrayList<>(List.of("user", "user-ref", "user-rx", "user-rx-ref"));
        if (withPasta) paths.addAll(List.of("pasta", "pasta-rx"));
        if (withTap) paths.addAll(List.of("tap", "tap-ref"));
        ob.param("path", paths.toArray(String[]::new));
        Collection<RunResult> results = new Runner(ob.build()).run();
        Map<String, List<Double>> perIteration = new HashMap<>();
        for (RunResult r : results) {
            List<Double> its = new ArrayList<>();
            for (BenchmarkResult br : r.getBenchmarkResults())
                for (IterationResult ir : br.getIterationResults())
                    its.add(ir.getPrimaryResult().getScore());
            perIteration.put(r.getParams().getParam("path"), its);
        }
        Map<String, Stats> out = new java.util.LinkedHashMap<>();
        for (String row : List.of("user", "user-rx", "pasta", "pasta-rx", "tap")) {
            String refRow = REFERENCE.get(row);
            List<Double> dev = perIteration.get(row), ref = perIteration.get(refRow);
            if (dev == null || ref == null) continue;
            out.put(row, Stats.of(dev));
            out.put(refRow, Stats.of(ref));
            out.put(row + "-ratio", ratios(dev, ref));
        }
        for (String[] pair : new String[][] {{"user", "pasta"}, {"user-rx", "pasta-rx"}}) {
            List<Double> a = perIteration.get(pair[0]), b = perIteration.get(pair[1]);
            if (a != null && b != null) out.put(pair[0] + "-" + pair[1] + "-ratio", ratios(a, b));
        }
        return out;
    }

    private static Stats ratios(List<Double> a, List<Double> b) {
        List<Double> ratio = new ArrayList<>();
        for (int i = 0; i < Math.min(a.size(), b.size()); i++) ratio.add(a.get(i) / b.get(i));
        return Stats.of(ratio);
    }

    /** Whether the pasta rows can run here: root, and passt's pasta installed. */
    static boolean pastaAvailable() {
        try {
            return Pasta.available() && Netns.run("id", "-u").trim().equals("0");
        } catch (Exception e) {
            return false;
        }
    }

    public static void main(String[] args) throws Exception {
        boolean tapRows = !List.of(args).contains("--no-tap"),
                pastaRows = !List.of(args).contains("--no-pasta") && pastaAvailable(),
                quick = List.of(args).contains("--quick");
        // Warm-up is long: on a small, busy host C2 takes seconds to compile the stack's paths.
        Map<String, Stats> s = quick ? run(tapRows, pastaRows, 1, 3, 1000) : run(tapRows, pastaRows, 8, 5, 2000);
        System.out.println();
        for (String row : List.of("user", "user-rx", "pasta", "pasta-rx", "tap")) {
            if (!s.containsKey(row)) continue;
            String refRow = REFERENCE.get(row);
            Stats dev = s.get(row), ref = s.get(refRow), ratio = s.get(row + "-ratio");
            boolean tcp = !row.equals("tap");
            String refName = tcp ? "Java socket pair over loopback" : "raw write(2) loop on a TAP fd";
            double bytes = tcp ? MSS : FRAME; // TCP rows: payload delivered; tap: frames
            System.out.printf(
                    "%-20s: %s MiB/s%n",
                    row.startsWith("pasta") ? "pasta " + row : "virtio-net + " + row,
                    scaled(dev, bytes / (1 << 20), "%.1f"));
            System.out.printf("  reference (%s): %s MiB/s%n", refName, scaled(ref, bytes / (1 << 20), "%.1f"));
            System.out.printf(
                    "  / reference: %s (median, min–max over %d iteration pairs)%n",
                    ratio.format("%.3f"), ratio.count());
        }
        for (String r : List.of("user-pasta-ratio", "user-rx-pasta-rx-ratio"))
            if (s.containsKey(r))
                System.out.printf("%s: %s (median, min–max)%n", r, s.get(r).format("%.3f"));
        System.out.println("load average: " + Report.loadAverage());
    }

    static String scaled(Stats s, double f, String pattern) {
        return new Stats(s.count(), s.median() * f, s.min() * f, s.max() * f, s.p25() * f, s.p75() * f).format(pattern);
    }
}
