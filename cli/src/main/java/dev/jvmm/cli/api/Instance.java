package dev.jvmm.cli.api;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.boot.MachineConfigException;
import dev.jvmm.cli.api.ApiException.Kind;
import dev.jvmm.core.ExitStats;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.devices.net.FlowStats;
import dev.jvmm.devices.virtio.blk.BlockStats;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import dev.jvmm.devices.virtio.net.VirtioNet;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BooleanSupplier;
import java.util.function.UnaryOperator;

/**
 * One microVM as Firecracker's API sees it: configured while "Not started", then started once, then "Running" or
 * "Paused" until the guest ends the run, and the process with it. A guest's reboot builds the machine again from the
 * same configuration (as {@code jvmm run} does) unless the host says otherwise.
 *
 * <p>Changes are serialized by one lock and are all-or-nothing: a refused request leaves everything as it was.
 * Reads ({@link #info()}, {@link #machineConfig()}, {@link #vmConfig()}) take no lock and never wait, so the API
 * answers them while a change is in progress, the guest is busy, or the VM is paused. Nothing here runs on a vCPU
 * thread, and nothing waits for one without a timeout ({@link Host#pauseTimeout()}).
 */
public final class Instance implements AutoCloseable {
    public static final String APP_NAME = "jvmm";

    public enum State {
        NOT_STARTED("Not started"),
        RUNNING("Running"),
        PAUSED("Paused");

        private final String text;

        State(String text) {
            this.text = text;
        }

        /** Firecracker's word for it. */
        public String text() {
            return text;
        }
    }

    /** Where PUT /logger's settings go: jvmm's log file and level (error, warn, info, debug, trace or off). */
    public interface Logs {
        void configure(Optional<Path> file, Optional<String> level) throws IOException;

        Logs IGNORED = (file, level) -> {};
    }

    /**
     * What the program around the API provides: the instance id, what every machine gets besides the API's
     * configuration (console, host options), whether a guest's reboot may boot it again, the logs, and how long a
     * pause may wait for the vCPUs.
     */
    public record Host(
            String id,
            UnaryOperator<MachineConfig.Builder> machine,
            BooleanSupplier rebootAllowed,
            Logs logs,
            Duration pauseTimeout,
            Optional<Path> consoleSocket,
            Optional<Path> log) {
        public static final String DEFAULT_ID = "anonymous-instance";
        public static final Duration DEFAULT_PAUSE_TIMEOUT = Duration.ofSeconds(10);

        /** Without a console socket or a log file to tell clients of. */
        public Host(
                String id,
                UnaryOperator<MachineConfig.Builder> machine,
                BooleanSupplier rebootAllowed,
                Logs logs,
                Duration pauseTimeout) {
            this(id, machine, rebootAllowed, logs, pauseTimeout, Optional.empty(), Optional.empty());
        }
    }

    /** What was started: its configuration, the names of its disks and NICs (in order), and the time. */
    private record Started(MachineConfig config, List<String> disks, List<String> nics, Instant at, long nanos) {}

    /** How the run ended, and the last machine's exit counts (null when it never started). */
    public record End(ExitStatus status, ExitStats stats) {}

    /** The file the paused machine was last saved to, while it has not run since (guarded by lock). */
    private Path savedTo;

    /**
     * Where the machine was saved, if it was and has not run since: a run stopped then ended as {@code jvmm save}
     * (virsh save) asked, the guest going on from that file.
     */
    public Optional<Path> savedAndNotRunSince() {
        synchronized (lock) {
            return Optional.ofNullable(savedTo);
        }
    }

    private final Host host;
    private final String version;
    private final Object lock = new Object();
    private final AtomicReference<Machine> current = new AtomicReference<>();
    private final CompletableFuture<End> end = new CompletableFuture<>();
    private final LongAdder requests = new LongAdder(), refused = new LongAdder(), reboots = new LongAdder();
    private volatile Resources resources = Resources.DEFAULT;
    private volatile State state = State.NOT_STARTED;
    private volatile boolean stopRequested;
    /** The host asked for a reboot: a reset boots again whatever --no-reboot says; so does a power-off, for Reboot. */
    private volatile boolean hostReset, rebootOnPowerOff;
    /** Set at the start: what was built, the names its disks and NICs go by, and when. */
    private volatile Started launched;
    // Guarded by lock.
    private boolean started;
    private MetricsFile metrics;
    private Thread runner;

