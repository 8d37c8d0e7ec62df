package dev.jvmm.boot.cli;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.boot.MachineConfigException;
import dev.jvmm.boot.loader.KernelLoader;
import dev.jvmm.core.ExitStats;
import dev.jvmm.core.ExitStatus;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;

/** {@code jvmm run}: boots a kernel, as {@code qemu-system-x86_64 -kernel} or Firecracker would. */
@Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Boot a kernel (Linux bzImage or vmlinux, or a multiboot kernel) in a new VM.",
        footer = {"", "Exit status: 0 when the guest powers off or resets, (v << 1) | 1 when it writes v to the debug-exit port,",
                "2 when it crashes, 3 on a VMM error, 130 when stopped (Ctrl-C or Ctrl-]), 1 for bad options or files."})
public final class RunCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    /** The guest console's input: standard input, unless an embedding program or test gives another. */
    java.io.InputStream input = System.in;

    @Option(names = "--kernel", required = true, paramLabel = "PATH", description = "Kernel image: bzImage, vmlinux (ELF) or multiboot.")
    Path kernel;

    @Option(names = "--initrd", paramLabel = "PATH", description = "Initial ramdisk (a multiboot module for multiboot kernels).")
    Path initrd;

    @Option(names = "--cmdline", paramLabel = "STR", description = "Kernel command line (default for Linux: \"" + MachineConfig.DEFAULT_LINUX_CMDLINE + "\").")
    String cmdline;

    @Option(names = {"-m", "--memory"}, paramLabel = "SIZE", defaultValue = "512M", converter = Sizes.class,
            description = "Guest RAM, e.g. 512M or 2G (default: ${DEFAULT-VALUE}).")
    long memory;

    @Option(names = "--cpus", paramLabel = "N", defaultValue = "1", description = "Number of vCPUs (default: ${DEFAULT-VALUE}).")
    int cpus;

    @Option(names = "--cpu-features", paramLabel = "LIST", defaultValue = "",
            description = "CPUID features to hide or show, by /proc/cpuinfo name: e.g. -avx,-xsave,+x2apic (default: as the host's KVM offers).")
    String cpuFeatures;

    @Option(names = "--boot-path", paramLabel = "PATH", defaultValue = "auto",
            description = "How to enter Linux: auto (a bzImage is decompressed on the host; a vmlinux enters at its PVH entry if it has one), decompressor"
                    + " (the kernel's own decompressor), linux64, pvh (default: ${DEFAULT-VALUE}).")
    String bootPath;

    @Option(names = "--debugcon", paramLabel = "stdio|file:PATH",
            description = "QEMU-compatible debug console on port 0xe9 (default: none).")
    String debugcon;

    @Option(names = "--debug-exit", paramLabel = "PORT", converter = Ports.class,
            description = "QEMU-compatible isa-debug-exit device at PORT, e.g. 0xf4 (default: none).")
    Integer debugExit;

    @Option(names = "--disk", paramLabel = "PATH[,readonly][,serial=ID][,transport=mmio|pci][,format=raw|qcow2][,backing=any]", converter = Disks.class,
            description = "A raw or qcow2 disk image as a virtio-blk disk (repeatable): read-only, with a serial id, on virtio-mmio"
                    + " (default; announced on the kernel command line) or virtio-pci. The format is read from the file"
                    + " unless given; a qcow2 image with a backing file needs format=qcow2, and its backing files must lie"
                    + " in its directory or below unless backing=any.")
    java.util.List<MachineConfig.DiskConfig> disks = new java.util.ArrayList<>();

    @Option(names = "--net", paramLabel = "user[,hostfwd=...][,guestfwd=...][,hostloopback=on][,restrict=on]|tap,ifname=NAME[,bridge=BR]|none",
            converter = Nets.class,
            description = "A virtio-net NIC (repeatable): user-mode networking (guest 10.0.2.15 by DHCP, gateway 10.0.2.2,"
                    + " DNS 10.0.2.3; hostfwd=tcp:HOSTADDR:HOSTPORT-:GUESTPORT forwards a host port to the guest). The host"
                    + " itself is closed to the guest unless hostloopback=on (QEMU's default: 10.0.2.2 is the host's"
                    + " 127.0.0.1, and the host's own addresses answer) or guestfwd=tcp:10.0.2.100:PORT-HOSTADDR:HOSTPORT"
                    + " opens one host service; link-local and cloud metadata addresses stay closed; restrict=on refuses"
                    + " every outgoing flow but guestfwd. Or a TAP interface (created if missing, added to bridge BR),"
                    + " or none. Also mac=52:54:00:..., transport=pci|mmio (default pci)."
                    + " Default: one user-mode NIC for Linux kernels, none for multiboot kernels.")
    java.util.List<Nets.NetOption> nets = new java.util.ArrayList<>();

    @Option(names = "--stats", description = "Print per-exit-reason counts and mean handling time when the guest ends.")
    boolean stats;

    @Option(names = {"-v", "--verbose"}, description = "Print the register dump when the guest crashes.")
    boolean verbose;

    @Option(names = "--no-reboot", description = "End the run when the guest reboots (QEMU's -no-reboot, Firecracker's"
            + " behaviour) instead of booting it again.")
    boolean noReboot;

    @Option(names = "--shutdown-timeout", paramLabel = "SECONDS", defaultValue = "90",
            description = "SIGTERM presses the guest's ACPI power button; a guest that has not powered off after SECONDS"
                    + " (default ${DEFAULT-VALUE}), or a second SIGTERM, is stopped hard.")
    int shutdownTimeout;

    @Option(names = "--log-level", paramLabel = "LEVEL",
            description = "How much jvmm says on stderr: error, warn (default), info, debug or trace; from debug on, Netty's too.")
    void logLevel(String level) {
        try {
            Logging.level(level);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    @Override
    public Integer call() throws Exception {
        return run(configure(), spec.commandLine().getErr());
    }

    MachineConfig configure() {
        if (shutdownTimeout < 0) throw new BootException(Kind.BAD_OPTION, "--shutdown-timeout must be 0 or more seconds, not " + shutdownTimeout);
        KernelLoader.BootPath path;
        try {
            path = KernelLoader.BootPath.valueOf(bootPath.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new BootException(Kind.BAD_OPTION, "--boot-path must be auto, decompressor, linux64 or pvh, not '" + bootPath + "'");
        }
        MachineConfig.Builder b = MachineConfig.builder(kernel).memory(memory).cpus(cpus).cpuFeatures(cpuFeatures)
                .bootPath(path).console(new FileOutputStream(FileDescriptor.out));
        if (initrd != null) b.initrd(initrd);
        if (cmdline != null) b.cmdline(cmdline);
        if (debugcon != null) b.debugcon(debugconStream(debugcon));
        if (debugExit != null) b.debugExit(debugExit);
        for (MachineConfig.DiskConfig d : disks) b.disk(d);
        boolean none = nets.stream().anyMatch(n -> n.nic().isEmpty());
        if (none && nets.size() > 1) throw new BootException(Kind.BAD_OPTION, "--net none cannot be combined with other --net options");
        if (none) b.noNetwork();
        for (Nets.NetOption n : nets) n.nic().ifPresent(b::nic);
        return b.build();
    }

    /** The library's config problem as this command's options say it. */
    static String optionMessage(MachineConfigException e) {
        return switch (e.problem()) {
            case TOO_FEW_VCPUS -> "--cpus must be at least " + e.limit() + ", not " + e.requested();
            case TOO_MANY_VCPUS -> "--cpus " + e.requested() + " is more than KVM allows on this host (" + e.limit() + ")";
            case MEMORY_TOO_SMALL -> "--memory must be at least " + (e.limit() >> 20) + "M";
            case MEMORY_NOT_PAGE_ALIGNED -> String.format("--memory must be a multiple of %dK, not %dK", e.limit() >> 10, e.requested() >> 10);
            case MEMORY_EXCEEDS_HOST -> String.format("--memory %dM is more than this host has (%dM)", e.requested() >> 20, e.limit() >> 20);
        };
    }

    private static OutputStream debugconStream(String spec) {
        if (spec.equals("stdio")) return new FileOutputStream(FileDescriptor.out);
        if (spec.startsWith("file:")) {
            Path p = Path.of(spec.substring(5));
            try {
                return Files.newOutputStream(p);
            } catch (IOException e) {
                throw new BootException(Kind.FILE_INACCESSIBLE, "--debugcon: cannot write " + p + ": " + e.getMessage());
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
            case ExitStatus.PowerOff p -> { }
            case ExitStatus.Reset r -> { }
            case ExitStatus.GuestExit g -> { }
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
        if (stats) err.print(machineStats.format());
        err.flush();
        return status.exitCode();
    }

}
