package dev.jvmm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import dev.jvmm.core.ExitStats;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.HdrHistogram.Histogram;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.profile.GCProfiler;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * The benchmark suite in one command: exit latency of jvmm against the C reference VMM (refvmm) and QEMU
 * microvm on the same guest, JMH runs of jvmm's exit path with the gc profiler, latency distributions, launch
 * time and memory. Writes report.md, PNG charts and the raw JMH JSON into the output directory.
 *
 * <p>Usage: {@code Report [--quick] [--out DIR] [--no-exits] [--no-jmh] [--no-qemu] [--no-launch] [--no-snapshots]
 * [--no-blk] [--no-net] [--debian DIR
 * [--login-rounds N]]};
 * {@code --debian} adds a Debian guest's time to its login prompt under jvmm and under QEMU.
 * Ratios compare runs made back to back in this one run (see HOST.md: absolute times drift with load).
 */
public final class Report {
    /**
     * What to run and how long; {@link #quick} is the smoke-test size, {@link #emulated} the smoke test for a
     * machine where every exit and every JVM start is slow (KVM inside QEMU's emulator, scripts/with-kvm).
     */
    public record Config(
            boolean quick,
            Path out,
            int exitsPerBatch,
            int batches,
            int rounds,
            long warmupExits,
            int jmhWarmups,
            int jmhIterations,
            int jmhIterationMs,
            int jmhForks,
            int launchRuns,
            boolean everyJvmSetting,
            boolean exits,
            boolean jmh,
            boolean qemu,
            boolean launch,
            Optional<Path> debian,
            int loginRounds,
            List<Integer> snapshotMib,
            Blk blk,
            Net net) {
        /**
         * The network benchmark's size ({@link VirtioNetBenchmark}, user-mode TCP both ways next to a socket pair
         * and pasta): JMH warm-up and measured iterations of {@code iterationMs} each; 0 iterations: no net rows.
         */
        public record Net(int warmups, int iterations, int iterationMs) {
            static final Net NONE = new Net(0, 0, 0);
        }

        /**
         * The block benchmark's size ({@link BlkBench}): an image of {@code mib} MiB (0: no block rows), requests per
         * run of 4 KiB and of 64 KiB, and the depth jvmm's driver and qemu-img bench keep in flight.
         */
        public record Blk(int mib, long ops4k, long ops64k, int depth) {
            static final Blk NONE = new Blk(0, 0, 0, 1);
        }

        int blkMib() {
            return blk.mib();
        }

        long blkOps4k() {
            return blk.ops4k();
        }

        long blkOps64k() {
            return blk.ops64k();
        }

        int blkDepth() {
            return blk.depth();
        }

        public static Config standard(Path out) {
            return new Config(
                    false,
                    out,
                    5000,
                    3,
                    5,
                    30_000,
                    3,
                    5,
                    1000,
                    1,
                    5,
                    true,
                    true,
                    true,
                    true,
                    true,
                    Optional.empty(),
                    3,
                    List.of(256, 1024, 4096),
                    new Blk(512, 100_000, 20_000, 16),
                    new Net(8, 5, 2000));
        }

        public static Config quick(Path out) {
            return new Config(
                    true,
                    out,
                    300,
                    2,
                    2,
                    30_000,
                    1,
                    2,
                    200,
                    1,
                    1,
                    true,
                    true,
                    true,
                    true,
                    true,
                    Optional.empty(),
                    1,
                    List.of(64, 256),
                    new Blk(64, 10_000, 2_000, 16),
                    new Net(1, 2, 1000));
        }

        /**
         * Every row once, as small as it gets: inside the emulated machine one exit costs about 0.3 ms and a JVM
         * start tens of seconds, so the quick size would take over half an hour there. JMH runs in this JVM (its
         * numbers are then not for comparing, JMH's own advice) and jvmm launches with one JVM setting only.
         */
        public static Config emulated(Path out) {
            return new Config(
                    true,
                    out,
                    50,
                    2,
                    1,
                    100,
                    0,
                    1,
                    100,
                    0,
                    1,
                    false,
                    true,
                    true,
                    true,
                    true,
                    Optional.empty(),
                    1,
                    List.of(64),
                    new Blk(16, 1_000, 200, 8),
                    Net.NONE); // the stack's JIT warm-up alone would take minutes there
        }

        Config with(boolean exits, boolean jmh, boolean qemu, boolean launch) {
            return with(exits, jmh, qemu, launch, debian, loginRounds, snapshotMib, blk, net);
        }

        /** Without the snapshot rows. */
        Config withoutSnapshots() {
            return with(exits, jmh, qemu, launch, debian, loginRounds, List.of(), blk, net);
        }

        /** Without the block rows. */
        Config withoutBlk() {
            return with(exits, jmh, qemu, launch, debian, loginRounds, snapshotMib, Blk.NONE, net);
        }

        /** With the time-to-login rows for the Debian guest in {@code image} (scripts/debian-image.sh's folder). */
        Config withDebian(Path image, int loginRounds) {
            return with(exits, jmh, qemu, launch, Optional.of(image), loginRounds, snapshotMib, blk, net);
        }

        private Config with(
                boolean exits,
                boolean jmh,
                boolean qemu,
                boolean launch,
                Optional<Path> debian,
                int loginRounds,
                List<Integer> snapshotMib,
                Blk blk,
                Net net) {
            return new Config(
                    quick,
                    out,
                    exitsPerBatch,
                    batches,
                    rounds,
                    warmupExits,
                    jmhWarmups,
                    jmhIterations,
                    jmhIterationMs,
                    jmhForks,
                    launchRuns,
                    everyJvmSetting,
                    exits,
                    jmh,
                    qemu,
                    launch,
                    debian,
                    loginRounds,
                    snapshotMib,
                    blk,
                    net);
        }

        /** Without the network rows. */
        Config withoutNet() {
            return with(exits, jmh, qemu, launch, debian, loginRounds, snapshotMib, blk, Net.NONE);
        }
    }