    public Instance(Host host) {
        this.host = host;
        String v = Instance.class.getPackage().getImplementationVersion();
        this.version = v != null ? v : "0.1.0-dev";
    }

    // Reads: no lock, no waiting.

    public Bodies.InstanceInfo info() {
        return new Bodies.InstanceInfo(host.id(), state.text(), version, APP_NAME);
    }

    public State state() {
        return state;
    }

    public Bodies.MachineConfiguration machineConfig() {
        return resources.machine();
    }

    public Bodies.VmConfig vmConfig() {
        return resources.toVmConfig();
    }

    public Bodies.Version version() {
        return new Bodies.Version(version);
    }

    /** The machine running now: none before InstanceStart, between a reboot's two machines, and after the end. */
    public Machine current() {
        return current.get();
    }

    /** Counts a request the API answered (for the metrics). */
    void counted(ApiResponse r) {
        requests.increment();
        if (r.status() >= 400) refused.increment();
    }

    // Pre-boot configuration.

    public void putBootSource(Bodies.BootSource b) {
        synchronized (lock) {
            requireNotStarted();
            resources = resources.withBootSource(b);
        }
    }

    public void putMachineConfig(Bodies.MachineConfiguration m) {
        synchronized (lock) {
            requireNotStarted();
            resources = resources.withMachineConfig(m);
        }
    }

    public void patchMachineConfig(Bodies.MachineConfiguration m) {
        synchronized (lock) {
            requireNotStarted();
            resources = resources.patchMachineConfig(m);
        }
    }

    public void putDrive(Bodies.Drive d) {
        synchronized (lock) {
            requireNotStarted();
            resources = resources.withDrive(d);
        }
    }

    public void putNetworkInterface(Bodies.NetworkInterface n) {
        synchronized (lock) {
            requireNotStarted();
            resources = resources.withNic(n);
        }
    }

    public void putVsock(Bodies.Vsock v) {
        synchronized (lock) {
            requireNotStarted();
            resources = resources.withVsock(v);
        }
    }

    public void putLogger(Bodies.Logger l) {
        synchronized (lock) {
            requireNotStarted();
            String level = level(l.level());
            if (l.module() != null)
                throw ApiException.invalid("Logger error: module filtering is not supported by jvmm");
            Resources next = resources.withLogger(l);
            Optional<Path> file = Optional.empty();
            if (l.logPath() != null) {
                if (l.logPath().isEmpty()) throw ApiException.invalid("Logger error: log_path is empty");
                file = Optional.of(Path.of(l.logPath()));
            }
            try {
                host.logs().configure(file, Optional.ofNullable(level));
            } catch (IOException e) {
                throw ApiException.invalid("Logger error: cannot open log_path " + l.logPath() + ": " + reason(e));
            }
            resources = next;
        }
    }

    /** Firecracker's level names (any case; Warning or Warn) as jvmm's. */
    private static String level(String level) {
        if (level == null) return null;
        return switch (level.toLowerCase(Locale.ROOT)) {
            case "error" -> "error";
            case "warning", "warn" -> "warn";
            case "info" -> "info";
            case "debug" -> "debug";
            case "trace" -> "trace";
            case "off" -> "off";
            default ->
                throw new ApiException(
                        Kind.BAD_JSON,
                        "unknown variant `" + level
                                + "` for `level`, expected one of `Error`, `Warning`, `Info`, `Debug`, `Trace`, `Off`");
        };
    }

    public void putMetrics(Bodies.Metrics m) {
        synchronized (lock) {
            requireNotStarted();
            if (m.metricsPath() == null) throw new ApiException(Kind.BAD_JSON, "missing field `metrics_path`");
            String prefix = "Metrics error: Cannot initialize the metrics system due to bad user input: ";
            if (metrics != null) throw ApiException.invalid(prefix + "Reinitialization of metrics not allowed.");
            if (m.metricsPath().isEmpty()) throw ApiException.invalid(prefix + "metrics_path is empty");
            Resources next = resources.withMetrics(m);
            try {
                metrics = MetricsFile.open(Path.of(m.metricsPath()), () -> metricsLine(m));
            } catch (IOException | RuntimeException e) {
                throw ApiException.invalid(prefix + "cannot open metrics_path " + m.metricsPath() + ": " + reason(e));
            }
            resources = next;
        }
    }

