package dev.jvmm.bench;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.jvmm.devices.net.tap.TapBackend;
import dev.jvmm.devices.net.user.UserNetBackend;
import dev.jvmm.devices.virtio.net.VirtioNet;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.Tun;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Socket;
import java.nio.ByteBuffer;
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
 * Packets per second (and so throughput) of the virtio-net DEVICE with each backend, each next to a reference
 * measured in the same run:
 * <ul>
 * <li>{@code user}: a mock guest driver ({@link NetGuest}) sends a TCP stream of full 1514-byte frames through
 *     VirtioNet into the user-mode stack, which delivers it to a socket on the host's loopback (via 10.0.2.2);
 *     the driver reads the stack's ACKs from its receive queue, as a guest's TCP does.
 *     {@code user-ref}: the same bytes through a plain Java socket pair over loopback.</li>
 * <li>{@code tap}: the mock driver's frames through VirtioNet into a TAP interface in a network namespace
 *     (counted there by the kernel); {@code tap-ref}: a raw write(2) loop of the same frames on a TAP fd.
 *     Needs root and /dev/net/tun; without them the tap rows are skipped.</li>
 * </ul>
 * One benchmark operation is one frame (1460 bytes of TCP payload for user and user-ref).
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp <benchmarks classpath>
 * dev.jvmm.bench.VirtioNetBenchmark [--no-tap] [--quick]}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
public class VirtioNetBenchmark {
    static final int BATCH = 64, MSS = 1460, FRAME = 14 + 20 + 20 + MSS, HDR = VirtioNet.HEADER;
    static final long GATEWAY_MAC = 0x52550a000202L, GUEST_MAC = 0x525400123456L;
    static final int GUEST_IP = 0x0a00020f, GATEWAY_IP = 0x0a000202;
    static final java.lang.foreign.ValueLayout.OfInt NET_INT = JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    @Param({"user", "user-ref", "tap", "tap-ref"})
    public String path;

