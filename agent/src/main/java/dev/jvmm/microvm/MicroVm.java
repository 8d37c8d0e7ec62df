package dev.jvmm.microvm;

import dev.jvmm.agent.AgentClient;
import dev.jvmm.agent.AgentConnector;
import dev.jvmm.agent.AgentInitramfs;
import dev.jvmm.agent.AgentProtocol;
import dev.jvmm.agent.Command;
import dev.jvmm.agent.DebianBusybox;
import dev.jvmm.agent.DebianKernel;
import dev.jvmm.agent.ExecResult;
import dev.jvmm.agent.KernelModule;
import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.user.UserNetBackend;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeoutException;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A Linux micro-VM for tests, run in this JVM: a kernel (Debian's stock one by default, fetched into a cache), an
 * initramfs holding the guest agent as /init, and a vsock to reach it. Commands run and files move through the
 * agent; the serial console is kept for {@link #awaitConsole}. No disk, and no network unless asked.
 * <pre>{@code
 * try (MicroVm vm = MicroVm.builder().memory(256 << 20).start()) {
 *     ExecResult r = vm.exec("uname", "-r");
 *     vm.copyIn(Path.of("app"), "/tmp/app");
 * }
 * }</pre>
 */
public final class MicroVm implements AutoCloseable {
    /** The guest's vsock context ID (any of 3 and up would do: each VM has its own device). */
    static final long GUEST_CID = 3;
    /**
     * What every micro-VM's kernel gets: the console, a reset that ends the VM, no pause on panic, no chatter, and
     * {@code iommu=noaperture}: Debian's kernel otherwise scans every PCI bus, slot and function for an AMD GART
     * aperture a VM never has, through port I/O, which is half the exits of a micro-VM's boot (34 447 port I/O exits
     * to the agent listening without it, 17 911 with it; measured in the emulated machine, where the boot took
     * 29.6 s and 21.9 s).
     */
    public static final String BASE_CMDLINE = "console=ttyS0 reboot=k panic=-1 quiet iommu=noaperture";

    /** The line the agent prints on the console once it listens (jvmm-agent.c). */
    /** What the agent prints on the console once it listens (for {@link #awaitConsole}). */
    public static final Pattern AGENT_LISTENING = Pattern.compile("jvmm-agent: listening");

    private final Machine machine;
    private final ConsoleLog console;
    private final AgentClient agent;
    private final Path workDir;
    private final Map<Integer, Integer> hostPorts;
    private final Duration shutdownTimeout;
    private final long launchedAt;
    private volatile Duration startupTime;
    private boolean closed;

    private MicroVm(
            Machine machine,
            ConsoleLog console,
            AgentClient agent,
            Path workDir,
            Map<Integer, Integer> hostPorts,
            Duration shutdownTimeout,
            long launchedAt) {
        this.machine = machine;
        this.console = console;
        this.agent = agent;
        this.workDir = workDir;
        this.hostPorts = hostPorts;
        this.shutdownTimeout = shutdownTimeout;
        this.launchedAt = launchedAt;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Runs a command to its end; see {@link AgentClient#exec(Command)}. */
    public ExecResult exec(String... argv) throws IOException, InterruptedException {
        return agent.exec(argv);
    }

    /** Runs a command to its end; see {@link AgentClient#exec(Command)}. */
    public ExecResult exec(Command command) throws IOException, InterruptedException {
        return agent.exec(command);
    }

    /** Runs a command with its output streamed as it comes; returns its exit code. */
    public int exec(Command command, OutputStream stdout, OutputStream stderr)
            throws IOException, InterruptedException {
        return agent.exec(command, stdout, stderr);
    }

    /** Copies a host file into the guest (its permissions kept, missing parent folders made). */
    public void copyIn(Path host, String guestPath) throws IOException {
        agent.copyIn(host, guestPath);
    }

    /** Copies a guest file to the host. */
    public void copyOut(String guestPath, Path host) throws IOException {
        agent.copyOut(guestPath, host);
    }

    /** The agent's client, for what this class does not wrap. */
    public AgentClient agent() {
        return agent;
    }

    /**
     * Waits until the serial console's output (everything since boot) matches the pattern; returns the first
     * match. {@link TimeoutException} (with the console's end in its message) if it does not within the timeout.
     * The output grows a few characters at a time: end a pattern with what follows the part you capture (a space,
     * a newline), or a match may hold half a word.
     */
    public MatchResult awaitConsole(Pattern pattern, Duration timeout) throws InterruptedException, TimeoutException {
        return console.await(pattern, timeout)
                .orElseThrow(() -> new TimeoutException(
                        "no " + pattern + " on the console within " + timeout + "; its end:\n" + tail(console())));
    }

    /** The serial console's output so far (the kernel's log with {@code quiet}: warnings and worse). */
    public String console() {
        return console.text();
    }

    /** The host port forwarded to this guest TCP port (see {@link Builder#forwardPort}), on 127.0.0.1. */
    public int hostPort(int guestPort) {
        Integer p = hostPorts.get(guestPort);
        if (p == null) throw new IllegalArgumentException("guest port " + guestPort + " is not forwarded");
        return p;
    }

    /** The machine underneath (its exit status, counters, devices). */
    public Machine machine() {
        return machine;
    }

    /**
     * From the machine's start (its kernel already loaded) to the agent's first answer; empty before it answered.
     */
    public Optional<Duration> startupTime() {
        return Optional.ofNullable(startupTime);
    }

    /**
     * Waits for the agent to answer (what {@link Builder#start()} does). Throws if the guest ends first or the
     * timeout passes, with the console's end in the message.
     */
    public void awaitAgent(Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        IOException last = null;
        long pauseMs = 10;
        while (System.nanoTime() < deadline) {
            Optional<ExitStatus> ended = machine.vm().exitStatus();
            if (ended.isPresent())
                throw new IOException("the guest ended (" + ended.get() + ") before its agent answered; the console:\n"
                        + tail(console()));
            try {
                agent.ping();
                startupTime = Duration.ofNanos(System.nanoTime() - launchedAt);
                return;
            } catch (IOException e) {
                last = e; // not listening yet: the vsock closes the connection
            }
            // Each try costs the VMM work beside the booting guest: try again at once when the agent says on the
            // console that it listens, else after a pause that grows to a quarter second.
            if (console.await(AGENT_LISTENING, Duration.ofMillis(pauseMs)).isPresent()) Thread.sleep(5);
            pauseMs = Math.min(250, pauseMs * 2);
        }
        throw new IOException(
                "the agent did not answer within " + timeout + " (" + (last == null ? "" : last.getMessage())
                        + "); the console:\n" + tail(console()),
                last);
    }

    /**
     * Powers the guest off through the agent and waits for it to go (up to the builder's shutdown timeout), then
     * stops it hard if it has not; frees everything. Idempotent.
     */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            if (startupTime != null && machine.vm().exitStatus().isEmpty()) {
                try {
                    agent.powerOff();
                    if (machine.awaitExit(shutdownTimeout).isEmpty()) machine.stop();
                } catch (IOException e) {
                    machine.stop();
                }
            } else if (machine.vm().exitStatus().isEmpty()) {
                machine.stop(); // the agent never answered: nothing to ask
            }
        } catch (InterruptedException e) {
            machine.stop();
            Thread.currentThread().interrupt();
        } finally {
            machine.close();
            deleteTree(workDir);
        }
    }

    private static String tail(String text) {
        return text.length() <= 4000 ? text : "..." + text.substring(text.length() - 4000);
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        } catch (IOException | UncheckedIOException e) {
            // a leftover temporary folder is not worth failing a close for
        }
    }

    /** Initramfs files by what they hold (see {@link Builder#initramfs}); their folder, made on first use. */
    private static final Map<String, Path> INITRAMFS = new java.util.HashMap<>();

    private static Path initramfsDir;

    /** How to build a micro-VM; {@link #start()} boots it and returns once its agent answers. */
    public static final class Builder {
        private Path kernel;
        private DebianKernel debianKernel;
        private final List<Path> modules = new ArrayList<>();
        private long memory = 256L << 20;
        private int cpus = 1;
        private String extraCmdline = "";
        private String cpuFeatures = "";
        private boolean network;
        private final List<int[]> forwards = new ArrayList<>();
        private OutputStream consoleCopy = OutputStream.nullOutputStream();
        private Path busybox; // null: DebianBusybox.resolve()
        private boolean noBusybox;
        private final Map<String, Path> files = new LinkedHashMap<>();
        private Duration startTimeout = Duration.ofMinutes(5);
        private Duration shutdownTimeout = Duration.ofSeconds(30);

        private Builder() {}

        /**
         * A kernel of your own (bzImage or vmlinux) with virtio-pci and virtio-vsock built in, or loadable from
         * {@link #modules}. Default: Debian's stock kernel and its modules ({@link DebianKernel#resolve()}).
         */
        public Builder kernel(Path bzImage) {
            kernel = bzImage;
            debianKernel = null;
            return this;
        }

        /** A Debian linux-image package's kernel and modules (e.g. {@link DebianKernel#fromPackage}). */
        public Builder kernel(DebianKernel debian) {
            debianKernel = debian;
            kernel = null;
            return this;
        }

        /** Module files (.ko) for the agent to load at boot, for a kernel given with {@link #kernel(Path)}. */
        public Builder modules(List<Path> koFiles) {
            modules.addAll(koFiles);
            return this;
        }

        /** Guest memory in bytes (default 256 MiB). */
        public Builder memory(long bytes) {
            memory = bytes;
            return this;
        }

        /** vCPUs (default 1). */
        public Builder cpus(int n) {
            cpus = n;
            return this;
        }

        /** Appended to the kernel command line ({@link #BASE_CMDLINE}); later options win. */
        public Builder cmdline(String extra) {
            extraCmdline = extra;
            return this;
        }

        /** CPUID features to hide or show, as {@code jvmm run --cpu-features} takes them. */
        public Builder cpuFeatures(String spec) {
            cpuFeatures = spec;
            return this;
        }

        /**
         * User-mode networking (as {@code --net user}): the guest is 10.0.2.15, reaches other hosts through the
         * host's sockets and names through 10.0.2.3; the host itself stays closed. Off by default.
         */
        public Builder network() {
            network = true;
            return this;
        }

        /** Forwards a free host port on 127.0.0.1 to this guest TCP port ({@link MicroVm#hostPort} tells which). */
        public Builder forwardPort(int guestPort) {
            return forwardPort(0, guestPort);
        }

        /** Forwards host port {@code hostPort} on 127.0.0.1 (0: any free one) to this guest TCP port. */
        public Builder forwardPort(int hostPort, int guestPort) {
            if (hostPort < 0 || hostPort > 65535 || guestPort < 1 || guestPort > 65535)
                throw new IllegalArgumentException("ports " + hostPort + " -> " + guestPort);
            network = true;
            forwards.add(new int[] {hostPort, guestPort});
            return this;
        }

        /** Where a copy of the serial console's output goes as it arrives (e.g. System.out). */
        public Builder console(OutputStream copy) {
            consoleCopy = copy;
            return this;
        }

        /**
         * A static busybox as the guest's userland (/bin/sh, uname, ...). Default: this host's static one, else
         * Debian's busybox-static package, fetched into the cache ({@link DebianBusybox#resolve()}).
         */
        public Builder busybox(Path staticBusybox) {
            busybox = staticBusybox;
            noBusybox = false;
            return this;
        }

        /** No userland but the agent (and the files added): commands must be copied in or added. */
        public Builder noBusybox() {
            noBusybox = true;
            return this;
        }

        /** A host file in the initramfs at this absolute guest path (its execute bit kept). */
        public Builder file(String guestPath, Path host) {
            files.put(guestPath, host);
            return this;
        }

        /** How long {@link #start()} waits for the agent (default 5 minutes). */
        public Builder startTimeout(Duration timeout) {
            startTimeout = timeout;
            return this;
        }

        /** How long {@link MicroVm#close()} waits for the guest to power off before stopping it (default 30 s). */
        public Builder shutdownTimeout(Duration timeout) {
            shutdownTimeout = timeout;
            return this;
        }

        /**
         * The initramfs for this configuration, built once per JVM and content (building one takes 0.15-0.4 s on a
         * 2-core host: busybox's applet list, 3 MiB of cpio), so a test that starts many VMs pays it once.
         */
        Path initramfs(List<KernelModule> loads) throws IOException, InterruptedException {
            Path bb = noBusybox ? null : busybox != null ? busybox : userland();
            StringBuilder key = new StringBuilder().append(network).append('|');
            for (KernelModule m : loads) key.append(stamp(m.file())).append('|');
            key.append(bb == null ? "-" : stamp(bb)).append('|');
            for (Map.Entry<String, Path> f : files.entrySet())
                key.append(f.getKey()).append('=').append(stamp(f.getValue())).append('|');
            synchronized (INITRAMFS) {
                Path cached = INITRAMFS.get(key.toString());
                if (cached != null && Files.isRegularFile(cached)) return cached;
                if (initramfsDir == null) {
                    initramfsDir = Files.createTempDirectory("jvmm-initramfs");
                    initramfsDir.toFile().deleteOnExit();
                }
                AgentInitramfs initramfs =
                        AgentInitramfs.builder().modules(loads).network(network);
                if (bb != null) initramfs.busybox(bb);
                for (Map.Entry<String, Path> f : files.entrySet())
                    initramfs.file(f.getKey(), f.getValue(), Files.isExecutable(f.getValue()) ? 0755 : 0644);
                Path file = Files.createTempFile(initramfsDir, "initrd", ".cpio");
                file.toFile().deleteOnExit(); // registered after its folder: deleted before it
                initramfs.write(file);
                INITRAMFS.put(key.toString(), file);
                return file;
            }
        }

        /** A file as it is now: a changed file makes a new key. */
        private static String stamp(Path p) throws IOException {
            return p.toAbsolutePath() + ":" + Files.size(p) + ":"
                    + Files.getLastModifiedTime(p).toMillis() + ":" + Files.isExecutable(p);
        }

        private static Path userland() throws IOException, InterruptedException {
            try {
                return DebianBusybox.resolve();
            } catch (IOException e) {
                throw new IOException(
                        "no static busybox for the guest's userland (install Debian's busybox-static,"
                                + " give one with busybox(path), or choose noBusybox()): " + e.getMessage(),
                        e);
            }
        }

        /** Boots the VM and waits until its agent answers. */
        public MicroVm start() throws IOException, InterruptedException {
            MicroVm vm = launch();
            try {
                vm.awaitAgent(startTimeout);
                return vm;
            } catch (IOException | InterruptedException | RuntimeException e) {
                vm.close();
                throw e;
            }
        }

        /**
         * Boots the VM and returns at once, before its agent answers: for tests of the boot itself
         * ({@link MicroVm#awaitConsole}, then {@link MicroVm#awaitAgent}).
         */
        public MicroVm launch() throws IOException, InterruptedException {
            Path kernelFile;
            List<KernelModule> loads;
            if (kernel != null) {
                kernelFile = kernel;
                List<KernelModule> read = new ArrayList<>();
                for (Path ko : modules) read.add(KernelModule.read(ko));
                loads = KernelModule.loadOrder(read, java.util.Set.of());
            } else {
                DebianKernel debian = debianKernel != null ? debianKernel : DebianKernel.resolve();
                kernelFile = debian.kernel();
                List<String> names = new ArrayList<>(AgentInitramfs.VSOCK_MODULES);
                if (network) names.addAll(AgentInitramfs.NET_MODULES);
                loads = debian.modules(names);
            }
            Path workDir = Files.createTempDirectory("jvmm-microvm");
            try {
                Path initrd = initramfs(loads);
                Path uds = workDir.resolve("vsock");
                ConsoleLog console = new ConsoleLog(consoleCopy);
                MachineConfig.Builder config = MachineConfig.builder(kernelFile)
                        .initrd(initrd)
                        .cmdline(extraCmdline.isBlank() ? BASE_CMDLINE : BASE_CMDLINE + " " + extraCmdline)
                        .memory(memory)
                        .cpus(cpus)
                        .cpuFeatures(cpuFeatures)
                        .console(console)
                        .vsock(new MachineConfig.VsockConfig(GUEST_CID, uds));
                List<NetConfig.HostForward> hostForwards = new ArrayList<>();
                InetAddress loopback = InetAddress.getLoopbackAddress();
                for (int[] f : forwards)
                    hostForwards.add(
                            new NetConfig.HostForward(NetConfig.Protocol.TCP, loopback, f[0], Optional.empty(), f[1]));
                if (network)
                    config.nic(new NetConfig.User(
                            hostForwards, List.of(), false, false, Optional.empty(), Optional.empty()));
                else config.noNetwork();
                Machine machine = Machine.create(config.build());
                Map<Integer, Integer> ports = new LinkedHashMap<>();
                if (!forwards.isEmpty() && machine.nics().getFirst().backend() instanceof UserNetBackend user) {
                    List<InetSocketAddress> bound = user.forwardAddresses();
                    for (int i = 0; i < forwards.size(); i++)
                        ports.put(forwards.get(i)[1], bound.get(i).getPort());
                }
                MicroVm vm = new MicroVm(
                        machine,
                        console,
                        new AgentClient(AgentConnector.vsock(uds, AgentProtocol.DEFAULT_PORT)),
                        workDir,
                        Map.copyOf(ports),
                        shutdownTimeout,
                        System.nanoTime());
                try {
                    machine.start();
                } catch (RuntimeException e) {
                    vm.close();
                    throw e;
                }
                return vm;
            } catch (IOException | RuntimeException e) {
                deleteTree(workDir);
                throw e;
            }
        }
    }
}