    /** Applies a whole configuration (--config-file) in Firecracker's order; stops at the first refusal. */
    public void configure(Bodies.VmConfig c) {
        if (c.logger() != null) putLogger(c.logger());
        if (c.metrics() != null) putMetrics(c.metrics());
        if (c.machineConfig() != null) putMachineConfig(c.machineConfig());
        if (c.bootSource() != null) putBootSource(c.bootSource());
        if (c.drives() != null) for (Bodies.Drive d : c.drives()) putDrive(d);
        if (c.networkInterfaces() != null)
            for (Bodies.NetworkInterface n : c.networkInterfaces()) putNetworkInterface(n);
        if (c.vsock() != null) putVsock(c.vsock());
    }

    // Actions.

    /**
     * InstanceStart: builds the machine and starts it; a machine that cannot be built leaves the instance as it was.
     */
    public void start() {
        synchronized (lock) {
            requireNotStarted();
            if (stopRequested) throw new ApiException(Kind.VM_UNAVAILABLE, "The microVM is being stopped.");
            Resources r = resources;
            MachineConfig config = r.toMachineConfig(host.machine());
            Machine m = create(config);
            launch(
                    m,
                    config,
                    r.drives().stream().map(Bodies.Drive::driveId).toList(),
                    r.nics().stream().map(n -> n.body().ifaceId()).toList());
        }
    }

    /**
     * Starts a machine configured elsewhere (jvmm run's options) instead of by the API: its disks are named vda,
     * vdb, ... and its NICs net0, net1, ... The library's own exceptions say what is wrong ({@link
     * MachineConfigException}, {@link BootException}), for the caller to word as its options.
     */
    public void start(MachineConfig config) {
        synchronized (lock) {
            requireNotStarted();
            if (stopRequested) throw new ApiException(Kind.VM_UNAVAILABLE, "The microVM is being stopped.");
            Machine m = Machine.create(config);
            List<String> disks = new ArrayList<>(), nics = new ArrayList<>();
            for (int i = 0; i < m.disks().size(); i++) disks.add("vd" + (char) ('a' + Math.min(i, 25)));
            for (int i = 0; i < m.nics().size(); i++) nics.add("net" + i);
            launch(m, config, disks, nics);
        }
    }

    private void launch(Machine m, MachineConfig config, List<String> disks, List<String> nics) {
        launch(m, config, disks, nics, false);
    }

    private void launch(Machine m, MachineConfig config, List<String> disks, List<String> nics, boolean paused) {
        try {
            if (paused) m.startPaused();
            else m.start();
        } catch (RuntimeException e) {
            m.close();
            throw new ApiException(Kind.START_FAILED, "Start microvm error: " + e.getMessage());
        }
        current.set(m);
        started = true;
        launched = new Started(config, List.copyOf(disks), List.copyOf(nics), Instant.now(), System.nanoTime());
        state = paused ? State.PAUSED : State.RUNNING;
        if (metrics != null) metrics.startPeriodic();
        runner = Thread.ofPlatform().name("jvmm-run").start(() -> run(m, config));
    }

    private static Machine create(MachineConfig config) {
        try {
            return Machine.create(config);
        } catch (MachineConfigException e) {
            throw new ApiException(Kind.START_FAILED, "Start microvm error: " + fieldMessage(e));
        } catch (BootException | dev.jvmm.kvm.SyscallException e) { // a file, a device, KVM itself
            throw new ApiException(Kind.START_FAILED, "Start microvm error: " + e.getMessage());
        }
    }

