package dev.jvmm.core;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.event.IoEventRegistry;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.core.snapshot.DeviceState;
import dev.jvmm.core.snapshot.HostCapabilities;
import dev.jvmm.core.snapshot.MachineState;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.SnapshotFile;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.core.snapshot.VcpuState;
import dev.jvmm.core.snapshot.VmState;
import dev.jvmm.core.x86.EntryState;
import dev.jvmm.core.x86.X86Cpu;
import dev.jvmm.kvm.gen.KvmHeaders;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiFunction;

/**
 * A running (or ready to run) virtual machine: KVM VM, guest memory, vCPUs with one platform thread each
 * (named vcpu-N), the port I/O and MMIO buses their exits are dispatched to, and the lifecycle
 * (start, pause, resume, stop, awaitExit). Closing it frees every fd, mapping and thread.
 *
 * <p>Devices are attached between {@link Builder#build()} and {@link #start()} by registering on
 * {@link #ioBus()} and {@link #mmioBus()}; the machine builder in the boot module does that for a PC.
 */
public final class VirtualMachine implements AutoCloseable, VmControl {
    /** Guest RAM above this address is placed above 4 GiB, leaving a hole for MMIO (PCI, IOAPIC, LAPIC). */
    public static final long MMIO_HOLE_START = 0xC000_0000L;

    public static final long FOUR_GIB = 1L << 32;
    /** KVM's TSS and identity-map pages, in the MMIO hole where no RAM is (QEMU's choice too). */
    static final long TSS_ADDR = 0xfffb_d000L;

    static final long IDENTITY_MAP_ADDR = 0xfffb_c000L;

    private final Kvm kvm;
    private final Vm vm;
    private final GuestMemory memory;
    private final List<Vcpu> vcpus;
    /** Each vCPU's CPUID as set (KVM_GET_CPUID2 may answer otherwise: see {@link VcpuState#capture}). */
    private final List<List<CpuidEntry>> cpuids;

    private final Bus ioBus = new Bus("port I/O");
    private final Bus mmioBus = new Bus("MMIO");
    private final KvmInterrupts interrupts;
    private final KvmIoEvents ioEvents;
    private final ExitStats stats = new ExitStats();
    private final List<VcpuRunner> runners = new ArrayList<>();
    private final AtomicReference<ExitStatus> exitStatus = new AtomicReference<>();
    private final CountDownLatch exited = new CountDownLatch(1);
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final boolean[] entrySet;
    private final java.util.concurrent.CopyOnWriteArrayList<String> brokenDevices =
            new java.util.concurrent.CopyOnWriteArrayList<>();
    private final boolean irqchip;
    private final boolean pit;
    private final boolean restored;
    private final Object snapshotLock = new Object();
    /** What {@link #snapshot} saves besides KVM's state and RAM, in registration order. */
    private final List<Snapshottable> snapshottables = new ArrayList<>();
    /** A restored VM's saved device states that no registered device has taken yet, by id. */
    private final Map<String, DeviceState> unclaimedDevices = new LinkedHashMap<>();
    /** What a machine builder records about the machine around this VM, saved with it (see MachineState). */
    private volatile java.util.function.Supplier<DeviceState> machineDescription = () -> null;
    /** A restored VM's description, as the snapshot had it. */
    private volatile DeviceState restoredDescription;

    private volatile boolean started;
    private volatile boolean paused;
    private volatile boolean closed;

