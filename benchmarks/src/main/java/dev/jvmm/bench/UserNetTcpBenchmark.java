package dev.jvmm.bench;

import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.devices.net.tap.TapBackend;
import dev.jvmm.devices.net.user.UserNetBackend;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.Collection;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * TCP throughput of the user-mode stack (Linux in a network namespace as the guest, a TAP between it and the
 * stack, a server on the host's loopback reached through 10.0.2.2) next to a plain Java socket pair over
 * loopback, measured in the same run. Needs root, iproute2 and /dev/net/tun.
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp <benchmarks classpath> dev.jvmm.bench.UserNetTcpBenchmark}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 4, time = 3)
public class UserNetTcpBenchmark {
    /** Bytes written per benchmark operation. */
    static final int CHUNK = 1 << 20;

    @Param({"usernet", "loopback"})
    public String path;

    private String namespace;
    private TapBackend tap;
    private UserNetBackend user;
    private LoopbackSink sink;
    private Socket client;
    private OutputStream out;
    private final byte[] chunk = new byte[CHUNK];

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        sink = new LoopbackSink();
        if (path.equals("usernet")) {
            namespace = "jvmm-bench-" + ProcessHandle.current().pid();
            Netns.run("ip", "netns", "add", namespace);
            Netns.run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up");
            tap = Netns.openTap0(namespace);
            user = LoopbackSink.userNetToLoopback();
            pump(tap, user);
            Netns.run("ip", "netns", "exec", namespace, "ip", "addr", "add", "10.0.2.15/24", "dev", "tap0");
            Netns.run("ip", "netns", "exec", namespace, "ip", "route", "add", "default", "via", "10.0.2.2");
            client = Netns.call(namespace, () -> {
                Socket s = new Socket();
                s.connect(new InetSocketAddress("10.0.2.2", sink.port()), 10_000);
                return s;
            });
        } else {
            client = new Socket();
            client.connect(sink.address(), 10_000);
        }
        sink.drain();
        out = client.getOutputStream();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        if (client != null) client.close();
        if (sink != null) sink.close();
        if (tap != null) tap.deactivate();
        if (user != null) user.close();
        if (tap != null) tap.close();
        if (namespace != null) Netns.run("ip", "netns", "delete", namespace);
    }

    @Benchmark
    public void sendOneMiB() throws Exception {
        out.write(chunk);
    }

    /** Connects two backends as a virtio-net device would connect a backend to a guest. */
    private static void pump(NetBackend a, NetBackend b) {
        NetQueue[] q = new NetQueue[2];
        GuestPort toB = port(q, 1), toA = port(q, 0);
        q[0] = activate(a, b, toB);
        q[1] = activate(b, a, toA);
    }

    /** One queue of {@code backend} whose frames go to {@code port}, with the offloads {@code peer} takes. */
    private static NetQueue activate(NetBackend backend, NetBackend peer, GuestPort port) {
        Set<NetOffload> offloads =
                intersect(backend.capabilities().toGuest(), peer.capabilities().fromGuest());
        return backend.activate(new NetLinkConfig(12, offloads), List.of(port)).get(0);
    }

    private static GuestPort port(NetQueue[] q, int target) {
        return new GuestPort() {
            @Override
            public boolean deliver(MemorySegment frame) {
                NetQueue t = q[target];
                return t == null || t.transmit(frame) != TxResult.BUSY;
            }

            @Override
            public void txReady() {
                NetQueue t = q[target];
                if (t != null) t.rxReady();
            }

            @Override
            public void backendFailed(String where, Throwable cause) {
                System.err.println("user network failed in " + where + ": " + cause);
            }
        };
    }

    private static Set<NetOffload> intersect(Set<NetOffload> x, Set<NetOffload> y) {
        EnumSet<NetOffload> r = EnumSet.noneOf(NetOffload.class);
        for (NetOffload o : x) if (y.contains(o)) r.add(o);
        return r;
    }

    public static void main(String[] args) throws Exception {
        Collection<RunResult> results = new Runner(new OptionsBuilder()
                        .include(UserNetTcpBenchmark.class.getSimpleName())
                        .build())
                .run();
        double usernet = 0, loopback = 0;
        for (RunResult r : results) {
            double mibPerSecond = r.getPrimaryResult().getScore() * CHUNK / (1 << 20);
            String p = r.getParams().getParam("path");
            System.out.printf("%-8s %8.1f MiB/s%n", p, mibPerSecond);
            if (p.equals("usernet")) usernet = mibPerSecond;
            else loopback = mibPerSecond;
        }
        if (loopback > 0) System.out.printf("user-mode stack / loopback socket pair = %.3f%n", usernet / loopback);
    }
}