    /** One exit benchmark (kind at a CPL) with everything measured for it. */
    static final class ExitRow {
        final ExitKind kind;
        final int cpl;
        final List<Double> jvmmNs = new ArrayList<>(), refNs = new ArrayList<>(), qemuGuestNs = new ArrayList<>();
        final List<Double> jvmmGuestNs = new ArrayList<>(), refGuestNs = new ArrayList<>();
        final List<Double> ratio = new ArrayList<>(),
                ratioGuestClock = new ArrayList<>(),
                qemuRatio = new ArrayList<>();
        double dispatchNs = Double.NaN;
        String dispatchReason = "";
        double allocBytesPerExit = Double.NaN;
        Histogram jvmmHist, refHist;
        JmhScore jmh;
        String qemuNote = "";

        ExitRow(ExitKind kind, int cpl) {
            this.kind = kind;
            this.cpl = cpl;
        }

        String label() {
            return kind.guestName() + " cpl" + cpl;
        }
    }

    record JmhScore(double score, double error, Stats iterations, double allocNormBytes, String unit) {}

    /** Seconds from spawn to the login prompt, per VMM, and the jvmm/QEMU ratio per round; or why not measured. */
    record LoginResult(Stats jvmmSeconds, Stats qemuSeconds, Stats ratio, String note) {
        static LoginResult notMeasured(String why) {
            Stats none = Stats.of(new double[0]);
            return new LoginResult(none, none, none, why);
        }
    }

    record LaunchRow(
            String vmm,
            String settings,
            Stats firstOutputMs,
            Stats exitMs,
            Stats mainMs,
            Stats ffmMs,
            Stats vmBuiltMs,
            Footprint.Memory memory,
            String note) {}

    private final Config config;
    private final NativeTools tools;
    private final byte[] image;
    private final ArrayNode jmhJson = new ObjectMapper().createArrayNode();
    private final List<String> progress = new ArrayList<>();
    private int tscKhz;
    private Stats refEmptyRunNs = Stats.of(new double[0]);
    private JmhScore jmhEmptyRun;
    private final String loadBefore;