    private VirtualMachine(Builder b) {
        Kvm k = null;
        Vm v = null;
        GuestMemory m = null;
        List<Vcpu> cpus = new ArrayList<>();
        List<List<CpuidEntry>> cpuidSet = new ArrayList<>();
        KvmInterrupts irq = null;
        try {
            k = b.kvm != null ? b.kvm : Kvm.open();
            int maxVcpus = k.maxVcpus();
            if (b.cpus > maxVcpus)
                throw new IllegalArgumentException(b.cpus + " vCPUs requested, but KVM allows at most " + maxVcpus);
            v = k.createVm();
            v.setTssAddr(TSS_ADDR);
            v.setIdentityMapAddr(IDENTITY_MAP_ADDR);
            if (b.irqchip) {
                v.createIrqchip();
                if (b.pit) v.createPit2(KvmHeaders.KVM_PIT_SPEAKER_DUMMY());
            }
            HostCapabilities host = null;
            if (b.restoring != null) {
                host = HostCapabilities.probe(k, v);
                b.restoring.state().checkHost(host); // refuse before mapping RAM or making vCPUs
                m = b.restoring.mapMemory();
            } else {
                m = GuestMemory.allocate(b.layouts(), b.memoryOptions);
            }
            int slot = 0;
            for (MemoryRegion r : m.regions()) v.setUserMemoryRegion(slot++, 0, r.guestBase(), r.host());
            List<CpuidEntry> supported = Cpuids.withKvmIdentity(k.supportedCpuid());
            for (int id = 0; id < b.cpus; id++) {
                Vcpu cpu = v.createVcpu(id);
                cpus.add(cpu);
                if (b.restoring == null) {
                    List<CpuidEntry> c = List.copyOf(b.cpuid.apply(id, Cpuids.withApicId(supported, id, b.cpus)));
                    cpu.setCpuid(c);
                    cpuidSet.add(c);
                } else {
                    cpuidSet.add(b.restoring.state().vcpus().get(id).cpuid());
                }
            }
            if (b.restoring != null) {
                MachineState state = b.restoring.state();
                state.vm().restore(v, host);
                for (int id = 0; id < b.cpus; id++) state.vcpus().get(id).restore(cpus.get(id), host);
            }
            irq = b.irqchip ? new KvmInterrupts(v) : null;
        } catch (Throwable e) { // an Error too (from the cpuid callback, say): nothing opened here may leak
            for (Vcpu c : cpus) c.close();
            if (m != null) m.close();
            if (v != null) v.close();
            if (k != null) k.close();
            throw e;
        }
        this.kvm = k;
        this.vm = v;
        this.memory = m;
        this.vcpus = List.copyOf(cpus);
        this.cpuids = List.copyOf(cpuidSet);
        this.interrupts = irq;
        this.ioEvents = new KvmIoEvents(v);
        this.entrySet = new boolean[cpus.size()];
        this.irqchip = b.irqchip;
        this.pit = b.irqchip && b.pit;
        this.restored = b.restoring != null;
        if (b.restoring != null) {
            java.util.Arrays.fill(entrySet, true);
            for (DeviceState d : b.restoring.state().devices()) unclaimedDevices.put(d.id(), d);
            restoredDescription = b.restoring.state().machine().orElse(null);
        }
    }

    /**
     * A VM recreated from a snapshot: the same vCPUs, RAM layout, irqchip and PIT, RAM mapped copy-on-write from the
     * file, KVM's VM and vCPU state loaded. Devices are attached as for a new VM and each registered with
     * {@link #snapshottable}, which loads its saved state; then {@link #start()} resumes the guest where it was.
     * Refuses (SnapshotException, HOST_INCOMPATIBLE) where this host's KVM cannot take the saved state.
     */
    public static VirtualMachine restore(SnapshotFile snapshot) {
        return restore(snapshot, null);
    }

    /** {@link #restore(SnapshotFile)} on a /dev/kvm the caller opened (the VM owns it from here on). */
    public static VirtualMachine restore(SnapshotFile snapshot, Kvm kvm) {
        MachineState s = snapshot.state();
        Builder b = new Builder();
        b.restoring = snapshot;
        b.kvm = kvm;
        b.cpus = s.vcpus().size();
        b.irqchip = s.vm().hasIrqchip();
        b.pit = s.vm().pit().isPresent();
        if (b.pit && !b.irqchip)
            throw new SnapshotException(SnapshotException.Kind.CORRUPT, "the snapshot has a PIT but no irqchip");
        List<GuestMemory.Layout> layouts = new ArrayList<>();
        for (SnapshotFile.MemoryImage m : snapshot.memory())
            layouts.add(new GuestMemory.Layout(m.guestBase(), m.size()));
        b.layouts = layouts;
        return b.build();
    }

    /** Whether this VM was made by {@link #restore}: it resumes from saved state and takes no entry state. */
    public boolean restored() {
        return restored;
    }

    public static Builder builder() {
        return new Builder();
    }

    public Kvm kvm() {
        return kvm;
    }

    public Vm vm() {
        return vm;
    }

    public GuestMemory memory() {
        return memory;
    }

    public List<Vcpu> vcpus() {
        return vcpus;
    }

    public Bus ioBus() {
        return ioBus;
    }

    public Bus mmioBus() {
        return mmioBus;
    }

    /** The in-kernel irqchip's lines and MSI routes; absent when built without an irqchip. */
    public InterruptController interrupts() {
        if (interrupts == null) throw new IllegalStateException("this VM was built without an in-kernel irqchip");
        return interrupts;
    }

