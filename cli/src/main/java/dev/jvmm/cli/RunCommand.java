package dev.jvmm.cli;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.boot.MachineConfigException;
import dev.jvmm.boot.loader.KernelLoader;
import dev.jvmm.cli.api.Api;
import dev.jvmm.cli.api.ApiException;
import dev.jvmm.cli.api.ApiServer;
import dev.jvmm.cli.api.Bodies;
import dev.jvmm.cli.api.ConsoleHub;
import dev.jvmm.cli.api.ConsoleServer;
import dev.jvmm.cli.api.Instance;
import dev.jvmm.core.ExitStats;
import dev.jvmm.core.ExitStatus;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code jvmm run}: boots a kernel, as {@code qemu-system-x86_64 -kernel} or Firecracker would. */
@Command(
        name = "run",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        description = {
            "Boot a kernel (Linux bzImage or vmlinux, or a multiboot kernel) in a new VM.",
            "With --api-sock, serve Firecracker's REST API on a Unix socket instead and wait to be configured;"
                    + " with --config-file, take Firecracker's JSON configuration and boot it."
        },
        footer = {
            "",
            "Exit status: 0 when the guest powers off or resets, (v << 1) | 1 when it writes v to the debug-exit port,",
            "2 when it crashes, 3 on a VMM error, 130 when stopped (Ctrl-C or Ctrl-]), 1 for bad options or files."
        })
