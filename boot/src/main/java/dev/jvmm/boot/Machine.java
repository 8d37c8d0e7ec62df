package dev.jvmm.boot;

import dev.jvmm.boot.acpi.Acpi;
import dev.jvmm.boot.loader.KernelLoader;
import dev.jvmm.boot.loader.LoadedKernel;
import dev.jvmm.boot.x86.CpuFeatures;
import dev.jvmm.boot.x86.MpTable;
import dev.jvmm.boot.x86.VcpuSetup;
import dev.jvmm.core.ExitStats;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.Kvm;
import dev.jvmm.core.Vcpu;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.SnapshotFile;
import dev.jvmm.devices.acpi.AcpiPm;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.legacy.CmosRtc;
import dev.jvmm.devices.legacy.DebugCon;
import dev.jvmm.devices.legacy.DebugExit;
import dev.jvmm.devices.legacy.I8042;
import dev.jvmm.devices.legacy.PostCodePort;
import dev.jvmm.devices.legacy.Serial16550;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import dev.jvmm.devices.virtio.net.VirtioNet;
import dev.jvmm.devices.virtio.vsock.VirtioVsock;
import dev.jvmm.devices.vsock.UnixSocketBackend;
import dev.jvmm.devices.vsock.VsockBackendException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A PC built from a {@link MachineConfig}: the one place that assembles a machine (memory, vCPUs, platform
 * devices, disks, NICs, the kernel and boot tables). Embedding programs use it directly:
 * <pre>{@code
 * try (Machine m = Machine.create(MachineConfig.builder(kernel).console(System.out).build())) {
 *     m.start();
 *     ExitStatus s = m.awaitExit(Duration.ofMinutes(1)).orElseThrow();
 * }
 * }</pre>
 */
public final class Machine implements AutoCloseable {
    public static final int SERIAL_PORT = 0x3f8, SERIAL_IRQ = 4;
    public static final int DEBUGCON_PORT = 0xe9;
    /** The least memory a machine is built with: the kernel, its tables and the boot allocations need room. */
    public static final long MIN_MEMORY_BYTES = 16L << 20;
    /** Guest memory is made of whole pages of this size. */
    public static final long PAGE_BYTES = 4096;

    private final MachineConfig config;
    private final VirtualMachine vm;
    private final Serial16550 serial;
    private final Optional<DebugCon> debugcon;
    private final LoadedKernel kernel;
    private final String cmdline;
    private final List<VirtioNet> nics;
    private final List<VirtioBlock> disks;
    private final Optional<VirtioVsock> vsock;
    private final AcpiPm acpiPm;

    private Machine(
            MachineConfig config,
            VirtualMachine vm,
            Serial16550 serial,
            Optional<DebugCon> debugcon,
            LoadedKernel kernel,
            String cmdline,
            List<VirtioNet> nics,
            List<VirtioBlock> disks,
            Optional<VirtioVsock> vsock,
            AcpiPm acpiPm) {
        this.config = config;
        this.vm = vm;
        this.serial = serial;
        this.debugcon = debugcon;
        this.kernel = kernel;
        this.cmdline = cmdline;
        this.nics = nics;
        this.disks = disks;
        this.vsock = vsock;
        this.acpiPm = acpiPm;
    }

    /**
     * Builds the machine: checks the config, reads the kernel and opens the disks (so that a wrong file is reported
     * before anything about the host's KVM), creates the VM, attaches devices and loads the kernel. A config this
     * host cannot run throws {@link MachineConfigException}.
     */
    public static Machine create(MachineConfig config) {
        return create(config, KernelLoader::load);
    }

    /** Places the kernel in the new machine's memory: {@link KernelLoader#load}, or a failing stand-in in tests. */
    interface KernelPlacement {
        LoadedKernel load(GuestMemory memory, KernelLoader.KernelImage image, String cmdline);
    }