    public IoEventRegistry ioEvents() {
        return ioEvents;
    }

    public ExitStats stats() {
        return stats;
    }

    /**
     * A device failed in a way the guest did not cause (a bug, an OutOfMemoryError on its I/O thread) and serves
     * nothing until the guest resets it. The device logs the failure; the VM keeps its name for whoever runs it.
     */
    public void deviceBroken(String name) {
        brokenDevices.addIfAbsent(name);
    }

    /** The devices that broke during this run ({@link #deviceBroken}), in the order they did; empty if none. */
    public List<String> brokenDevices() {
        return List.copyOf(brokenDevices);
    }

    /** Closes this resource with the VM (device threads, backends, eventfds). */
    public synchronized void own(AutoCloseable resource) {
        resources.add(resource);
    }

    /**
     * Sets where a vCPU starts. vCPU 0 must be given an entry; an AP without one waits for INIT/SIPI from the
     * guest, as on real hardware.
     */
    public void setEntry(int vcpu, EntryState entry) {
        if (started) throw new IllegalStateException("the VM is already running");
        if (restored) throw new IllegalStateException("a restored VM resumes from its saved state, not an entry");
        X86Cpu.apply(vcpus.get(vcpu), memory, entry);
        if (vcpu != 0) vcpus.get(vcpu).setMpState(KvmHeaders.KVM_MP_STATE_RUNNABLE());
        entrySet[vcpu] = true;
    }

    /** Starts one thread per vCPU. */
    public synchronized void start() {
        start(false);
    }

    /**
     * Starts the vCPU threads held paused: not one guest instruction runs before {@link #resume()} (a restored VM
     * loaded to be resumed later, as Firecracker's snapshot load without resume_vm).
     */
    public synchronized void startPaused() {
        start(true);
    }

    private void start(boolean held) {
        if (closed) throw new IllegalStateException("the VM is closed");
        if (started) throw new IllegalStateException("the VM was already started");
        if (!entrySet[0]) throw new IllegalStateException("vCPU 0 has no entry state: call setEntry(0, ...) first");
        synchronized (unclaimedDevices) {
            if (!unclaimedDevices.isEmpty())
                throw new SnapshotException(
                        SnapshotException.Kind.MACHINE_MISMATCH,
                        "the snapshot has state for " + unclaimedDevices.keySet()
                                + ", which this machine has no device to take (register it with snapshottable())");
        }
        started = true;
        VcpuRunner.installKickSignal();
        for (Vcpu cpu : vcpus) {
            VcpuRunner r = new VcpuRunner(this, cpu);
            runners.add(r);
        }
        if (held) for (VcpuRunner r : runners) r.requestPause(true);
        for (VcpuRunner r : runners) r.start();
        for (VcpuRunner r : runners) r.awaitStarted();
        if (held) {
            for (VcpuRunner r : runners) r.awaitPaused(Long.MAX_VALUE);
            paused = true;
        }
    }

    /** Takes every vCPU out of KVM_RUN and holds it; returns when all are held (or the VM ended). */
    public void pause() {
        for (VcpuRunner r : runners) r.requestPause(true);
        for (VcpuRunner r : runners) r.awaitPaused(Long.MAX_VALUE);
        paused = true;
    }

    /**
     * Like {@link #pause()}, but gives up after {@code timeout}: a vCPU can be held only between exits, and one that
     * is inside a device's handler (a device waiting on its backend) may not come back soon. On timeout the pause
     * is withdrawn, so the VM runs on as before, and the result is false; a control plane says so to its caller
     * instead of hanging on a vCPU.
     */
    public boolean pause(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        for (VcpuRunner r : runners) r.requestPause(true);
        for (VcpuRunner r : runners) {
            if (!r.awaitPaused(deadline)) {
                resume();
                return false;
            }
        }
        paused = true;
        return true;
    }

    public void resume() {
        synchronized (snapshotLock) { // not in the middle of a snapshot
            paused = false;
            for (VcpuRunner r : runners) r.requestPause(false);
        }
    }