    private LoopbackSink sink;
    private Socket client;
    private OutputStream out;
    private final byte[] chunk = new byte[BATCH * MSS];
    private UserNetBackend user;
    private TapBackend tap;
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
            case "user", "user-ref" -> {
                sink = new LoopbackSink();
                if (path.equals("user")) {
                    user = LoopbackSink.userNetToLoopback();
                    guest = new NetGuest(user, (1L << VirtioNet.F_MAC) | (1L << VirtioNet.F_CSUM));
                    tcp = new GuestTcp(guest, sink.port());
                    tcp.connect();
                } else {
                    client = new Socket();
                    client.connect(sink.address(), 10_000);
                    out = client.getOutputStream();
                }
                sink.drain();
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
        if (tcp != null)
            System.out.printf(
                    "%n[user] guest sent %d payload bytes, %d acknowledged; the host sink read %d%n",
                    tcp.sndNxt - tcp.isn - 1, tcp.sndUna - tcp.isn - 1, sink.bytesRead());
        if (client != null) client.close();
        if (sink != null) sink.close();
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
            case "user" -> tcp.send(BATCH);
            case "user-ref" -> out.write(chunk);
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
     * The guest's side of one TCP connection to 10.0.2.2:port, enough to stream: handshake with MSS and window
     * scaling, full-size segments with the checksum left to the device (NEEDS_CSUM), the stack's ACKs read from the
     * receive queue to move the send window. Nothing is lost on this path, so nothing is retransmitted.
     */
    static final class GuestTcp {
        final NetGuest guest;
        final int port;
        final int isn = 0x10000000;
        int sndNxt, sndUna, rcvNxt, sndWscale;
        long window;

        GuestTcp(NetGuest guest, int port) {
            this.guest = guest;
            this.port = port;
        }

        void connect() {
            sndNxt = isn;
            sndUna = isn;
            byte[] syn = {2, 4, (byte) (MSS >>> 8), (byte) MSS, 1, 3, 3, 7}; // MSS, NOP, window scale 7
            int id = guest.tx.take();
            int len = segment(guest.tx.bytes(id), 0x02, syn, 0);
            guest.tx.offer(id, len, false);
            guest.tx.publish();
            sndNxt++;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (rcvNxt == 0) {
                if (System.nanoTime() > deadline)
                    throw new IllegalStateException("no SYN-ACK from the user-mode stack");
                reap();
                guest.awaitInterrupt(1000);
            }
            int ackId = guest.tx.take(); // the handshake's last ACK
            guest.tx.offer(ackId, segment(guest.tx.bytes(ackId), 0x10, new byte[0], 0), false);
            guest.tx.publish();
            while (guest.tx.freeCount() < NetGuest.QUEUE) {
                if (System.nanoTime() > deadline)
                    throw new IllegalStateException("the device did not take the handshake's ACK");
                reap();
                guest.awaitInterrupt(1000);
            }
            // Every data segment's headers are the same but for seq and ack: write them once into each tx buffer.
            for (int i = 0; i < NetGuest.QUEUE; i++) segment(guest.tx.bytes(i), 0x18, new byte[0], MSS);
        }

        /** Writes vnet header, Ethernet, IPv4 and TCP headers (checksum partial) and returns the frame length. */
        int segment(MemorySegment b, int flags, byte[] options, int payload) {
            ByteBuffer h = b.asByteBuffer().order(ByteOrder.BIG_ENDIAN);
            int tcpLen = 20 + options.length + payload, ipLen = 20 + tcpLen;
            h.put(0, (byte) 1); // NEEDS_CSUM
            h.put(1, (byte) 0);
            h.order(ByteOrder.LITTLE_ENDIAN)
                    .putShort(2, (short) 0)
                    .putShort(4, (short) 0)
                    .putShort(6, (short) (14 + 20))
                    .putShort(8, (short) 16)
                    .putShort(10, (short) 0)
                    .order(ByteOrder.BIG_ENDIAN);
            int e = HDR;
            putMac(b, e, GATEWAY_MAC);
            putMac(b, e + 6, GUEST_MAC);
            h.putShort(e + 12, (short) 0x0800);
            int ip = e + 14;
            h.put(ip, (byte) 0x45)
                    .put(ip + 1, (byte) 0)
                    .putShort(ip + 2, (short) ipLen)
                    .putShort(ip + 4, (short) 0)
                    .putShort(ip + 6, (short) 0x4000)
                    .put(ip + 8, (byte) 64)
                    .put(ip + 9, (byte) 6)
                    .putShort(ip + 10, (short) 0)
                    .putInt(ip + 12, GUEST_IP)
                    .putInt(ip + 16, GATEWAY_IP);
            h.putShort(ip + 10, (short) checksum(h, ip, 20, 0));
            int t = ip + 20;
            h.putShort(t, (short) 40000)
                    .putShort(t + 2, (short) port)
                    .putInt(t + 4, sndNxt)
                    .putInt(t + 8, rcvNxt)
                    .put(t + 12, (byte) (((20 + options.length) / 4) << 4))
                    .put(t + 13, (byte) flags)
                    .putShort(t + 14, (short) 0xffff)
                    .putShort(t + 16, (short) 0)
                    .putShort(t + 18, (short) 0);
            h.put(t + 20, options);
            long pseudo =
                    (GUEST_IP >>> 16) + (GUEST_IP & 0xffff) + (GATEWAY_IP >>> 16) + (GATEWAY_IP & 0xffff) + 6 + tcpLen;
            while ((pseudo >>> 16) != 0) pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
            h.putShort(t + 16, (short) pseudo); // NEEDS_CSUM: the pseudo-header sum, the device's side finishes it
            return HDR + 14 + ipLen;
        }

        static int checksum(ByteBuffer b, int off, int len, long s) {
            for (int i = 0; i < len; i += 2) s += b.getShort(off + i) & 0xffff;
            while ((s >>> 16) != 0) s = (s & 0xffff) + (s >>> 16);
            return (int) (~s & 0xffff);
        }

        /** Sends {@code count} full segments as the window and free descriptors allow. */
        void send(int count) {
            NetGuest.Ring tx = guest.tx;
            long base = HDR + 14 + 20;
            for (int sent = 0; sent < count; ) {
                reap();
                long room = window - (sndNxt - sndUna);
                int n = (int) Math.min(Math.min(count - sent, tx.freeCount()), Math.max(0, room / MSS));
                if (n == 0) {
                    guest.awaitInterrupt(200);
                    continue;
                }
                for (int i = 0; i < n; i++) {
                    int id = tx.take();
                    MemorySegment b = tx.bytes(id);
                    b.set(NET_INT, base + 4, sndNxt);
                    b.set(NET_INT, base + 8, rcvNxt);
                    tx.offer(id, HDR + FRAME, false);
                    sndNxt += MSS;
                }
                tx.publish();
                sent += n;
            }
        }

        /** Frees completed tx descriptors; reads the stack's segments (SYN-ACK, ACKs) and gives the buffers back. */
        void reap() {
            NetGuest.Ring tx = guest.tx, rx = guest.rx;
            for (long e; (e = tx.poll()) >= 0; ) tx.release((int) (e >>> 32));
            boolean gave = false;
            for (long e; (e = rx.poll()) >= 0; ) {
                int id = (int) (e >>> 32), len = (int) e;
                ByteBuffer b = rx.bytes(id).asByteBuffer().order(ByteOrder.BIG_ENDIAN);
                int ip = HDR + 14;
                if (len >= ip + 40 && b.getShort(HDR + 12) == 0x0800 && b.get(ip + 9) == 6) {
                    int t = ip + (b.get(ip) & 0xf) * 4;
                    int flags = b.get(t + 13) & 0xff;
                    if ((flags & 0x12) == 0x12 && rcvNxt == 0) { // SYN-ACK: the stack's window scale from its options
                        rcvNxt = b.getInt(t + 4) + 1;
                        int optEnd = t + ((b.get(t + 12) & 0xff) >>> 4) * 4;
                        for (int o = t + 20; o < optEnd; ) {
                            int kind = b.get(o) & 0xff;
                            if (kind == 0) break;
                            if (kind == 1) {
                                o++;
                                continue;
                            }
                            if (kind == 3) sndWscale = b.get(o + 2);
                            o += Math.max(2, b.get(o + 1) & 0xff);
                        }
                        window = b.getShort(t + 14) & 0xffff; // a SYN's window is never scaled
                        sndUna = b.getInt(t + 8);
                    } else if ((flags & 0x10) != 0) {
                        int ack = b.getInt(t + 8);
                        if (ack - sndUna > 0 && ack - sndNxt <= 0) sndUna = ack;
                        window = (long) (b.getShort(t + 14) & 0xffff) << sndWscale;
                    }
                }
                rx.offer(id, NetGuest.BUF, true);
                gave = true;
            }
            if (gave) rx.publish();
        }
    }

    private static void requireRoot() throws Exception {
        if (!Netns.run("id", "-u").trim().equals("0")
                || !java.nio.file.Files.exists(java.nio.file.Path.of("/dev/net/tun"))) {
            throw new IllegalStateException("the tap rows need root and /dev/net/tun (run with --no-tap otherwise)");
        }
    }

    /** Per-iteration frames/s of each path, and the device/reference ratios per iteration pair. */
    public static Map<String, Stats> run(boolean withTap, int warmups, int iterations, int iterationMs)
            throws Exception {
        OptionsBuilder ob = new OptionsBuilder();
        ob.include("^" + VirtioNetBenchmark.class.getName().replace(".", "\\.") + "\\.frames$")
                .warmupIterations(warmups)
                .warmupTime(org.openjdk.jmh.runner.options.TimeValue.milliseconds(iterationMs))
                .measurementIterations(iterations)
                .measurementTime(org.openjdk.jmh.runner.options.TimeValue.milliseconds(iterationMs))
                .forks(1);
        ob.param(
                "path",
                withTap ? new String[] {"user", "user-ref", "tap", "tap-ref"} : new String[] {"user", "user-ref"});
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
        for (String backend : new String[] {"user", "tap"}) {
            List<Double> dev = perIteration.get(backend), ref = perIteration.get(backend + "-ref");
            if (dev == null || ref == null) continue;
            out.put(backend, Stats.of(dev));
            out.put(backend + "-ref", Stats.of(ref));
            List<Double> ratio = new ArrayList<>();
            for (int i = 0; i < Math.min(dev.size(), ref.size()); i++) ratio.add(dev.get(i) / ref.get(i));
            out.put(backend + "-ratio", Stats.of(ratio));
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        boolean tapRows = !List.of(args).contains("--no-tap"),
                quick = List.of(args).contains("--quick");
        Map<String, Stats> s = quick ? run(tapRows, 1, 3, 1000) : run(tapRows, 2, 5, 2000);
        System.out.println();
        for (String backend : new String[] {"user", "tap"}) {
            if (!s.containsKey(backend)) continue;
            Stats dev = s.get(backend), ref = s.get(backend + "-ref"), ratio = s.get(backend + "-ratio");
            String refName =
                    backend.equals("user") ? "Java socket pair over loopback" : "raw write(2) loop on a TAP fd";
            double bytes = backend.equals("user") ? MSS : FRAME; // user: TCP payload delivered; tap: frames
            System.out.printf(
                    "virtio-net + %-4s: %s kframes/s = %s MiB/s%n",
                    backend, scaled(dev, 1e-3, "%.1f"), scaled(dev, bytes / (1 << 20), "%.1f"));
            System.out.printf(
                    "  reference (%s): %s k%s/s = %s MiB/s%n",
                    refName,
                    scaled(ref, 1e-3, "%.1f"),
                    backend.equals("user") ? "×1460 B writes" : "frames",
                    scaled(ref, bytes / (1 << 20), "%.1f"));
            System.out.printf(
                    "  device / reference: %s (median, min–max over %d iteration pairs)%n",
                    ratio.format("%.3f"), ratio.count());
        }
    }

    static String scaled(Stats s, double f, String pattern) {
        return new Stats(s.count(), s.median() * f, s.min() * f, s.max() * f, s.p25() * f, s.p75() * f).format(pattern);
    }
}