    /**
     * As {@link #create(MachineConfig)}. Whatever goes wrong, an Error included (an OutOfMemoryError while a kernel
     * decompresses), closes what was opened so far before it propagates: a machine that failed to build holds no
     * fd, mapping or thread.
     */
    static Machine create(MachineConfig config, KernelPlacement placement) {
        checkSizes(config, hostMemoryBytes());
        List<CpuFeatures.Edit> edits = CpuFeatures.parse(config.cpuFeatures());
        KernelLoader.KernelImage kernelImage = KernelLoader.read(config.kernel(), config.initrd(), config.bootPath());
        // The default network resolved, and each NIC's MAC chosen, now: a snapshot records them as they are.
        MachineConfig resolved = withNics(
                config,
                VirtioNets.withMacs(config.nics()
                        .orElseGet(() -> kernelImage.format() == KernelLoader.Format.MULTIBOOT
                                ? List.of()
                                : List.of(MachineConfig.NicConfig.DEFAULT))));
        List<BlockBackend> disks = VirtioDisks.open(config.disks());
        int cpus = config.cpus();
        VirtualMachine vm;
        try {
            Kvm kvm = Kvm.open(); // once: asked about its limits, then the VM's
            try {
                checkVcpuLimit(config, kvm.maxVcpus());
            } catch (Throwable e) {
                kvm.close();
                throw e;
            }
            vm = VirtualMachine.builder()
                    .kvm(kvm) // owned by the VM from here, also when building it fails
                    .memory(config.memoryBytes())
                    .cpus(cpus)
                    .cpuid((id, entries) -> VcpuSetup.topology(CpuFeatures.apply(entries, edits), id, cpus))
                    .build();
        } catch (Throwable e) {
            VirtioDisks.closeAll(disks);
            throw e;
        }
        disks.forEach(vm::own); // owned first, so closed last: after the transports that use them
        try {
            Devices d = attachDevices(vm, resolved, disks);
            String cmdline = d.virtio.appendTo(config.cmdline().orElse(MachineConfig.DEFAULT_LINUX_CMDLINE));
            LoadedKernel kernel = placement.load(vm.memory(), kernelImage, cmdline);
            Acpi.write(
                    vm.memory(),
                    cpus,
                    d.virtio.pciIrqs(),
                    new Acpi.PciWindow(VirtioSlots.PCI_MMIO_BASE, VirtioSlots.PCI_MMIO_SIZE));
            // The MP table for guests without ACPI (multiboot kernels, acpi=off), while it fits its KiB.
            if (MpTable.fits(cpus, d.virtio.pciIrqs())) MpTable.write(vm.memory(), cpus, d.virtio.pciIrqs());
            for (Vcpu cpu : vm.vcpus()) {
                VcpuSetup.msrs(cpu);
                VcpuSetup.lapic(cpu);
            }
            vm.setEntry(0, kernel.entry());
            describe(vm, resolved, cmdline);
            return new Machine(
                    resolved, vm, d.serial, d.debugcon, kernel, cmdline, d.nics, d.blocks, d.vsock, d.acpiPm);
        } catch (Throwable e) {
            try {
                vm.close();
            } catch (Throwable closing) {
                e.addSuppressed(closing);
            }
            throw e;
        }
    }

    private static MachineConfig withNics(MachineConfig c, List<MachineConfig.NicConfig> nics) {
        return new MachineConfig(
                c.kernel(),
                c.initrd(),
                c.cmdline(),
                c.memoryBytes(),
                c.cpus(),
                c.cpuFeatures(),
                c.bootPath(),
                c.console(),
                c.debugcon(),
                c.debugExitPort(),
                c.disks(),
                Optional.of(nics),
                c.vsock());
    }

    /** The devices of a PC, attached in one order for a new machine and a restored one. */
    private record Devices(
            Serial16550 serial,
            Optional<DebugCon> debugcon,
            AcpiPm acpiPm,
            VirtioSlots.Attached virtio,
            List<VirtioBlock> blocks,
            List<VirtioNet> nics,
            Optional<VirtioVsock> vsock) {}