    /**
     * Saves {@code device}'s state in this VM's snapshots. On a {@link #restore restored} VM it also loads the
     * device's saved state now, and refuses (MACHINE_MISMATCH) a device the snapshot has no state for. Call it
     * before {@link #start()}, once per device, in any order.
     */
    public void snapshottable(Snapshottable device) {
        if (started) throw new IllegalStateException("register devices for snapshots before start()");
        synchronized (unclaimedDevices) {
            for (Snapshottable s : snapshottables)
                if (s.snapshotId().equals(device.snapshotId()))
                    throw new IllegalArgumentException(
                            "a device named " + device.snapshotId() + " is already registered");
            if (restored) {
                DeviceState saved = unclaimedDevices.remove(device.snapshotId());
                if (saved == null)
                    throw new SnapshotException(
                            SnapshotException.Kind.MACHINE_MISMATCH,
                            "the snapshot has no state for device " + device.snapshotId());
                saved.restoreInto(device);
            }
            snapshottables.add(device);
        }
    }

    /**
     * How a machine builder describes the machine around this VM (its config) in every snapshot: asked once per
     * snapshot, after the devices are quiesced, so it can describe what they leave behind (a disk's identity once
     * it is flushed).
     */
    public void describeMachine(java.util.function.Supplier<DeviceState> description) {
        this.machineDescription = java.util.Objects.requireNonNull(description);
    }

    /** A restored VM's machine description, as its snapshot had it; empty for a new VM or a bare snapshot. */
    public Optional<DeviceState> restoredMachineDescription() {
        return Optional.ofNullable(restoredDescription);
    }

    /**
     * The machine's state outside RAM, as {@link #snapshot} saves it. The VM must be paused ({@link #pause()}) or not
     * yet started; the registered {@link #snapshottable} devices are quiesced while it is taken and resumed after.
     */
    public MachineState captureState() {
        synchronized (snapshotLock) {
            checkPausedForSnapshot();
            List<Snapshottable> quiesced = quiesceDevices();
            try {
                return captureQuiesced();
            } finally {
                resumeDevices(quiesced);
            }
        }
    }

    private void checkPausedForSnapshot() {
        if (started && !paused && !exitRequested())
            throw new IllegalStateException("pause the VM before taking its state");
    }

    /**
     * Quiesces the devices in registration order; if one fails, those already quiesced resume and the failure
     * propagates. Returns the devices to resume.
     */
    private List<Snapshottable> quiesceDevices() {
        List<Snapshottable> done = new ArrayList<>();
        List<Snapshottable> all;
        synchronized (unclaimedDevices) {
            all = List.copyOf(snapshottables);
        }
        try {
            for (Snapshottable d : all) {
                d.quiesce();
                done.add(d);
            }
        } catch (RuntimeException | Error e) {
            resumeDevices(done);
            throw e;
        }
        return done;
    }

    private static void resumeDevices(List<Snapshottable> devices) {
        RuntimeException first = null;
        for (Snapshottable d : devices.reversed()) {
            try {
                d.resumeAfterSnapshot();
            } catch (RuntimeException e) { // every device gets its turn; the first failure is reported
                if (first == null) first = e;
                else first.addSuppressed(e);
            }
        }
        if (first != null) throw first;
    }

    private MachineState captureQuiesced() {
        HostCapabilities host = HostCapabilities.probe(kvm, vm);
        VmState vmState = VmState.capture(vm, host, irqchip, pit);
        List<VcpuState> cpus = new ArrayList<>();
        for (Vcpu c : vcpus) cpus.add(VcpuState.capture(c, cpuids.get(c.id()), host, irqchip));
        List<DeviceState> devices = new ArrayList<>();
        synchronized (unclaimedDevices) {
            for (Snapshottable d : snapshottables) devices.add(DeviceState.of(d));
        }
        return new MachineState(vmState, cpus, devices, Optional.ofNullable(machineDescription.get()));
    }

    /**
     * Writes a snapshot of this paused VM (its state and RAM) to {@code file}, replacing it atomically; the VM can be
     * resumed afterwards, or closed, and recreated from the file with {@link #restore}. The devices stay quiesced
     * until the RAM is written, so that no I/O thread changes guest memory under the copy.
     */
    public void snapshot(Path file) throws IOException {
        synchronized (snapshotLock) {
            checkPausedForSnapshot();
            List<Snapshottable> quiesced = quiesceDevices();
            try {
                MachineState state = captureQuiesced();
                String version = VirtualMachine.class.getPackage().getImplementationVersion();
                SnapshotFile.write(file, state, memory, "jvmm " + (version != null ? version : "(development build)"));
            } finally {
                resumeDevices(quiesced);
            }
        }
    }

    /** Whether the vCPUs are held by {@link #pause()}. */
    public boolean paused() {
        return paused;
    }