    /** The library's config problem in the API's field names. */
    static String fieldMessage(MachineConfigException e) {
        return switch (e.problem()) {
            case TOO_FEW_VCPUS -> "vcpu_count must be at least " + e.limit() + ", not " + e.requested();
            case TOO_MANY_VCPUS ->
                "vcpu_count " + e.requested() + " is more than KVM allows on this host (" + e.limit() + ")";
            case MEMORY_TOO_SMALL -> "mem_size_mib must be at least " + (e.limit() >> 20);
            case MEMORY_NOT_PAGE_ALIGNED -> "mem_size_mib must be a multiple of " + (e.limit() >> 10) + " KiB";
            case MEMORY_EXCEEDS_HOST ->
                "mem_size_mib " + (e.requested() >> 20) + " is more than this host has (" + (e.limit() >> 20) + ")";
        };
    }

    /** The run: waits for each machine to end, boots the next on a reboot, and completes {@link #awaitEnd()}. */
    private void run(Machine first, MachineConfig config) {
        Machine m = first;
        ExitStatus status = new ExitStatus.Stopped();
        ExitStats stats = null;
        try {
            while (true) {
                status = m.awaitExit(Duration.ofDays(36500)).orElseThrow();
                m.stop();
                stats = m.stats();
                synchronized (lock) {
                    current.set(null);
                    m.close();
                    m = null;
                    boolean again = !stopRequested
                            && (status instanceof ExitStatus.Reset
                                            && (hostReset
                                                    || host.rebootAllowed().getAsBoolean())
                                    || status instanceof ExitStatus.PowerOff && rebootOnPowerOff);
                    hostReset = false;
                    rebootOnPowerOff = false;
                    if (!again) break;
                    try {
                        m = Machine.create(config);
                        m.start();
                    } catch (RuntimeException e) {
                        if (m != null) m.close();
                        m = null;
                        status = new ExitStatus.Error(
                                "the guest rebooted, and booting it again failed: " + e.getMessage(), e);
                        break;
                    }
                    reboots.increment();
                    current.set(m);
                    state = State.RUNNING;
                }
            }
        } catch (InterruptedException e) {
            status = new ExitStatus.Stopped();
        } catch (RuntimeException e) {
            status = new ExitStatus.Error("jvmm-run: " + e, e);
        } finally {
            if (m != null) m.close();
            current.set(null);
            end.complete(new End(status, stats));
        }
    }

    // Snapshots.