    Report(Config config) {
        this.config = config;
        this.tools = NativeTools.locate();
        this.image = tools.guestImage();
        this.loadBefore = loadAverage();
    }

    public static void main(String[] args) throws Exception {
        Path out = Path.of("target", "bench-report");
        boolean quick = false,
                exits = true,
                jmh = true,
                qemu = true,
                launch = true,
                snapshots = true,
                blk = true,
                net = true;
        Path debian = null;
        int loginRounds = 0;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--quick" -> quick = true;
                case "--out" -> out = Path.of(args[++i]);
                case "--no-jmh" -> jmh = false;
                case "--no-qemu" -> qemu = false;
                case "--no-launch" -> launch = false;
                case "--no-exits" -> exits = false;
                case "--no-snapshots" -> snapshots = false;
                case "--no-blk" -> blk = false;
                case "--no-net" -> net = false;
                case "--debian" -> debian = Path.of(args[++i]);
                case "--login-rounds" -> loginRounds = Integer.parseInt(args[++i]);
                case "-h", "--help" -> {
                    System.out.println("usage: Report [--quick] [--out DIR] [--no-jmh] [--no-qemu] [--no-launch] "
                            + "[--no-exits] [--no-snapshots] [--no-blk] [--no-net] [--debian DIR [--login-rounds N]]");
                    System.out.println("  --debian DIR  also time a Debian guest to its login prompt, jvmm against QEMU"
                            + " (DIR: what scripts/debian-image.sh prints)");
                    return;
                }
                default -> {
                    System.err.println("Report: unknown option " + args[i] + " (try --help)");
                    System.exit(2);
                }
            }
        }
        Config c = (quick ? Config.quick(out) : Config.standard(out)).with(exits, jmh, qemu, launch);
        if (!snapshots) c = c.withoutSnapshots();
        if (!blk) c = c.withoutBlk();
        if (!net) c = c.withoutNet();
        if (debian != null) c = c.withDebian(debian, loginRounds > 0 ? loginRounds : c.loginRounds());
        Path md = new Report(c).run();
        System.out.println("report: " + md.toAbsolutePath());
    }

    /** Runs everything the config asks for and returns the path of report.md. */
    public Path run() throws Exception {
        Files.createDirectories(config.out());
        List<ExitRow> rows = new ArrayList<>();
        if (config.exits()) for (ExitKind k : ExitKind.values()) for (int cpl : k.cpls()) rows.add(new ExitRow(k, cpl));
        int step = 0;
        for (ExitRow row : rows) {
            say(
                    "[exits %d/%d] %s: paired rounds jvmm / C%s",
                    ++step,
                    rows.size(),
                    row.label(),
                    config.qemu()
                                    && row.kind.qemuComparable()
                                    && NativeTools.qemu().isPresent()
                            ? " / QEMU"
                            : "");
            pairedRounds(row);
            if (row.kind != ExitKind.IOEVENTFD && row.kind != ExitKind.IRQ) histograms(row);
        }
        if (config.exits()) emptyRunReference();
        if (config.exits() && config.jmh()) {
            int i = 0;
            for (ExitRow row : rows) {
                say("[jmh %d/%d] ExitBenchmark kind=%s cpl=%d", ++i, rows.size() + 1, row.kind.guestName(), row.cpl);
                row.jmh = jmh(
                        ExitBenchmark.class.getName() + ".exits",
                        Map.of("kind", row.kind.guestName(), "cpl", "" + row.cpl));
            }
            say("[jmh %d/%d] EmptyRunBenchmark", rows.size() + 1, rows.size() + 1);
            jmhEmptyRun = jmh(EmptyRunBenchmark.class.getName() + ".emptyRun", Map.of());
            Files.writeString(
                    config.out().resolve("jmh.json"),
                    new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(jmhJson));
        }
        List<LaunchRow> launches = config.launch() ? new LaunchBench(config, tools, this::say).run() : List.of();
        LifecycleBench.Result lifecycle =
                config.launch() ? LifecycleBench.of(config, tools, this::say).run(config.quick()) : null;
        List<SnapshotBench.Row> snapshots = new SnapshotBench(config, tools, this::say).run();
        List<BlkBench.Row> blk = new BlkBench(config, tools, this::say).run();
        Map<String, Stats> net = Map.of();
        if (config.net().iterations() > 0) {
            say("[net] VirtioNetBenchmark: user-mode TCP both ways, a socket pair, pasta");
            Config.Net n = config.net();
            net = VirtioNetBenchmark.run(
                    false, VirtioNetBenchmark.pastaAvailable(), n.warmups(), n.iterations(), n.iterationMs());
        }
        LoginResult login = config.debian().map(this::login).orElse(null);
        Path md = config.out().resolve("report.md");
        Files.writeString(
                md,
                new ReportWriter(
                                config,
                                rows,
                                launches,
                                lifecycle,
                                snapshots,
                                blk,
                                net,
                                login,
                                tscKhz,
                                refEmptyRunNs,
                                jmhEmptyRun,
                                loadBefore,
                                loadAverage())
                        .write());
        return md;
    }

    private LoginResult login(Path image) {
        String why = LoginBench.unavailable(image);
        say(
                "[login] Debian to its login prompt, jvmm / QEMU, %d round(s)%s",
                config.loginRounds(), why == null ? "" : ": skipped, " + why);
        if (why != null) return LoginResult.notMeasured(why);
        try {
            return new LoginBench(image, config.out().resolve("login"), config.loginRounds(), this::say).run();
        } catch (IOException | RuntimeException e) {
            say("    failed: %s", e.getMessage());
            return LoginResult.notMeasured("failed: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return LoginResult.notMeasured("interrupted");
        }
    }

    /** Rounds of: one refvmm process, the same batches on a warm jvmm VM, one QEMU process; ratios per round. */
    private void pairedRounds(ExitRow row) throws InterruptedException {
        int n = config.exitsPerBatch();
        boolean withQemu =
                config.qemu() && row.kind.qemuComparable() && NativeTools.qemu().isPresent();
        if (config.qemu() && NativeTools.qemu().isEmpty()) row.qemuNote = "qemu-system-x86_64 not installed";
        else if (!row.kind.qemuComparable()) row.qemuNote = "no such exit in QEMU without a device";
        try (BenchMachine jvmm =
                BenchMachine.forKind(image, row.kind, row.cpl, n, 0, true).build()) {
            jvmm.start();
            warmUp(jvmm, n);
            tscKhz = jvmm.tscKhz();
            var tmx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            long vcpuThread = jvmm.vcpuThreadId();
            long alloc0 = tmx.getThreadAllocatedBytes(vcpuThread);
            Map<String, ExitStats.Row> stats0 = jvmm.vm().stats().snapshot();
            long gateWait0 = jvmm.gateWaitNanos();
            long exits = 0;
            for (int r = 0; r < config.rounds(); r++) {
                // The C reference runs one warm-up batch more and drops it, as jvmm's VM is already warm.
                RefVmm.Result ref =
                        RefVmm.run(tools, row.kind.cmdline(row.cpl, n, config.batches() + 1, false), null, 0);
                double refNs =
                        median(ref.batchNanos().subList(1, ref.batchNanos().size())) / n;
                double refGuestNs = cyclesToNs(median(
                                ref.guestCycles().subList(1, ref.guestCycles().size())))
                        / n;
                int before = jvmm.batchNanos().length;
                for (int b = 0; b < config.batches(); b++) jvmm.runBatch(n);
                exits += (long) config.batches() * n;
                long[] all = jvmm.batchNanos();
                long[] cyc = jvmm.guestCycles();
                double jvmmNs = median(slice(all, before)) / n;
                double jvmmGuestNs = cyclesToNs(median(slice(cyc, before))) / n;
                row.refNs.add(refNs);
                row.jvmmNs.add(jvmmNs);
                row.refGuestNs.add(refGuestNs);
                row.jvmmGuestNs.add(jvmmGuestNs);
                row.ratio.add(jvmmNs / refNs);
                row.ratioGuestClock.add(jvmmGuestNs / refGuestNs);
                String q = "";
                if (withQemu) {
                    List<Long> qc = Qemu.runCycles(
                            NativeTools.qemu().orElseThrow(),
                            tools.guestElf(),
                            row.kind.cmdline(row.cpl, n, config.batches() + 1, false));
                    double qemuNs = cyclesToNs(median(qc.subList(1, qc.size()))) / n;
                    row.qemuGuestNs.add(qemuNs);
                    row.qemuRatio.add(qemuNs / refGuestNs);
                    q = String.format(", QEMU %.2f µs", qemuNs / 1000);
                }
                say(
                        "    round %d: jvmm %.2f µs, C %.2f µs (ratio %.3f)%s",
                        r + 1, jvmmNs / 1000, refNs / 1000, jvmmNs / refNs, q);
            }
            row.allocBytesPerExit = (double) (tmx.getThreadAllocatedBytes(vcpuThread) - alloc0) / exits;
            Map<String, ExitStats.Row> stats1 = jvmm.vm().stats().snapshot();
            String reason = switch (row.kind) {
                case PIO_OUT, PIO_IN -> "IO";
                case MMIO_WRITE, MMIO_READ -> "MMIO";
                default -> null;
            };
            if (reason != null && stats1.containsKey(reason)) {
                ExitStats.Row a = stats0.get(reason), b = stats1.get(reason);
                long c0 = a == null ? 0 : a.count();
                double t0 = a == null ? 0 : a.meanNanos() * a.count();
                // Gate waits are IO exits too (the control port): their waiting is the benchmark's, not jvmm's.
                double gateWait = reason.equals("IO") ? jvmm.gateWaitNanos() - gateWait0 : 0;
                row.dispatchNs = (b.meanNanos() * b.count() - t0 - gateWait) / (b.count() - c0);
                row.dispatchReason = reason;
            }
            jvmm.finish();
            jvmm.awaitExit(Duration.ofSeconds(30));
        }
    }

    /**
     * Runs batches until C2 has compiled the exit path (30,000 exits are enough at the standard size) and the
     * guest's pages are warm; a cold exit loop runs interpreted and allocates in its VarHandle adapters.
     */
    private void warmUp(BenchMachine jvmm, int n) {
        for (long done = 0; done < config.warmupExits(); done += n) jvmm.runBatch(n);
    }

    /** Exit-to-exit intervals of one batch per VMM (after a warm-up batch), into HdrHistograms. */
    private void histograms(ExitRow row) throws Exception {
        int n = config.exitsPerBatch() * (config.quick() ? 1 : 2);
        try (BenchMachine jvmm = BenchMachine.forKind(image, row.kind, row.cpl, n, 0, true)
                .sampling(true)
                .build()) {
            jvmm.start();
            warmUp(jvmm, n);
            jvmm.histogram().reset();
            jvmm.runBatch(n);
            row.jvmmHist = jvmm.histogram().copy();
            jvmm.finish();
            jvmm.awaitExit(Duration.ofSeconds(30));
        }
        Path samples = Files.createTempFile("refvmm-samples", ".bin");
        try {
            RefVmm.run(tools, row.kind.cmdline(row.cpl, n, 2, false), samples, 0);
            ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(samples)).order(ByteOrder.nativeOrder());
            Histogram h = new Histogram(BenchMachine.HISTOGRAM_MAX_NS, 3);
            int count = buf.remaining() / 4;
            for (int i = 0; i < count; i++) {
                long v = Integer.toUnsignedLong(buf.getInt());
                if (i >= n)
                    h.recordValue(Math.min(Math.max(v, 1), BenchMachine.HISTOGRAM_MAX_NS)); // skip warm-up batch
            }
            row.refHist = h;
        } finally {
            Files.deleteIfExists(samples);
        }
        Map<String, Histogram> series = new LinkedHashMap<>();
        series.put("jvmm", row.jvmmHist);
        series.put("C reference", row.refHist);
        Charts.percentiles(
                config.out().resolve("latency-" + row.kind.guestName() + "-cpl" + row.cpl + ".png"),
                row.kind.description() + ", CPL" + row.cpl,
                series);
    }

    private void emptyRunReference() {
        long runs = config.quick() ? 2000 : 20000;
        List<Double> perRun = new ArrayList<>();
        for (int r = 0; r < config.rounds(); r++) {
            RefVmm.Result res = RefVmm.run(tools, "kind=none", null, runs);
            perRun.add((double) res.emptyRunNanos() / res.emptyRuns());
        }
        refEmptyRunNs = Stats.of(perRun);
        say("[empty KVM_RUN] C reference %.0f ns", refEmptyRunNs.median());
    }

    private JmhScore jmh(String benchmark, Map<String, String> params) throws RunnerException, IOException {
        Path json = Files.createTempFile(config.out(), "jmh-", ".json");
        try {
            ChainedOptionsBuilder ob = new OptionsBuilder()
                    .include("^" + benchmark.replace(".", "\\.") + "$")
                    .warmupIterations(config.jmhWarmups())
                    .warmupTime(TimeValue.milliseconds(config.jmhIterationMs()))
                    .measurementIterations(config.jmhIterations())
                    .measurementTime(TimeValue.milliseconds(config.jmhIterationMs()))
                    .forks(config.jmhForks())
                    .addProfiler(GCProfiler.class)
                    .shouldFailOnError(true)
                    .verbosity(VerboseMode.SILENT)
                    .jvmArgsPrepend("-Djvmm.bench.native=" + tools.guestBinary().getParent())
                    .resultFormat(ResultFormatType.JSON)
                    .result(json.toString());
            params.forEach(ob::param);
            Collection<RunResult> results = new Runner(ob.build()).run();
            RunResult rr = results.iterator().next();
            Result<?> primary = rr.getPrimaryResult();
            List<Double> its = new ArrayList<>();
            for (BenchmarkResult br : rr.getBenchmarkResults())
                for (IterationResult ir : br.getIterationResults())
                    its.add(ir.getPrimaryResult().getScore());
            double alloc = Double.NaN;
            for (Map.Entry<String, Result> e : rr.getSecondaryResults().entrySet())
                if (e.getKey().endsWith("gc.alloc.rate.norm"))
                    alloc = e.getValue().getScore();
            for (JsonNode n : new ObjectMapper().readTree(json.toFile())) jmhJson.add(n);
            BenchmarkParams bp = rr.getParams();
            say(
                    "    %s %s: %.1f ± %.1f %s, gc.alloc.rate.norm %.3f B/op",
                    bp.getBenchmark().replaceAll(".*\\.", ""),
                    params,
                    primary.getScore(),
                    primary.getScoreError(),
                    primary.getScoreUnit(),
                    alloc);
            return new JmhScore(
                    primary.getScore(), primary.getScoreError(), Stats.of(its), alloc, primary.getScoreUnit());
        } finally {
            Files.deleteIfExists(json);
        }
    }

    private double cyclesToNs(double cycles) {
        return cycles * 1e6 / tscKhz;
    }

    static double median(List<Long> v) {
        return Stats.of(v.stream().mapToDouble(Long::doubleValue).toArray()).median();
    }

    static List<Long> slice(long[] a, int from) {
        List<Long> out = new ArrayList<>();
        for (int i = from; i < a.length; i++) out.add(a[i]);
        return out;
    }

    void say(String format, Object... args) {
        String line = String.format(format, args);
        progress.add(line);
        System.out.println(line);
        System.out.flush();
    }

    static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    static String now() {
        return ZonedDateTime.now().toString();
    }

    static void writeQuietly(Path p, String text) {
        try {
            Files.writeString(p, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