    /** Ends the run (status Stopped unless the guest already ended it) and waits for the vCPU threads. */
    public void stop() {
        requestExit(new ExitStatus.Stopped());
        for (VcpuRunner r : runners) r.join();
    }

    @Override
    public void requestExit(ExitStatus status) {
        if (exitStatus.compareAndSet(null, status)) {
            for (VcpuRunner r : runners) r.kick();
            exited.countDown();
        }
    }

    /** Waits for the run to end; empty on timeout. */
    public Optional<ExitStatus> awaitExit(Duration timeout) throws InterruptedException {
        if (exited.await(timeout.toNanos(), TimeUnit.NANOSECONDS)) return Optional.of(exitStatus.get());
        return Optional.empty();
    }

    /** The status so far: empty while running. */
    public Optional<ExitStatus> exitStatus() {
        return Optional.ofNullable(exitStatus.get());
    }

    boolean exitRequested() {
        return exitStatus.get() != null;
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        if (started) stop();
        List<AutoCloseable> owned = new ArrayList<>(resources);
        java.util.Collections.reverse(owned);
        for (AutoCloseable c : owned) {
            try {
                c.close();
            } catch (Exception e) {
                org.slf4j.LoggerFactory.getLogger(VirtualMachine.class).warn("closing {} failed: {}", c, e.toString());
            }
        }
        if (interrupts != null) interrupts.close();
        for (Vcpu c : vcpus) c.close();
        vm.close();
        memory.close();
        kvm.close();
    }

    /** Configuration of a VM; {@link #build()} creates it on /dev/kvm. */
    public static final class Builder {
        private long memoryBytes = 64L << 20;
        private List<GuestMemory.Layout> layouts;
        private GuestMemory.Options memoryOptions = GuestMemory.Options.DEFAULT;
        private int cpus = 1;
        private boolean irqchip = true;
        private boolean pit = true;
        private BiFunction<Integer, List<CpuidEntry>, List<CpuidEntry>> cpuid = (id, c) -> c;
        private Kvm kvm;
        private SnapshotFile restoring;

        private Builder() {}

        /**
         * Builds on a /dev/kvm the caller opened already (to ask about limits first) rather than opening it again.
         * The VM owns it from {@link #build()} on and closes it, also when building fails; one build per Kvm.
         */
        public Builder kvm(Kvm kvm) {
            this.kvm = Objects.requireNonNull(kvm);
            return this;
        }

        /** RAM size; above {@link #MMIO_HOLE_START} the rest is placed from 4 GiB up. */
        public Builder memory(long bytes) {
            if (bytes < (1 << 20) || (bytes & 0xfff) != 0)
                throw new IllegalArgumentException(
                        "memory must be at least 1 MiB and a multiple of 4 KiB, not " + bytes);
            this.memoryBytes = bytes;
            return this;
        }

        /** Explicit RAM regions instead of {@link #memory(long)}. */
        public Builder memoryLayout(List<GuestMemory.Layout> layouts) {
            this.layouts = List.copyOf(layouts);
            return this;
        }

        public Builder memoryOptions(GuestMemory.Options options) {
            this.memoryOptions = options;
            return this;
        }

        public Builder cpus(int n) {
            if (n < 1) throw new IllegalArgumentException("need at least one vCPU, not " + n);
            this.cpus = n;
            return this;
        }

        /** In-kernel PIC/IOAPIC/LAPIC (default on). Without it HLT exits to userspace and ends the run. */
        public Builder irqchip(boolean on) {
            this.irqchip = on;
            return this;
        }

        /** In-kernel i8254 PIT (default on; needs the irqchip). */
        public Builder pit(boolean on) {
            this.pit = on;
            return this;
        }

        /** Adjusts each vCPU's CPUID (given the vCPU id and KVM's supported leaves with the APIC id set). */
        public Builder cpuid(BiFunction<Integer, List<CpuidEntry>, List<CpuidEntry>> adjust) {
            this.cpuid = adjust;
            return this;
        }

        List<GuestMemory.Layout> layouts() {
            if (layouts != null) return layouts;
            if (memoryBytes <= MMIO_HOLE_START) return List.of(new GuestMemory.Layout(0, memoryBytes));
            return List.of(
                    new GuestMemory.Layout(0, MMIO_HOLE_START),
                    new GuestMemory.Layout(FOUR_GIB, memoryBytes - MMIO_HOLE_START));
        }

        public VirtualMachine build() {
            return new VirtualMachine(this);
        }
    }
}