    /**
     * PUT /snapshot/create: the paused machine to one file (state and memory, see SnapshotFile), written atomically;
     * the machine stays paused. A {@code mem_file_path} other than the snapshot's own becomes a second name (a hard
     * link) of the same file, so a client that keeps Firecracker's two paths finds both, and loading from either
     * works. Only full snapshots.
     */
    public void createSnapshot(Bodies.SnapshotCreateParams b) {
        if (b.snapshotPath() == null) throw new ApiException(Kind.BAD_JSON, "missing field `snapshot_path`");
        String type = b.snapshotType() == null
                ? "Full"
                : Resources.variant(b.snapshotType(), "snapshot_type", "Full", "Diff");
        if (!type.equals("Full"))
            throw ApiException.invalid("Diff snapshots are not supported: jvmm takes Full snapshots only");
        Path file = Path.of(b.snapshotPath());
        Optional<Path> mem = Optional.ofNullable(b.memFilePath()).map(Path::of);
        if (b.snapshotPath().isEmpty() || mem.map(p -> p.toString().isEmpty()).orElse(false))
            throw ApiException.invalid("snapshot_path and mem_file_path must not be empty");
        synchronized (lock) {
            Machine m = runningMachine();
            if (state != State.PAUSED)
                throw new ApiException(
                        Kind.VM_UNAVAILABLE, "Create snapshot error: the microVM must be paused (PATCH /vm Paused)");
            try {
                savedTo = null;
                m.snapshot(file, false);
                savedTo = file;
                if (mem.isPresent() && !sameFile(mem.get(), file)) {
                    Files.deleteIfExists(mem.get());
                    Files.createLink(mem.get(), file);
                }
            } catch (IOException | RuntimeException e) {
                throw new ApiException(
                        Kind.VM_UNAVAILABLE,
                        "Create snapshot error: "
                                + (e instanceof java.nio.file.FileSystemException f
                                        ? f.getFile() + ": " + f.getReason()
                                        : e.getMessage()));
            }
        }
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.exists(a) && Files.isSameFile(a, b);
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * PUT /snapshot/load, before anything is configured: the machine saved in the file, restored in this process
     * (its config comes from the file; console and debug devices are this process's), running if {@code resume_vm},
     * else paused. The memory must be the snapshot file itself (jvmm keeps both in one).
     */
    public void loadSnapshot(Bodies.SnapshotLoadParams b) {
        if (b.snapshotPath() == null || b.snapshotPath().isEmpty())
            throw new ApiException(Kind.BAD_JSON, "missing field `snapshot_path`");
        Path file = Path.of(b.snapshotPath());
        Optional<String> memPath = Optional.ofNullable(b.memFilePath());
        if (b.memBackend() != null) {
            if (memPath.isPresent())
                throw ApiException.invalid("give mem_backend or the older mem_file_path, not both");
            if (b.memBackend().backendType() == null || b.memBackend().backendPath() == null)
                throw new ApiException(Kind.BAD_JSON, "mem_backend needs backend_type and backend_path");
            Resources.variant(b.memBackend().backendType(), "backend_type", "File", "Uffd");
            if (!b.memBackend().backendType().equals("File"))
                throw ApiException.invalid("backend_type Uffd is not supported: jvmm maps the snapshot file itself");
            memPath = Optional.of(b.memBackend().backendPath());
        }
        if (memPath.isPresent() && !sameFile(Path.of(memPath.get()), file))
            throw ApiException.invalid("Load snapshot error: the memory file " + memPath.get() + " is not " + file
                    + " (or a link to it): jvmm keeps a snapshot's state and memory in one file");
        synchronized (lock) {
            requireNotStarted();
            if (stopRequested) throw new ApiException(Kind.VM_UNAVAILABLE, "The microVM is being stopped.");
            Resources r = resources; // the logger and metrics may be set first, as Firecracker allows
            if (r.bootSource().isPresent()
                    || !r.machine().equals(Resources.DEFAULT_MACHINE)
                    || !r.drives().isEmpty()
                    || !r.nics().isEmpty())
                throw ApiException.invalid(
                        "Loading a microVM snapshot not allowed after configuring boot-specific resources.");
            restoreAndLaunch(file, Machine.RestoreOptions.DEFAULT, Boolean.TRUE.equals(b.resumeVm()));
        }
    }

    /**
     * Starts the machine a snapshot saved (jvmm restore, PUT /snapshot/load): its disks vda, vdb, ... and NICs
     * net0, net1, ...; {@code extra} gives moved disks and whether to trust them, and this host's console.
     */
    public void restore(Path file, Machine.RestoreOptions extra, boolean resume) {
        synchronized (lock) {
            requireNotStarted();
            if (stopRequested) throw new ApiException(Kind.VM_UNAVAILABLE, "The microVM is being stopped.");
            restoreAndLaunch(file, extra, resume);
        }
    }

    private void restoreAndLaunch(Path file, Machine.RestoreOptions extra, boolean resume) {
        // The host's console and debug devices, as every machine of this run gets them.
        MachineConfig hostParts =
                host.machine().apply(MachineConfig.builder(file)).build();
        Machine.RestoreOptions options = new Machine.RestoreOptions(
                hostParts.console(), hostParts.debugcon(), extra.diskPaths(), extra.trustDisks());
        Machine m;
        try {
            m = Machine.restore(file, options);
        } catch (IOException e) {
            throw ApiException.invalid("Load snapshot error: "
                    + (e instanceof java.nio.file.NoSuchFileException
                            ? file + " does not exist"
                            : file + ": " + e.getMessage()));
        } catch (dev.jvmm.core.snapshot.SnapshotException | BootException | dev.jvmm.kvm.SyscallException e) {
            throw ApiException.invalid("Load snapshot error: " + e.getMessage());
        }
        List<String> disks = new ArrayList<>(), nics = new ArrayList<>();
        for (int i = 0; i < m.disks().size(); i++) disks.add("vd" + (char) ('a' + Math.min(i, 25)));
        for (int i = 0; i < m.nics().size(); i++) nics.add("net" + i);
        launch(m, m.config(), disks, nics, !resume);
    }

    /** SendCtrlAltDel: the ACPI power button, which asks the guest OS for a clean shutdown (see README). */
    public void sendCtrlAltDel() {
        runningMachine().pressPowerButton();
    }

    /**
     * A jvmm extension: the reset button. The machine ends at once, as a guest's reset ends it, and boots again
     * from the same configuration (also with --no-reboot: the host asked).
     */
    public void reset() {
        synchronized (lock) {
            Machine m = runningMachine();
            hostReset = true;
            m.vm().requestExit(new ExitStatus.Reset());
        }
    }

    /**
     * A jvmm extension: a clean reboot, as libvirt does one for guests without an agent. The power button is
     * pressed, and when the guest has powered off it boots again instead of ending the run. A guest that ignores
     * the button keeps running.
     */
    public void reboot() {
        synchronized (lock) {
            Machine m = runningMachine();
            rebootOnPowerOff = true;
            m.pressPowerButton();
        }
    }

    /** PATCH /vm Paused: every vCPU held at its next exit; a vCPU that does not come within the timeout fails it. */
    public void pause() {
        synchronized (lock) {
            Machine m = runningMachine();
            if (state == State.PAUSED) return;
            if (!m.pause(host.pauseTimeout()))
                throw new ApiException(
                        Kind.VM_UNAVAILABLE,
                        "Internal VMM error: the vCPUs did not stop within "
                                + host.pauseTimeout().toSeconds()
                                + " s (one is busy in a device); the microVM runs on");
            state = State.PAUSED;
        }
    }

    public void resume() {
        synchronized (lock) {
            Machine m = runningMachine();
            if (state != State.PAUSED) return;
            m.resume();
            state = State.RUNNING;
            savedTo = null;
        }
    }

    public void flushMetrics() {
        MetricsFile f;
        synchronized (lock) {
            if (!started) throw ApiException.preBoot();
            f = metrics;
        }
        if (f == null) return; // as Firecracker: nothing configured, nothing written
        try {
            if (!f.flush())
                throw new ApiException(
                        Kind.VM_UNAVAILABLE,
                        "Metrics error: " + f.path() + " did not take the metrics within "
                                + MetricsFile.WRITE_TIMEOUT.toSeconds() + " s (a FIFO that nobody reads?)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiException(Kind.VM_UNAVAILABLE, "Metrics error: interrupted");
        }
    }

    private Machine runningMachine() {
        if (!started()) throw ApiException.preBoot();
        Machine m = current.get();
        if (m == null || m.vm().exitStatus().isPresent())
            throw new ApiException(Kind.VM_UNAVAILABLE, "The microVM is not running: it is rebooting or has ended.");
        return m;
    }

    private boolean started() {
        synchronized (lock) {
            return started;
        }
    }

    private void requireNotStarted() {
        if (started) throw ApiException.postBoot();
    }

    /** One metrics line: jvmm's counters, cumulative since the start (Firecracker's are since the last line). */
    private String metricsLine(Bodies.Metrics m) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("utc_timestamp_ms", System.currentTimeMillis());
        if (Boolean.TRUE.equals(m.emitId())) line.put("id", host.id());
        if (m.properties() != null && !m.properties().isEmpty()) line.put("properties", m.properties());
        line.putAll(metrics());
        return Json.write(line);
    }

    /**
     * jvmm's counters (GET /jvmm/metrics, and the metrics file's lines): the API's requests, the VMM's state and
     * reboots and, while a machine runs, its vCPU exits by reason, each disk's requests, bytes and latencies, and each
     * NIC's frames and bytes (and a user-mode NIC's connections). A
     * machine's counters start at its boot (a reboot starts them again); the others at the start of the run.
     */
    public Map<String, Object> metrics() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("api_server", Map.of("requests", requests.sum(), "refused", refused.sum()));
        out.put("vmm", Map.of("state", state.text(), "reboots", reboots.sum()));
        Machine machine = current.get();
        Started s = launched;
        if (machine == null || s == null) return out;
        Map<String, Object> exits = new LinkedHashMap<>();
        machine.stats()
                .snapshot()
                .forEach((reason, row) ->
                        exits.put(reason, Map.of("count", row.count(), "mean_ns", Math.round(row.meanNanos()))));
        out.put("vcpu_exits", exits);
        Map<String, Object> blocks = new LinkedHashMap<>();
        List<VirtioBlock> disks = machine.disks();
        for (int i = 0; i < disks.size() && i < s.disks().size(); i++) {
            BlockStats.Snapshot b = disks.get(i).stats().snapshot();
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("requests", b.requests());
            d.put("reads", b.reads());
            d.put("read_bytes", b.readBytes());
            d.put("writes", b.writes());
            d.put("write_bytes", b.writtenBytes());
            d.put("flushes", b.flushes());
            d.put("discards", b.discards());
            d.put("write_zeroes", b.writeZeroes());
            d.put("other", b.others());
            d.put("refused", b.refused());
            d.put("errors", b.errors());
            d.put("throttled", disks.get(i).throttledCount());
            d.put("read_agg", latency(disks.get(i).stats().latency(BlockStats.Op.READ)));
            d.put("write_agg", latency(disks.get(i).stats().latency(BlockStats.Op.WRITE)));
            d.put("flush_agg", latency(disks.get(i).stats().latency(BlockStats.Op.FLUSH)));
            blocks.put(s.disks().get(i), d);
        }
        out.put("block", blocks);
        Map<String, Object> nets = new LinkedHashMap<>();
        List<VirtioNet> nics = machine.nics();
        for (int i = 0; i < nics.size() && i < s.nics().size(); i++) {
            VirtioNet n = nics.get(i);
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("tx_frames", n.txFrames());
            d.put("tx_bytes", n.txBytes());
            d.put("tx_dropped", n.txDropped());
            d.put("tx_malformed", n.txMalformed());
            d.put("rx_frames", n.rxFrames());
            d.put("rx_bytes", n.rxBytes());
            d.put("rx_dropped", n.rxDropped());
            d.put("rx_filtered", n.rxFiltered());
            d.put("tx_throttled", n.txThrottled());
            d.put("rx_throttled", n.rxThrottled());
            n.backend().flowStats().ifPresent(f -> d.put("user_net", flows(f)));
            nets.put(s.nics().get(i), d);
        }
        out.put("net", nets);
        out.put("broken_devices", machine.brokenDevices());
        return out;
    }

    /** A user-mode NIC's connection counters (see {@link FlowStats}); "current" is opened less closed. */
    static Map<String, Object> flows(FlowStats f) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("tcp_opened", f.tcpOpened());
        m.put("tcp_closed", f.tcpClosed());
        m.put("tcp_refused", f.tcpRefused());
        m.put("tcp_current", f.tcpCurrent());
        m.put("udp_flows_opened", f.udpFlowsOpened());
        m.put("udp_flows_current", f.udpFlowsCurrent());
        m.put("nat_refused", f.natRefused());
        m.put("tcp_tx_bytes", f.tcpTxBytes());
        m.put("tcp_rx_bytes", f.tcpRxBytes());
        m.put("udp_tx_bytes", f.udpTxBytes());
        m.put("udp_rx_bytes", f.udpRxBytes());
        return m;
    }