    /**
     * Attaches the platform devices, disks and NICs, each registered for snapshots as it is attached: on a
     * restored VM that loads its saved state there and then, so a device finds those it depends on restored.
     */
    private static Devices attachDevices(VirtualMachine vm, MachineConfig config, List<BlockBackend> disks) {
        int cpus = config.cpus();
        Serial16550 serial = new Serial16550(vm.interrupts().line(SERIAL_IRQ), config.console());
        vm.own(serial);
        vm.ioBus().register("serial", SERIAL_PORT, 8, serial);
        vm.snapshottable(serial);
        I8042 i8042 = new I8042(vm, vm.interrupts().line(1), vm.interrupts().line(12));
        vm.ioBus().register("i8042 data", 0x60, 1, i8042.dataPort());
        vm.ioBus().register("i8042 command", 0x64, 1, i8042.commandPort());
        vm.snapshottable(i8042);
        CmosRtc rtc = new CmosRtc(
                vm.interrupts().line(CmosRtc.IRQ),
                Math.min(config.memoryBytes(), VirtualMachine.MMIO_HOLE_START),
                Math.max(0, config.memoryBytes() - VirtualMachine.MMIO_HOLE_START),
                cpus);
        vm.own(rtc);
        vm.ioBus().register("rtc", CmosRtc.INDEX_PORT, CmosRtc.PORT_COUNT, rtc);
        vm.snapshottable(rtc);
        vm.ioBus().register("post code", 0x80, 1, new PostCodePort());
        AcpiPm acpiPm = new AcpiPm(vm, vm.interrupts().line(Acpi.SCI_IRQ));
        vm.ioBus().register("acpi pm", Acpi.PM_PORT, AcpiPm.LENGTH, acpiPm);
        vm.snapshottable(acpiPm);
        // debugcon and isa-debug-exit hold no state.
        Optional<DebugCon> debugcon = config.debugcon().map(DebugCon::new);
        debugcon.ifPresent(d -> {
            vm.own(d);
            vm.ioBus().register("debugcon", DEBUGCON_PORT, 1, d);
        });
        if (config.debugExitPort().isPresent()) {
            DebugExit exit = new DebugExit(vm, config.debugExitPort().getAsInt(), 4);
            vm.ioBus().register("isa-debug-exit", exit.iobase(), exit.iosize(), exit);
        }
        VirtioSlots slots = new VirtioSlots(vm);
        List<VirtioBlock> blocks = VirtioDisks.attach(slots, config.disks(), disks);
        List<VirtioNet> nics = VirtioNets.attach(vm, slots, config.nics().orElse(List.of()));
        Optional<VirtioVsock> vsock = config.vsock().map(v -> attachVsock(vm, slots, v));
        return new Devices(serial, debugcon, acpiPm, slots.attached(), blocks, nics, vsock);
    }

    /**
     * Records the machine's description in the VM's snapshots, taken when a snapshot is (the devices quiesced
     * and the disks flushed), so that each disk's identity is the image as the snapshot leaves it.
     */
    private static void describe(VirtualMachine vm, MachineConfig config, String cmdline) {
        vm.describeMachine(() -> {
            List<MachineDescription.DiskIdentity> ids = new java.util.ArrayList<>();
            for (MachineConfig.DiskConfig d : config.disks()) {
                try {
                    ids.add(MachineDescription.DiskIdentity.of(d.path()));
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException("disk " + d.path() + ": " + e.getMessage(), e);
                }
            }
            return new MachineDescription(config, config.debugcon().isPresent(), cmdline, ids).toState();
        });
    }

