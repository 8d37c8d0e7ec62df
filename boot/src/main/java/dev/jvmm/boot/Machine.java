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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
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
            Serial16550 serial = new Serial16550(vm.interrupts().line(SERIAL_IRQ), config.console());
            vm.own(serial);
            vm.ioBus().register("serial", SERIAL_PORT, 8, serial);
            I8042 i8042 = new I8042(vm, vm.interrupts().line(1), vm.interrupts().line(12));
            vm.ioBus().register("i8042 data", 0x60, 1, i8042.dataPort());
            vm.ioBus().register("i8042 command", 0x64, 1, i8042.commandPort());
            CmosRtc rtc = new CmosRtc(
                    vm.interrupts().line(CmosRtc.IRQ),
                    Math.min(config.memoryBytes(), VirtualMachine.MMIO_HOLE_START),
                    Math.max(0, config.memoryBytes() - VirtualMachine.MMIO_HOLE_START),
                    cpus);
            vm.own(rtc);
            vm.ioBus().register("rtc", CmosRtc.INDEX_PORT, CmosRtc.PORT_COUNT, rtc);
            vm.ioBus().register("post code", 0x80, 1, new PostCodePort());
            AcpiPm acpiPm = new AcpiPm(vm, vm.interrupts().line(Acpi.SCI_IRQ));
            vm.ioBus().register("acpi pm", Acpi.PM_PORT, AcpiPm.LENGTH, acpiPm);
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
            List<VirtioNet> nics = VirtioNets.attach(
                    vm,
                    slots,
                    config.nics()
                            .orElseGet(() -> kernelImage.format() == KernelLoader.Format.MULTIBOOT
                                    ? List.of()
                                    : List.of(MachineConfig.NicConfig.DEFAULT)));
            Optional<VirtioVsock> vsock = config.vsock().map(v -> attachVsock(vm, slots, v));
            VirtioSlots.Attached virtio = slots.attached();
            String cmdline = virtio.appendTo(config.cmdline().orElse(MachineConfig.DEFAULT_LINUX_CMDLINE));
            LoadedKernel kernel = placement.load(vm.memory(), kernelImage, cmdline);
            Acpi.write(
                    vm.memory(),
                    cpus,
                    virtio.pciIrqs(),
                    new Acpi.PciWindow(VirtioSlots.PCI_MMIO_BASE, VirtioSlots.PCI_MMIO_SIZE));
            // The MP table for guests without ACPI (multiboot kernels, acpi=off), while it fits its KiB.
            if (MpTable.fits(cpus, virtio.pciIrqs())) MpTable.write(vm.memory(), cpus, virtio.pciIrqs());
            for (Vcpu cpu : vm.vcpus()) {
                VcpuSetup.msrs(cpu);
                VcpuSetup.lapic(cpu);
            }
            vm.setEntry(0, kernel.entry());
            return new Machine(config, vm, serial, debugcon, kernel, cmdline, nics, blocks, vsock, acpiPm);
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

    public LoadedKernel kernel() {
        return kernel;
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