    /**
     * A kind of request's latency as Firecracker's block metrics give it ({@code read_agg}: {@code min_us},
     * {@code max_us}, {@code sum_us}), with percentiles added: whole microseconds, rounded up but for the sum.
     */
    static Map<String, Object> latency(BlockStats.Latency l) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("min_us", Math.ceilDiv(l.minNanos(), 1000));
        m.put("max_us", Math.ceilDiv(l.maxNanos(), 1000));
        m.put("sum_us", (l.sumNanos() + 500) / 1000);
        m.put("p50_us", Math.ceilDiv(l.p50Nanos(), 1000));
        m.put("p90_us", Math.ceilDiv(l.p90Nanos(), 1000));
        m.put("p99_us", Math.ceilDiv(l.p99Nanos(), 1000));
        return m;
    }

    /**
     * What jvmm's verbs show of the VM (GET /jvmm/vm): its state and process, its size, and, once started, the
     * machine as built (from the API's configuration or jvmm run's options), its disks and NICs and its uptime.
     */
    public Bodies.JvmmVm details() {
        Started s = launched;
        Bodies.MachineConfiguration pre = resources.machine();
        Machine machine = current.get();
        Long uptime = s == null ? null : (System.nanoTime() - s.nanos()) / 1_000_000;
        List<Bodies.JvmmDisk> disks = new ArrayList<>();
        List<Bodies.JvmmNic> nics = new ArrayList<>();
        if (s != null) {
            List<MachineConfig.DiskConfig> dc = s.config().disks();
            for (int i = 0; i < dc.size() && i < s.disks().size(); i++) {
                MachineConfig.DiskConfig d = dc.get(i);
                disks.add(new Bodies.JvmmDisk(
                        s.disks().get(i),
                        d.path().toString(),
                        d.readOnly(),
                        d.transport().name().toLowerCase(Locale.ROOT),
                        d.serial().orElse(null)));
            }
            List<VirtioNet> live = machine == null ? List.of() : machine.nics();
            List<MachineConfig.NicConfig> nc = s.config()
                    .nics()
                    .orElseGet(() -> live.isEmpty() ? List.of() : List.of(MachineConfig.NicConfig.DEFAULT));
            for (int i = 0; i < nc.size() && i < s.nics().size(); i++) {
                MachineConfig.NicConfig n = nc.get(i);
                String mac = i < live.size()
                        ? live.get(i).mac().toString()
                        : n.backend().mac().map(Object::toString).orElse(null);
                String backend = switch (n.backend()) {
                    case dev.jvmm.devices.net.NetConfig.User u -> "user";
                    case dev.jvmm.devices.net.NetConfig.Tap t -> "tap:" + t.ifname();
                };
                nics.add(new Bodies.JvmmNic(
                        s.nics().get(i), mac, backend, n.transport().name().toLowerCase(Locale.ROOT)));
            }
        }
        return new Bodies.JvmmVm(
                host.id(),
                state.text(),
                ProcessHandle.current().pid(),
                s != null ? s.config().cpus() : pre.vcpuCount(),
                s != null ? s.config().memoryBytes() >> 20 : pre.memSizeMib(),
                s != null ? s.at().toString() : null,
                uptime,
                reboots.sum(),
                s != null ? s.config().kernel().toString() : null,
                machine != null ? machine.cmdline() : null,
                disks,
                nics,
                host.consoleSocket().map(Path::toString).orElse(null),
                host.log().map(Path::toString).orElse(null));
    }

    private static String reason(Exception e) {
        if (e instanceof java.nio.file.NoSuchFileException) return "no such file or folder";
        if (e instanceof java.nio.file.AccessDeniedException) return "permission denied";
        return e.getMessage() != null ? e.getMessage() : e.toString();
    }

    // The end.

    /** Waits for the run to end: the guest powered off or crashed, or {@link #stop()} (also before InstanceStart). */
    public End awaitEnd() throws InterruptedException {
        try {
            return end.get();
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    public Optional<End> ended() {
        return Optional.ofNullable(end.getNow(null));
    }

    /** Ends the run: the machine stops (status Stopped unless it ended already); before InstanceStart, at once. */
    public void stop() {
        stopRequested = true;
        Machine m = current.get();
        if (m != null) m.stop();
        synchronized (lock) {
            if (!started) {
                end.complete(new End(new ExitStatus.Stopped(), null));
                return;
            }
            Machine now = current.get();
            if (now != null && now != m) now.stop();
        }
    }

    /** Presses the power button of a running guest; before InstanceStart there is nothing to ask, so it stops. */
    public void pressPowerButtonOrStop() {
        Machine m = current.get();
        if (m != null) m.pressPowerButton();
        else if (!started()) stop();
    }

    @Override
    public void close() throws InterruptedException {
        stop();
        Thread t;
        synchronized (lock) {
            t = runner;
        }
        if (t != null) t.join();
        MetricsFile f;
        synchronized (lock) {
            f = metrics;
        }
        if (f != null) {
            f.flush(); // a last line, as Firecracker writes at exit
            f.close();
        }
    }
}