    /**
     * Recreates the machine a {@link #snapshot} saved, in this process: the same memory layout, vCPUs, devices at
     * the same ports, addresses, PCI slots and IRQs, each device's state loaded; RAM is mapped copy-on-write from the
     * file and the kernel is not loaded again. Each disk is checked to be the image the snapshot was taken with
     * (see {@link RestoreOptions}) before it is opened. {@link #start()} resumes the guest where it was.
     *
     * @throws SnapshotException for a file that is not a jvmm machine's snapshot, a host that cannot run it, or disks
     *     that are not the saved ones; BootException for a disk or network backend that cannot be opened
     */
    public static Machine restore(Path file, RestoreOptions options) throws IOException {
        SnapshotFile snapshot = SnapshotFile.read(file);
        MachineDescription desc = MachineDescription.from(snapshot.state()
                .machine()
                .orElseThrow(() -> new SnapshotException(
                        SnapshotException.Kind.MACHINE_MISMATCH,
                        file + " is a bare VM's snapshot without a machine description;"
                                + " restore it with VirtualMachine.restore")));
        MachineConfig saved = desc.config();
        List<MachineConfig.DiskConfig> disks = new java.util.ArrayList<>();
        for (int i = 0; i < saved.disks().size(); i++) {
            MachineConfig.DiskConfig d = saved.disks().get(i);
            String name = VirtioDisks.name(i);
            Path path = options.diskPaths().getOrDefault(name, d.path());
            boolean moved = options.diskPaths().containsKey(name);
            MachineDescription.DiskIdentity now;
            try {
                now = MachineDescription.DiskIdentity.of(path);
            } catch (java.nio.file.NoSuchFileException e) {
                throw new SnapshotException(
                        SnapshotException.Kind.MACHINE_MISMATCH,
                        "disk " + name + " " + path + " does not exist; give its new path if it moved");
            }
            if (!options.trustDisks()) {
                Optional<String> why = desc.disks().get(i).mismatch(now, moved);
                if (why.isPresent())
                    throw new SnapshotException(
                            SnapshotException.Kind.MACHINE_MISMATCH,
                            "disk " + name + " " + path + " " + why.get() + ": the guest's view of its disk would not"
                                    + " match the image; restore with the image as it was at the snapshot"
                                    + " (or, knowing the risk, trust the disks as they are)");
            }
            disks.add(new MachineConfig.DiskConfig(
                    path, d.readOnly(), d.serial(), d.transport(), d.format(), d.backingFiles(), d.rateLimit()));
        }
        MachineConfig config = new MachineConfig(
                saved.kernel(),
                saved.initrd(),
                saved.cmdline(),
                saved.memoryBytes(),
                saved.cpus(),
                saved.cpuFeatures(),
                saved.bootPath(),
                options.console(),
                desc.debugcon()
                        ? Optional.of(options.debugcon().orElse(OutputStream.nullOutputStream()))
                        : Optional.empty(),
                saved.debugExitPort(),
                disks,
                saved.nics(),
                saved.vsock());
        checkSizes(config, hostMemoryBytes());
        List<BlockBackend> backends = VirtioDisks.open(config.disks());
        VirtualMachine vm;
        try {
            vm = VirtualMachine.restore(snapshot);
        } catch (Throwable e) {
            VirtioDisks.closeAll(backends);
            throw e;
        }
        backends.forEach(vm::own);
        try {
            Devices d = attachDevices(vm, config, backends);
            describe(vm, config, desc.cmdline());
            return new Machine(
                    config, vm, d.serial, d.debugcon, null, desc.cmdline(), d.nics, d.blocks, d.vsock, d.acpiPm);
        } catch (Throwable e) {
            try {
                vm.close();
            } catch (Throwable closing) {
                e.addSuppressed(closing);
            }
            throw e;
        }
    }