public final class RunCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    /** The guest console's input: standard input, unless an embedding program or test gives another. */
    java.io.InputStream input = System.in;
    /** The environment: where named VMs live ({@link RuntimeDir}). */
    java.util.Map<String, String> env = System.getenv();

    @Option(
            names = "--kernel",
            paramLabel = "PATH",
            description = "Kernel image: bzImage, vmlinux (ELF) or multiboot (required"
                    + " unless --api-sock, --config-file or --name's API configures the VM).")
    Path kernel;

    @Option(
            names = "--name",
            paramLabel = "NAME",
            description = "Run as a named VM (also its instance id): its API socket NAME.sock and console socket"
                    + " NAME.console in jvmm's runtime folder ($XDG_RUNTIME_DIR/jvmm; /run/jvmm for root; $"
                    + RuntimeDir.ENV + " when set), where jvmm list, info, console, suspend, resume, shutdown,"
                    + " reboot and destroy find it. A name is unique among running VMs. Without --kernel or"
                    + " --config-file the VM waits to be configured through its API socket.")
    String name;

    @Option(
            names = "--detach",
            description = "With --name: run the VM in the background and return once it runs (its console through"
                    + " 'jvmm console NAME'; its output, the console's included, in the runtime folder's NAME.log).")
    boolean detach;

    /** Set by --detach on the process it starts: the VM runs in the background, its output in NAME.log. */
    @Option(names = "--detached", hidden = true)
    boolean detached;

    @Option(
            names = "--console-sock",
            paramLabel = "PATH",
            description = "With --api-sock: serve the serial console on this Unix socket too (raw bytes both ways;"
                    + " created 0600; one client at a time, the newest wins). --name makes one of its own.")
    Path consoleSock;

    @Option(
            names = "--api-sock",
            paramLabel = "PATH",
            description = "Serve Firecracker's REST API (HTTP over this Unix socket,"
                    + " created 0600, removed at exit; an existing path is refused) and wait for its InstanceStart.")
    Path apiSock;

    @Option(
            names = "--config-file",
            paramLabel = "FILE",
            description = "Firecracker's JSON configuration (boot-source, machine-config,"
                    + " drives, network-interfaces, logger, metrics): the VM it describes is started at once.")
    Path configFile;

    @Option(
            names = "--id",
            paramLabel = "ID",
            defaultValue = Instance.Host.DEFAULT_ID,
            description =
                    "The instance id the API reports (1 to 64 letters, digits and '-'; default: ${DEFAULT-VALUE}).")
    String id;

    /** Set by 'jvmm restore FILE': the machine comes from the snapshot, not from options. */
    @Option(names = "--restore", hidden = true, paramLabel = "FILE")
    Path restore;

    @Option(
            names = "--disk-path",
            paramLabel = "DISK=PATH",
            description = "jvmm restore: disk DISK (vda, vdb, ...) of the snapshot is now at PATH (moved or copied);"
                    + " it is checked by format and size instead of by file identity.")
    java.util.Map<String, Path> diskPaths = new java.util.LinkedHashMap<>();

    @Option(
            names = "--trust-disks",
            description = "jvmm restore: open the disks without checking that they are the images the snapshot was"
                    + " taken with (a disk written since then may then look corrupt to the guest).")
    boolean trustDisks;

    @Option(
            names = "--initrd",
            paramLabel = "PATH",
            description = "Initial ramdisk (a multiboot module for multiboot kernels).")
    Path initrd;

    @Option(
            names = "--cmdline",
            paramLabel = "STR",
            description = "Kernel command line (default for Linux: \"" + MachineConfig.DEFAULT_LINUX_CMDLINE + "\").")
    String cmdline;

    @Option(
            names = {"-m", "--memory"},
            paramLabel = "SIZE",
            defaultValue = "512M",
            converter = Sizes.class,
            description = "Guest RAM, e.g. 512M or 2G (default: ${DEFAULT-VALUE}).")
    long memory;

    @Option(
            names = "--cpus",
            paramLabel = "N",
            defaultValue = "1",
            description = "Number of vCPUs (default: ${DEFAULT-VALUE}).")
    int cpus;

    @Option(
            names = "--cpu-features",
            paramLabel = "LIST",
            defaultValue = "",
            description = "CPUID features to hide or show, by /proc/cpuinfo name: e.g. -avx,-xsave,+x2apic"
                    + " (default: as the host's KVM offers).")
    String cpuFeatures;

    @Option(
            names = "--boot-path",
            paramLabel = "PATH",
            defaultValue = "auto",
            description = "How to enter Linux: auto (a bzImage is decompressed on the host;"
                    + " a vmlinux enters at its PVH entry if it has one), decompressor (the kernel's own decompressor),"
                    + " linux64, pvh (default: ${DEFAULT-VALUE}).")
    String bootPath;

    @Option(
            names = "--debugcon",
            paramLabel = "stdio|file:PATH",
            description = "QEMU-compatible debug console on port 0xe9 (default: none).")
    String debugcon;

    @Option(
            names = "--debug-exit",
            paramLabel = "PORT",
            converter = Ports.class,
            description = "QEMU-compatible isa-debug-exit device at PORT, e.g. 0xf4 (default: none).")
    Integer debugExit;

    @Option(
            names = "--disk",
            paramLabel = "PATH[,readonly][,serial=ID][,transport=mmio|pci][,format=raw|qcow2][,backing=any]"
                    + "[,bps=SIZE][,iops=N]",
            converter = Disks.class,
            description = "A raw or qcow2 disk image as a virtio-blk disk (repeatable): read-only, with a serial id,"
                    + " on virtio-mmio (default; announced on the kernel command line) or virtio-pci."
                    + " The format is read from the file unless given; a qcow2 image with a backing file"
                    + " needs format=qcow2, and its backing files must lie in its directory or below"
                    + " unless backing=any. bps= and iops= limit the guest's bytes and requests a second"
                    + " (token buckets, as Firecracker's rate limiters).")
    java.util.List<MachineConfig.DiskConfig> disks = new java.util.ArrayList<>();

    @Option(
            names = "--net",
            paramLabel = "user[,hostfwd=...][,guestfwd=...][,hostloopback=on][,restrict=on]"
                    + "|tap,ifname=NAME[,bridge=BR]|none",
            converter = Nets.class,
            description =
                    "A virtio-net NIC (repeatable): user-mode networking (guest 10.0.2.15 by DHCP, gateway 10.0.2.2,"
                            + " DNS 10.0.2.3; hostfwd=tcp:HOSTADDR:HOSTPORT-:GUESTPORT forwards a host port"
                            + " to the guest). The host itself is closed to the guest unless hostloopback=on"
                            + " (QEMU's default: 10.0.2.2 is the host's 127.0.0.1, and the host's own addresses answer)"
                            + " or guestfwd=tcp:10.0.2.100:PORT-HOSTADDR:HOSTPORT opens one host service;"
                            + " link-local and cloud metadata addresses stay closed;"
                            + " restrict=on refuses every outgoing flow but guestfwd."
                            + " Or a TAP interface (created if missing, added to bridge BR), or none."
                            + " rx-bps=SIZE, tx-bps=SIZE, rx-pps=N, tx-pps=N limit bytes and frames a second"
                            + " towards and from the guest."
                            + " Also mac=52:54:00:..., transport=pci|mmio (default pci)."
                            + " Default: one user-mode NIC for Linux kernels, none for multiboot kernels.")
    java.util.List<Nets.NetOption> nets = new java.util.ArrayList<>();

    @Option(
            names = "--vsock",
            paramLabel = "cid=CID,uds=PATH[,transport=pci|mmio]",
            converter = Vsocks.class,
            description = "A virtio-vsock device (Firecracker's convention): the guest's context ID (3 to 4294967294)"
                    + " and a Unix socket PATH that jvmm listens on; a host program connects there and writes"
                    + " 'CONNECT <port>\\n' to reach a guest port (answered 'OK <host port>\\n'). The guest's"
                    + " connections to host port P go to the socket PATH_P. On virtio-pci unless transport=mmio.")
    MachineConfig.VsockConfig vsock;

    @Option(names = "--stats", description = "Print per-exit-reason counts and mean handling time when the guest ends.")
    boolean stats;

    @Option(
            names = {"-v", "--verbose"},
            description = "Print the register dump when the guest crashes.")
    boolean verbose;

    @Option(
            names = "--no-reboot",
            description = "End the run when the guest reboots (QEMU's -no-reboot, Firecracker's"
                    + " behaviour) instead of booting it again.")
    boolean noReboot;

    @Option(
            names = "--shutdown-timeout",
            paramLabel = "SECONDS",
            defaultValue = "90",
            description =
                    "SIGTERM presses the guest's ACPI power button; a guest that has not powered off after SECONDS"
                            + " (default ${DEFAULT-VALUE}), or a second SIGTERM, is stopped hard.")
    int shutdownTimeout;

    @Option(
            names = "--log-level",
            paramLabel = "LEVEL",
            description = "How much jvmm says on stderr: error, warn (default), info, debug or trace;"
                    + " from debug on, Netty's too.")
    void logLevel(String level) {
        try {
            Logging.level(level);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    @Override
    public Integer call() throws Exception {
        if (restore != null) checkRestoreOptions();
        else if (!diskPaths.isEmpty() || trustDisks)
            throw new BootException(Kind.BAD_OPTION, "--disk-path and --trust-disks are for jvmm restore");
        if (detach) {
            if (name == null)
                throw new BootException(
                        Kind.BAD_OPTION,
                        "--detach needs --name: a VM in the background is reached by its name (jvmm console NAME)");
            return Detach.start(
                    RuntimeDir.locate(env, RuntimeDir.uid()),
                    RuntimeDir.checkName(name, "--name"),
                    spec.commandLine().getParseResult().originalArgs(),
                    kernel == null && configFile == null && restore == null,
                    spec.commandLine().getOut(),
                    spec.commandLine().getErr());
        }
        if (apiSock != null || configFile != null || name != null || restore != null)
            return runInstance(spec.commandLine().getErr());
        if (consoleSock != null) throw new BootException(Kind.BAD_OPTION, "--console-sock needs --api-sock");
        if (kernel == null)
            throw new BootException(
                    Kind.BAD_OPTION,
                    "Missing required option: '--kernel=PATH' (or configure the VM with --api-sock or --config-file)");
        return run(configure(), spec.commandLine().getErr());
    }

    /** Options a restore cannot take: the snapshot describes the machine. */
    private static final java.util.List<String> NOT_WITH_RESTORE = java.util.List.of(
            "--kernel",
            "--initrd",
            "--cmdline",
            "--memory",
            "--cpus",
            "--disk",
            "--net",
            "--config-file",
            "--cpu-features",
            "--boot-path",
            "--debug-exit");

    private void checkRestoreOptions() {
        for (String o : NOT_WITH_RESTORE)
            if (spec.commandLine().getParseResult() != null
                    && spec.commandLine().getParseResult().hasMatchedOption(o))
                throw new BootException(
                        Kind.BAD_OPTION, o + " cannot be combined with restore: the snapshot describes the machine");
        for (String d : diskPaths.keySet())
            if (!d.matches("vd[a-z]"))
                throw new BootException(
                        Kind.BAD_OPTION, "--disk-path names a disk vda, vdb, ... of the snapshot, not '" + d + "'");
    }

    /** Options that describe the machine, which the API or the configuration file describes instead. */
    private static final java.util.List<String> MACHINE_OPTIONS =
            java.util.List.of("--kernel", "--initrd", "--cmdline", "--memory", "--cpus", "--disk", "--net", "--vsock");

    /**
     * Firecracker's way: the machine is configured through the API (or a configuration file) and started by its
     * InstanceStart; this run ends when that machine does, and SIGTERM and the console work as in a plain run.
     */
    int runInstance(PrintWriter err) throws Exception {
        if (name != null) {
            RuntimeDir.checkName(name, "--name");
            if (apiSock != null || consoleSock != null)
                throw new BootException(
                        Kind.BAD_OPTION,
                        (apiSock != null ? "--api-sock" : "--console-sock")
                                + " cannot be combined with --name: a named VM's sockets are in the runtime folder");
            if (kernel != null && configFile != null)
                throw new BootException(
                        Kind.BAD_OPTION, "--kernel and --config-file both describe the machine: give one of them");
        } else if (consoleSock != null && apiSock == null)
            throw new BootException(Kind.BAD_OPTION, "--console-sock needs --api-sock");
        boolean fromOptions = name != null && kernel != null;
        for (String o : MACHINE_OPTIONS) {
            if (fromOptions) break;
            if (spec.commandLine().getParseResult() != null
                    && spec.commandLine().getParseResult().hasMatchedOption(o)) {
                String why = name != null && configFile == null
                        ? " needs --kernel: without it, a named VM waits to be configured through its API"
                        : " cannot be combined with --api-sock or --config-file: the API configures the machine"
                                + " (boot-source, machine-config, drives, network-interfaces)";
                throw new BootException(Kind.BAD_OPTION, o + why);
            }
        }
        if (name != null
                && (spec.commandLine().getParseResult() == null
                        || !spec.commandLine().getParseResult().hasMatchedOption("--id"))) id = name;
        if (!id.matches("[A-Za-z0-9-]{1,64}"))
            throw new BootException(Kind.BAD_OPTION, "--id must be 1 to 64 letters, digits and '-', not '" + id + "'");
        if (shutdownTimeout < 0)
            throw new BootException(
                    Kind.BAD_OPTION, "--shutdown-timeout must be 0 or more seconds, not " + shutdownTimeout);
        Bodies.VmConfig fileConfig = configFile == null ? null : readConfigFile(configFile);
        MachineConfig options = fromOptions ? configure(null) : null; // its mistakes before anything is made
        RuntimeDir dir = null;
        Path api = apiSock, consoleAt = consoleSock;
        if (name != null) {
            dir = RuntimeDir.locate(env, RuntimeDir.uid()).ensure();
            api = dir.socket(name);
            consoleAt = dir.console(name);
        }
        if (detached) Detach.ignoreHangup();
        AtomicReference<Instance> self = new AtomicReference<>();
        // A detached VM's stdout is its log, which a guest that prints without end must not grow without end.
        OutputStream stdout = detached && dir != null
                ? new CappedLog(dir.log(name), CappedLog.DEFAULT_LIMIT)
                : new FileOutputStream(FileDescriptor.out);
        ConsoleHub hub = consoleAt == null
                ? null
                : new ConsoleHub(
                        stdout,
                        () -> self.get().current(),
                        () -> self.get().ended().isPresent());
        OutputStream console = hub != null ? hub : stdout;
        // The options' machine has its host options (debugcon's file is opened once); the API's gets them here.
        UnaryOperator<MachineConfig.Builder> hostOptions = fromOptions ? b -> b : hostOptions(console);
        AtomicReference<SigtermShutdown> sigterm = new AtomicReference<>();
        Instance instance = new Instance(new Instance.Host(
                id,
                hostOptions,
                () -> !noReboot && (sigterm.get() == null || !sigterm.get().received()),
                Logging::configure,
                Instance.Host.DEFAULT_PAUSE_TIMEOUT,
                java.util.Optional.ofNullable(consoleAt),
                detached && dir != null ? java.util.Optional.of(dir.log(name)) : java.util.Optional.empty()));
        self.set(instance);
        SigtermShutdown.Target target = new SigtermShutdown.Target() {
            public void pressPowerButton() {
                instance.pressPowerButtonOrStop();
            }

            public void stop() {
                instance.stop();
            }
        };
        Thread hook = new Thread(instance::stop, "jvmm-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        ApiServer server = null;
        ConsoleServer consoleServer = null;
        RuntimeDir.Lock lock = null;
        try (Console terminal = Console.attach(instance::current, instance::stop, input, err);
                SigtermShutdown s = SigtermShutdown.install(target, Duration.ofSeconds(shutdownTimeout), err)) {
            sigterm.set(s);
            try {
                // The name first (it removes a dead VM's stale sockets), then the sockets, as Firecracker binds its
                // socket first: a path in use must not leave a VM booted behind.
                if (name != null) lock = dir.claim(name);
                String label = name != null ? "--name " + name + ":" : null;
                if (api != null)
                    server = ApiServer.bind(
                            api, new Api(instance), label != null ? label + " its API socket" : "--api-sock");
                if (hub != null)
                    consoleServer = ConsoleServer.bind(
                            consoleAt, hub, label != null ? label + " its console socket" : "--console-sock");
                if (fileConfig != null) {
                    try {
                        instance.configure(fileConfig);
                        instance.start();
                    } catch (ApiException e) {
                        throw new BootException(
                                Kind.BAD_CONFIG_FILE, "--config-file " + configFile + ": " + e.getMessage());
                    }
                } else if (restore != null) {
                    Machine.RestoreOptions extra = Machine.RestoreOptions.DEFAULT.withTrustDisks(trustDisks);
                    for (var e : diskPaths.entrySet()) extra = extra.withDiskPath(e.getKey(), e.getValue());
                    try {
                        instance.restore(restore, extra, true);
                    } catch (ApiException e) {
                        throw new BootException(
                                Kind.SNAPSHOT_REFUSED,
                                "restore " + restore + ": "
                                        + e.getMessage().replaceFirst("^Load snapshot error: ", ""));
                    }
                } else if (options != null) {
                    try {
                        instance.start(withConsole(options, console));
                    } catch (ApiException e) {
                        throw new BootException(Kind.MACHINE_CONFIG, e.getMessage());
                    }
                }
                Instance.End end = instance.awaitEnd();
                Optional<Path> saved = instance.savedAndNotRunSince();
                if (end.status() instanceof ExitStatus.Stopped && saved.isPresent()) {
                    // Stopped after a save (jvmm save, or the API's snapshot and stop): the guest lives on in the file
                    err.println("jvmm: saved to " + saved.get() + " and stopped; 'jvmm restore " + saved.get()
                            + "' runs it again");
                    err.flush();
                    return 0;
                }
                return report(end.status(), end.stats(), err);
            } finally {
                if (server != null) server.close();
                if (consoleServer != null) consoleServer.close();
                instance.close();
                if (lock != null) lock.close();
            }
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running already
            }
        }
    }

    /** What every machine of an API-configured run gets besides the API's configuration. */
    private UnaryOperator<MachineConfig.Builder> hostOptions(OutputStream console) {
        KernelLoader.BootPath path = bootPath();
        java.util.Optional<OutputStream> dcon =
                debugcon == null ? java.util.Optional.empty() : java.util.Optional.of(debugconStream(debugcon));
        return b -> {
            b.console(console).cpuFeatures(cpuFeatures).bootPath(path);
            dcon.ifPresent(b::debugcon);
            if (debugExit != null) b.debugExit(debugExit);
            return b;
        };
    }

    static Bodies.VmConfig readConfigFile(Path file) {
        byte[] json;
        try {
            json = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new BootException(
                    Kind.BAD_CONFIG_FILE,
                    "--config-file " + file + ": cannot read it: "
                            + (e instanceof java.nio.file.NoSuchFileException ? "no such file" : e.getMessage()));
        }
        try {
            return Api.readConfig(json);
        } catch (ApiException e) {
            throw new BootException(Kind.BAD_CONFIG_FILE, "--config-file " + file + ": " + e.getMessage());
        }
    }

    /** The machine the options describe, its console on standard output. */
    MachineConfig configure() {
        return configure(new FileOutputStream(FileDescriptor.out));
    }

    /** The same config with another console stream. */
    private static MachineConfig withConsole(MachineConfig c, OutputStream console) {
        return new MachineConfig(
                c.kernel(),
                c.initrd(),
                c.cmdline(),
                c.memoryBytes(),
                c.cpus(),
                c.cpuFeatures(),
                c.bootPath(),
                console,
                c.debugcon(),
                c.debugExitPort(),
                c.disks(),
                c.nics(),
                c.vsock());
    }

    /** The machine the options describe, its console going to {@code console} (null: standard output). */
    private MachineConfig configure(OutputStream console) {
        if (shutdownTimeout < 0)
            throw new BootException(
                    Kind.BAD_OPTION, "--shutdown-timeout must be 0 or more seconds, not " + shutdownTimeout);
        KernelLoader.BootPath path = bootPath();
        MachineConfig.Builder b = MachineConfig.builder(kernel)
                .memory(memory)
                .cpus(cpus)
                .cpuFeatures(cpuFeatures)
                .bootPath(path)
                .console(console != null ? console : new FileOutputStream(FileDescriptor.out));
        if (initrd != null) b.initrd(initrd);
        if (cmdline != null) b.cmdline(cmdline);
        if (debugcon != null) b.debugcon(debugconStream(debugcon));
        if (debugExit != null) b.debugExit(debugExit);
        for (MachineConfig.DiskConfig d : disks) b.disk(d);
        boolean none = nets.stream().anyMatch(n -> n.nic().isEmpty());
        if (none && nets.size() > 1)
            throw new BootException(Kind.BAD_OPTION, "--net none cannot be combined with other --net options");
        if (none) b.noNetwork();
        for (Nets.NetOption n : nets) n.nic().ifPresent(b::nic);
        if (vsock != null) b.vsock(vsock);
        return b.build();
    }

    private KernelLoader.BootPath bootPath() {
        try {
            return KernelLoader.BootPath.valueOf(bootPath.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new BootException(
                    Kind.BAD_OPTION, "--boot-path must be auto, decompressor, linux64 or pvh, not '" + bootPath + "'");
        }
    }

    /** The library's config problem as this command's options say it. */
    static String optionMessage(MachineConfigException e) {
        return switch (e.problem()) {
            case TOO_FEW_VCPUS -> "--cpus must be at least " + e.limit() + ", not " + e.requested();
            case TOO_MANY_VCPUS ->
                "--cpus " + e.requested() + " is more than KVM allows on this host (" + e.limit() + ")";
            case MEMORY_TOO_SMALL -> "--memory must be at least " + (e.limit() >> 20) + "M";
            case MEMORY_NOT_PAGE_ALIGNED ->
                String.format("--memory must be a multiple of %dK, not %dK", e.limit() >> 10, e.requested() >> 10);
            case MEMORY_EXCEEDS_HOST ->
                String.format("--memory %dM is more than this host has (%dM)", e.requested() >> 20, e.limit() >> 20);
        };
    }

    private static OutputStream debugconStream(String spec) {
        if (spec.equals("stdio")) return new FileOutputStream(FileDescriptor.out);
        if (spec.startsWith("file:")) {
            Path p = Path.of(spec.substring(5));
            try {
                return Files.newOutputStream(p);
            } catch (IOException e) {
                throw new BootException(
                        Kind.FILE_INACCESSIBLE, "--debugcon: cannot write " + p + ": " + e.getMessage());
            }
        }
        throw new BootException(Kind.BAD_OPTION, "--debugcon must be stdio or file:PATH, not '" + spec + "'");
    }

    /**
     * Runs the machine until it ends; a guest's reboot (an ACPI or keyboard-controller reset) starts it again from
     * the same configuration, as QEMU does, unless --no-reboot or a SIGTERM asked for the end.
     */
    int run(MachineConfig config, PrintWriter err) throws InterruptedException {
        AtomicReference<Machine> current = new AtomicReference<>();
        SigtermShutdown.Target target = new SigtermShutdown.Target() {
            public void pressPowerButton() {
                Machine m = current.get();
                if (m != null) m.pressPowerButton();
            }

            public void stop() {
                Machine m = current.get();
                if (m != null) m.stop();
            }
        };
        Thread hook = new Thread(target::stop, "jvmm-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try (Console console = Console.attach(current::get, input, err);
                SigtermShutdown sigterm = SigtermShutdown.install(target, Duration.ofSeconds(shutdownTimeout), err)) {
            while (true) {
                ExitStatus status;
                ExitStats stats;
                try (Machine machine = Machine.create(config)) {
                    current.set(machine);
                    machine.start();
                    status = machine.awaitExit(Duration.ofDays(36500)).orElseThrow();
                    machine.stop();
                    current.set(null);
                    stats = machine.stats();
                }
                if (status instanceof ExitStatus.Reset && !noReboot && !sigterm.received()) continue;
                return report(status, stats, err);
            }
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running already
            }
        }
    }

    private int report(ExitStatus status, ExitStats machineStats, PrintWriter err) {
        switch (status) {
            case ExitStatus.PowerOff p -> {}
            case ExitStatus.Reset r -> {}
            case ExitStatus.GuestExit g -> {}
            case ExitStatus.Stopped s -> err.println("jvmm: " + status.describe());
            case ExitStatus.Crash c -> {
                err.println("jvmm: " + c.describe());
                if (verbose) err.print(c.report());
            }
            case ExitStatus.Error e -> {
                err.println("jvmm: " + e.describe());
                if (verbose && e.cause() != null) e.cause().printStackTrace(err);
            }
        }
        if (stats && machineStats != null) err.print(machineStats.format());
        err.flush();
        return status.exitCode();
    }

    /** The help of 'jvmm restore' (the command itself is a run with --restore). */
    @Command(
            name = "restore",
            mixinStandardHelpOptions = true,
            description = {
                "Run a VM saved by 'jvmm save' (or PUT /snapshot/create) from where it was: the same machine, its"
                        + " memory mapped copy-on-write from FILE, its disks reopened and checked to be the same"
                        + " images. Console and exit status as for 'jvmm run'.",
                "User-mode network connections do not survive (the guest's TCP connections are reset); a TAP"
                        + " device is opened again by name."
            })
    static final class RestoreHelp implements Callable<Integer> {
        @picocli.CommandLine.Parameters(index = "0", paramLabel = "FILE", description = "The snapshot file.")
        Path file;

        @Option(names = "--name", paramLabel = "NAME", description = "Run it as a named VM (see jvmm run --name).")
        String name;

        @Option(names = "--detach", description = "With --name: in the background, as jvmm run --detach.")
        boolean detach;

        @Option(names = "--disk-path", paramLabel = "DISK=PATH", description = "A disk that moved (vda=PATH).")
        java.util.Map<String, Path> diskPaths;

        @Option(names = "--trust-disks", description = "Do not check that the disks are the saved images.")
        boolean trustDisks;

        @Option(names = "--api-sock", paramLabel = "PATH", description = "Serve Firecracker's API, as jvmm run.")
        Path apiSock;

        @Option(names = "--debugcon", paramLabel = "stdio|file:PATH", description = "Where the debug console goes.")
        String debugcon;

        @Override
        public Integer call() {
            return 0;
        }
    }
}