    /**
     * How {@link #restore} treats what lies outside the snapshot file: where the console goes, disks that moved
     * ({@code diskPaths}: "vda" to its new path; compared by format and size, not by file identity), and
     * {@code trustDisks}: open the disks without checking that they are the images the guest had (a disk changed
     * since is then the guest's file system's problem, as when Firecracker loads a snapshot).
     */
    public record RestoreOptions(
            OutputStream console, Optional<OutputStream> debugcon, Map<String, Path> diskPaths, boolean trustDisks) {
        public static final RestoreOptions DEFAULT =
                new RestoreOptions(OutputStream.nullOutputStream(), Optional.empty(), Map.of(), false);

        public RestoreOptions {
            diskPaths = Map.copyOf(diskPaths);
        }

        public RestoreOptions withConsole(OutputStream out) {
            return new RestoreOptions(out, debugcon, diskPaths, trustDisks);
        }

        public RestoreOptions withDebugcon(OutputStream out) {
            return new RestoreOptions(console, Optional.of(out), diskPaths, trustDisks);
        }

        public RestoreOptions withDiskPath(String disk, Path path) {
            Map<String, Path> m = new java.util.LinkedHashMap<>(diskPaths);
            m.put(disk, path);
            return new RestoreOptions(console, debugcon, m, trustDisks);
        }

        public RestoreOptions withTrustDisks(boolean trust) {
            return new RestoreOptions(console, debugcon, diskPaths, trust);
        }
    }

    /**
     * Saves the machine to {@code file} (one file: state and RAM, see SnapshotFile): pauses it if it runs (giving
     * up after 10 s with the machine running on, as the API's pause does), quiesces the devices and flushes the
     * disks, writes the file atomically, then resumes the guest if {@code resume} and it was running; otherwise
     * it stays paused, to be stopped (virsh save) or resumed later.
     */
    public void snapshot(Path file, boolean resume) throws IOException {
        boolean wasRunning = !vm.paused();
        if (wasRunning && !vm.pause(Duration.ofSeconds(10)))
            throw new IllegalStateException("the vCPUs did not pause within 10 s (one is busy in a device);"
                    + " the machine runs on and nothing was saved");
        try {
            vm.snapshot(file);
        } finally {
            if (wasRunning && resume) vm.resume();
        }
    }

    /**
     * Listens on the vsock device's Unix socket and attaches the device. The VM owns the socket's backend from before
     * the transport, so it closes after it (the socket file is removed then).
     */
    private static VirtioVsock attachVsock(VirtualMachine vm, VirtioSlots slots, MachineConfig.VsockConfig v) {
        UnixSocketBackend backend;
        try {
            backend = UnixSocketBackend.open(v.udsPath());
        } catch (VsockBackendException e) {
            throw new BootException(BootException.Kind.VSOCK_UNAVAILABLE, "--vsock: " + e.getMessage(), e);
        }
        vm.own(backend);
        VirtioVsock device = new VirtioVsock(backend, VirtioVsock.Options.of(v.guestCid()));
        slots.attach("vsock", device, v.transport(), "--vsock");
        return device;
    }

    /** The config against what any machine needs and what this host has ({@code hostMemoryBytes} -1: unknown). */
    static void checkSizes(MachineConfig c, long hostMemoryBytes) {
        if (c.cpus() < 1) throw new MachineConfigException(MachineConfigException.Problem.TOO_FEW_VCPUS, c.cpus(), 1);
        if (c.memoryBytes() < MIN_MEMORY_BYTES)
            throw new MachineConfigException(
                    MachineConfigException.Problem.MEMORY_TOO_SMALL, c.memoryBytes(), MIN_MEMORY_BYTES);
        if (c.memoryBytes() % PAGE_BYTES != 0)
            throw new MachineConfigException(
                    MachineConfigException.Problem.MEMORY_NOT_PAGE_ALIGNED, c.memoryBytes(), PAGE_BYTES);
        if (hostMemoryBytes > 0 && c.memoryBytes() > hostMemoryBytes)
            throw new MachineConfigException(
                    MachineConfigException.Problem.MEMORY_EXCEEDS_HOST, c.memoryBytes(), hostMemoryBytes);
    }

    /**
     * The vCPU count against KVM's limit (ACPI's MADT describes any count; the MP table is written only while it fits).
     */
    static void checkVcpuLimit(MachineConfig c, int kvmMaxVcpus) {
        if (kvmMaxVcpus > 0 && c.cpus() > kvmMaxVcpus)
            throw new MachineConfigException(MachineConfigException.Problem.TOO_MANY_VCPUS, c.cpus(), kvmMaxVcpus);
    }

    /** MemTotal from /proc/meminfo, or -1 if unknown. */
    static long hostMemoryBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo")))
                if (line.startsWith("MemTotal:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        } catch (IOException | NumberFormatException e) {
            // unknown: do not refuse
        }
        return -1;
    }

    public void start() {
        vm.start();
    }

    /** Starts the machine paused: nothing of the guest runs before {@link #resume()}. */
    public void startPaused() {
        vm.startPaused();
    }

    public Optional<ExitStatus> awaitExit(Duration timeout) throws InterruptedException {
        Optional<ExitStatus> s = vm.awaitExit(timeout);
        if (s.isPresent()) flushOutput();
        return s;
    }

    public void stop() {
        vm.stop();
        flushOutput();
    }

    /** Everything the guest printed so far reaches its streams. */
    public void flushOutput() {
        serial.flush();
        debugcon.ifPresent(DebugCon::flush);
    }

    /**
     * Presses the ACPI power button, as virsh shutdown and Firecracker's SendCtrlAltDel ask a guest to stop:
     * an OS that handles it (systemd-logind, acpid) shuts down cleanly and the run ends with
     * {@link ExitStatus.PowerOff}; one that does not (a bare busybox init) keeps running.
     */
    public void pressPowerButton() {
        acpiPm.pressPowerButton();
    }

    public void pause() {
        vm.pause();
    }

    /**
     * Pauses, but gives up after {@code timeout} and leaves the machine running: false then
     * (see {@link VirtualMachine#pause(Duration)}).
     */
    public boolean pause(Duration timeout) {
        return vm.pause(timeout);
    }

    public void resume() {
        vm.resume();
    }

    /**
     * Host input for the guest's serial console. Waits while the UART's backlog is full (the guest reads
     * slower than the host types or pastes), so nothing is dropped; returns early only when the run ended.
     */
    public void consoleInput(byte[] data) throws InterruptedException {
        int off = 0;
        while (off < data.length) {
            off += serial.receive(data, off, data.length - off);
            if (off < data.length && vm.exitStatus().isEmpty()) serial.awaitInputRoom(1, 100);
            else if (off < data.length) return;
        }
    }

    /** The devices (vda, net0, ...) that broke during the run and wait for the guest to reset them; empty if none. */
    public List<String> brokenDevices() {
        return vm.brokenDevices();
    }

    public ExitStats stats() {
        return vm.stats();
    }

    public VirtualMachine vm() {
        return vm;
    }

    /** The kernel as loaded; empty for a restored machine, whose kernel is already in its memory. */
    public Optional<LoadedKernel> kernel() {
        return Optional.ofNullable(kernel);
    }

    /** The command line the kernel was given (with any device fragments jvmm appended). */
    public String cmdline() {
        return cmdline;
    }

    public MachineConfig config() {
        return config;
    }

    /** The vsock device, if configured: its counters, and {@link VirtioVsock#transportReset()}. */
    public Optional<VirtioVsock> vsock() {
        return vsock;
    }

    /** The NICs, in the order configured (for statistics and link control). */
    public List<VirtioNet> nics() {
        return nics;
    }

    /** The disks, in the order configured (vda, vdb, ...), for statistics. */
    public List<VirtioBlock> disks() {
        return disks;
    }

    @Override
    public void close() {
        try {
            flushOutput();
        } finally {
            vm.close(); // closes the devices it owns: their output threads end
        }
    }
}
