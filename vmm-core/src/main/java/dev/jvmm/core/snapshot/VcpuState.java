package dev.jvmm.core.snapshot;

import dev.jvmm.core.CpuidEntry;
import dev.jvmm.core.Cpuids;
import dev.jvmm.core.Vcpu;
import dev.jvmm.kvm.SyscallException;
import dev.jvmm.kvm.gen.kvm_debugregs;
import dev.jvmm.kvm.gen.kvm_fpu;
import dev.jvmm.kvm.gen.kvm_lapic_state;
import dev.jvmm.kvm.gen.kvm_regs;
import dev.jvmm.kvm.gen.kvm_sregs;
import dev.jvmm.kvm.gen.kvm_vcpu_events;
import dev.jvmm.kvm.gen.kvm_xcr;
import dev.jvmm.kvm.gen.kvm_xcrs;
import dev.jvmm.kvm.gen.kvm_xsave;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything KVM gives for one vCPU, enough to recreate it in another process: the CPUID it was given, its TSC rate,
 * general and special registers, the FPU/SSE/AVX state (XSAVE where KVM offers it, else the legacy FPU), the XCRs,
 * every MSR KVM lists as saved and could read, the local APIC, pending events (exceptions, interrupts, NMI, SMM), the
 * MP state and the debug registers.
 *
 * @param tscKhz the guest TSC's rate, 0 where KVM could not say (no KVM_CAP_GET_TSC_KHZ)
 * @param unreadableMsrs MSRs KVM_GET_MSR_INDEX_LIST named but KVM_GET_MSRS could not read for this vCPU (an MSR of a
 *     feature the vCPU's CPUID lacks, say); kept so that a report can say what was not saved
 * @param lapic absent on a VM without an in-kernel irqchip
 */
public record VcpuState(
        int id,
        List<CpuidEntry> cpuid,
        int tscKhz,
        StructBytes regs,
        StructBytes sregs,
        Fpu fpu,
        List<Xcr> xcrs,
        List<Msr> msrs,
        List<Integer> unreadableMsrs,
        Optional<StructBytes> lapic,
        Optional<StructBytes> events,
        int mpState,
        Optional<StructBytes> debugRegs) {
    /** The section version {@link #write} writes. */
    public static final int VERSION = 1;

    static final int MSR_IA32_TSC = 0x10, MSR_IA32_TSC_DEADLINE = 0x6e0;
    /** Bounds for reading an untrusted file: far above what any host has, far below what would hurt to allocate. */
    static final int MAX_CPUID = 1024, MAX_MSRS = 8192, MAX_XCRS = 16, MAX_XSAVE = 1 << 20;

    public VcpuState {
        cpuid = List.copyOf(cpuid);
        xcrs = List.copyOf(xcrs);
        msrs = List.copyOf(msrs);
        unreadableMsrs = List.copyOf(unreadableMsrs);
    }

    /** The FPU, SSE and AVX state in the form this host's KVM gave it. */
    public sealed interface Fpu permits Xsave, LegacyFpu {}

    /** KVM_GET_XSAVE(2)'s area: 4 KiB, or KVM_CAP_XSAVE2's size where larger (AMX). */
    public record Xsave(StructBytes area) implements Fpu {}

    /** KVM_GET_FPU's kvm_fpu, where KVM offers no XSAVE. */
    public record LegacyFpu(StructBytes fpu) implements Fpu {}

    /** One extended control register (XCR0 is the one x86 has). */
    public record Xcr(int index, long value) {}

    public record Msr(int index, long value) {
        @Override
        public String toString() {
            return String.format("MSR 0x%x = 0x%x", index, value);
        }
    }

    /**
     * Reads the vCPU's state. Its thread must be out of KVM_RUN and stay out (the VM paused), and any exit it last
     * took completed by re-entering KVM_RUN with immediate_exit set: KVM finishes an I/O exit (the data of an IN,
     * the RIP past an OUT) only on the next entry, and keeps that pending work where no ioctl can read it.
     *
     * <p>The CPUID saved is the one the VMM set ({@code cpuidAsSet}), not KVM_GET_CPUID2's answer: that can differ
     * (kvm_pvm reports the host CPU's own feature leaves 1, 7 and 0xD there, which KVM_GET_SUPPORTED_CPUID does not
     * offer), and a restore sets the CPUID again from what the machine was configured with.
     */
    public static VcpuState capture(Vcpu vcpu, List<CpuidEntry> cpuidAsSet, HostCapabilities host, boolean irqchip) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment regs = kvm_regs.allocate(arena);
            vcpu.getRegs(regs);
            MemorySegment sregs = kvm_sregs.allocate(arena);
            vcpu.getSregs(sregs);
            Fpu fpu;
            if (host.xsaveSize() > 0) {
                MemorySegment x = arena.allocate(host.xsaveSize(), 8);
                if (host.xsave2()) vcpu.getXsave2(x, host.xsaveSize());
                else vcpu.getXsave(x);
                fpu = new Xsave(StructBytes.copyOf(x));
            } else {
                MemorySegment f = kvm_fpu.allocate(arena);
                vcpu.getFpu(f);
                fpu = new LegacyFpu(StructBytes.copyOf(f));
            }
            List<Xcr> xcrs = new ArrayList<>();
            if (host.xcrs()) {
                MemorySegment x = kvm_xcrs.allocate(arena);
                vcpu.getXcrs(x);
                int n = Math.min(kvm_xcrs.nr_xcrs(x), MAX_XCRS);
                for (int i = 0; i < n; i++) {
                    MemorySegment e = kvm_xcr.asSlice(kvm_xcrs.xcrs(x), i);
                    xcrs.add(new Xcr(kvm_xcr.xcr(e), kvm_xcr.value(e)));
                }
            }
            List<Msr> msrs = new ArrayList<>();
            List<Integer> unreadable = new ArrayList<>();
            readMsrs(vcpu, host, msrs, unreadable);
            Optional<StructBytes> lapic = Optional.empty();
            if (irqchip) {
                MemorySegment l = kvm_lapic_state.allocate(arena);
                vcpu.getLapic(l);
                lapic = Optional.of(StructBytes.copyOf(l));
            }
            Optional<StructBytes> events = Optional.empty();
            if (host.vcpuEvents()) {
                MemorySegment e = kvm_vcpu_events.allocate(arena);
                vcpu.getVcpuEvents(e);
                events = Optional.of(StructBytes.copyOf(e));
            }
            Optional<StructBytes> debug = Optional.empty();
            if (host.debugRegs()) {
                MemorySegment d = kvm_debugregs.allocate(arena);
                vcpu.getDebugRegs(d);
                debug = Optional.of(StructBytes.copyOf(d));
            }
            return new VcpuState(
                    vcpu.id(),
                    cpuidAsSet,
                    host.getTscKhz() ? vcpu.tscKhz() : 0,
                    StructBytes.copyOf(regs),
                    StructBytes.copyOf(sregs),
                    fpu,
                    xcrs,
                    msrs,
                    unreadable,
                    lapic,
                    events,
                    vcpu.getMpState(),
                    debug);
        }
    }

    /**
     * KVM_GET_MSRS over the whole index list in one call, which stops at the first MSR it cannot read: that one is
     * recorded as unreadable and the read goes on after it.
     */
    private static void readMsrs(Vcpu vcpu, HostCapabilities host, List<Msr> out, List<Integer> unreadable) {
        int[] all = host.msrIndices().stream().mapToInt(Integer::intValue).toArray();
        int i = 0;
        while (i < all.length) {
            Map<Integer, Long> got = vcpu.getMsrs(Arrays.copyOfRange(all, i, all.length));
            for (Map.Entry<Integer, Long> e : got.entrySet()) out.add(new Msr(e.getKey(), e.getValue()));
            i += got.size();
            if (i < all.length) unreadable.add(all[i++]);
        }
    }

    /**
     * Refuses, before anything is created, a state this host's KVM cannot take: XSAVE state larger than it offers or
     * where it offers none, XCRs, debug registers or events without their capability, an MSR it does not save, CPUID
     * features it does not support.
     */
    public void checkHost(HostCapabilities host) {
        String cpu = "vCPU " + id;
        if (fpu instanceof Xsave x) {
            if (host.xsaveSize() == 0)
                throw SnapshotException.host(cpu + " has XSAVE state, but this host's KVM offers no KVM_CAP_XSAVE");
            if (x.area().size() > host.xsaveSize())
                throw SnapshotException.host(
                        cpu + " has an XSAVE area of " + x.area().size() + " bytes, but this host's KVM takes at most "
                                + host.xsaveSize() + " (KVM_CAP_XSAVE2)");
        }
        if (!xcrs.isEmpty() && !host.xcrs())
            throw SnapshotException.host(cpu + " has XCRs, but this host's KVM offers no KVM_CAP_XCRS");
        if (debugRegs.isPresent() && !host.debugRegs())
            throw SnapshotException.host(cpu + " has debug registers, but this host's KVM offers no KVM_CAP_DEBUGREGS");
        if (events.isPresent() && !host.vcpuEvents())
            throw SnapshotException.host(
                    cpu + " has pending events, but this host's KVM offers no KVM_CAP_VCPU_EVENTS");
        for (Msr m : msrs)
            if (!host.msrIndices().contains(m.index()))
                throw SnapshotException.host(String.format(
                        "%s has MSR 0x%x, which this host's KVM does not save and restore (KVM_GET_MSR_INDEX_LIST)",
                        cpu, m.index()));
        CpuidCheck.check(cpu, cpuid, Cpuids.withKvmIdentity(host.supportedCpuid()));
    }

    /**
     * Loads this state into a vCPU that has not run, in the order KVM needs: CPUID first (it decides which MSRs and
     * XSAVE components exist), the TSC rate, special registers (they set the APIC base the local APIC then loads
     * under), registers, FPU/XSAVE and XCRs, the local APIC, MSRs (the TSC before the TSC deadline, which counts in
     * it, and the deadline after the APIC whose timer mode it needs), then MP state, events and debug registers.
     * A value KVM refuses ends it with HOST_INCOMPATIBLE naming what and which value.
     */
    public void restore(Vcpu vcpu, HostCapabilities host) {
        checkHost(host);
        String cpu = "vCPU " + id;
        try (Arena arena = Arena.ofConfined()) {
            set(cpu, "CPUID", () -> vcpu.setCpuid(cpuid));
            if (tscKhz != 0 && host.getTscKhz()) {
                int here = vcpu.tscKhz();
                if (here != tscKhz) {
                    if (!host.tscControl())
                        throw SnapshotException.host(cpu + "'s TSC ran at " + tscKhz + " kHz, this host's at " + here
                                + " kHz, and its KVM cannot scale a guest's TSC (no KVM_CAP_TSC_CONTROL)");
                    set(cpu, "TSC rate " + tscKhz + " kHz", () -> vcpu.setTscKhz(tscKhz));
                }
            }
            set(cpu, "special registers", () -> vcpu.setSregs(sregs.toSegment(arena, kvm_sregs.sizeof())));
            set(cpu, "registers", () -> vcpu.setRegs(regs.toSegment(arena, kvm_regs.sizeof())));
            switch (fpu) {
                case Xsave x ->
                    set(
                            cpu,
                            "XSAVE area",
                            () -> vcpu.setXsave(x.area().toSegment(arena, host.xsaveSize()), host.xsaveSize()));
                case LegacyFpu f -> set(cpu, "FPU", () -> vcpu.setFpu(f.fpu().toSegment(arena, kvm_fpu.sizeof())));
            }
            if (!xcrs.isEmpty()) {
                MemorySegment x = kvm_xcrs.allocate(arena);
                kvm_xcrs.nr_xcrs(x, xcrs.size());
                for (int i = 0; i < xcrs.size(); i++) {
                    MemorySegment e = kvm_xcr.asSlice(kvm_xcrs.xcrs(x), i);
                    kvm_xcr.xcr(e, xcrs.get(i).index());
                    kvm_xcr.value(e, xcrs.get(i).value());
                }
                set(cpu, "XCRs " + xcrs, () -> vcpu.setXcrs(x));
            }
            lapic.ifPresent(l ->
                    set(cpu, "local APIC", () -> vcpu.setLapic(l.toSegment(arena, kvm_lapic_state.sizeof()))));
            Map<Integer, Long> ordered = new LinkedHashMap<>();
            for (Msr m : msrs) if (m.index() == MSR_IA32_TSC) ordered.put(m.index(), m.value());
            for (Msr m : msrs)
                if (m.index() != MSR_IA32_TSC && m.index() != MSR_IA32_TSC_DEADLINE) ordered.put(m.index(), m.value());
            for (Msr m : msrs) if (m.index() == MSR_IA32_TSC_DEADLINE) ordered.put(m.index(), m.value());
            if (id == 0 && ordered.containsKey(MSR_IA32_TSC))
                moveTscOutOfSyncWindow(vcpu, ordered.get(MSR_IA32_TSC), host);
            int done;
            try {
                done = vcpu.setMsrsInOrder(ordered);
            } catch (SyscallException e) {
                throw SnapshotException.host(cpu + ": KVM_SET_MSRS failed: " + e.getMessage());
            }
            if (done != ordered.size()) {
                Map.Entry<Integer, Long> refused =
                        List.copyOf(ordered.entrySet()).get(done);
                throw SnapshotException.host(String.format(
                        "%s: this host's KVM refused MSR 0x%x = 0x%x (KVM_SET_MSRS set %d of %d)",
                        cpu, refused.getKey(), refused.getValue(), done, ordered.size()));
            }
            set(cpu, "MP state " + mpState, () -> vcpu.setMpState(mpState));
            events.ifPresent(e ->
                    set(cpu, "pending events", () -> vcpu.setVcpuEvents(e.toSegment(arena, kvm_vcpu_events.sizeof()))));
            debugRegs.ifPresent(d ->
                    set(cpu, "debug registers", () -> vcpu.setDebugRegs(d.toSegment(arena, kvm_debugregs.sizeof()))));
        }
    }

    /**
     * KVM before Linux 6.7 takes a host write of a vCPU's TSC that lands within a second of what it expects (the
     * cycles since the VM's vCPUs were made) as an attempt to synchronise vCPUs, and keeps the offset it has: a
     * snapshot saved in its first seconds then restores with the new VM's TSC, behind the saved one (seen with
     * Debian's 6.1 on AMD-V). A first write two seconds or more away from both makes the saved value stick exactly.
     * Only for the first vCPU restored (vCPU 0; vCPUs are restored in order): the others' saved TSCs are within
     * microseconds of its own, and KVM's synchronising them to it is what keeps the VM's TSCs matched.
     */
    private void moveTscOutOfSyncWindow(Vcpu vcpu, long saved, HostCapabilities host) {
        // The rate as restored; where KVM cannot say, 10 GHz bounds any TSC's second from above
        long hz = tscKhz != 0 ? 1000L * tscKhz : host.getTscKhz() ? 1000L * vcpu.tscKhz() : 10_000_000_000L;
        long now = vcpu.getMsrs(MSR_IA32_TSC).getOrDefault(MSR_IA32_TSC, 0L);
        if (Math.abs(saved - now) >= 2 * hz) return;
        set(
                "vCPU " + id,
                "TSC (a step before the saved value)",
                () -> vcpu.setMsrs(Map.of(MSR_IA32_TSC, now + 4 * hz)));
    }

    private static void set(String cpu, String what, Runnable ioctl) {
        try {
            ioctl.run();
        } catch (SyscallException e) {
            throw SnapshotException.host(cpu + ": this host's KVM refused the saved " + what + ": " + e.getMessage());
        }
    }

    /** The instruction pointer, from the saved registers. */
    public long rip() {
        try (Arena arena = Arena.ofConfined()) {
            return kvm_regs.rip(regs.toSegment(arena, kvm_regs.sizeof()));
        }
    }

    void write(StateOutput out) {
        out.u32(id);
        out.u32(cpuid.size());
        for (CpuidEntry e : cpuid)
            out.u32(e.function())
                    .u32(e.index())
                    .u32(e.flags())
                    .u32(e.eax())
                    .u32(e.ebx())
                    .u32(e.ecx())
                    .u32(e.edx());
        out.u32(tscKhz);
        out.bytes(regs).bytes(sregs);
        switch (fpu) {
            case Xsave x -> out.u8(1).bytes(x.area());
            case LegacyFpu f -> out.u8(2).bytes(f.fpu());
        }
        out.u32(xcrs.size());
        for (Xcr x : xcrs) out.u32(x.index()).u64(x.value());
        out.u32(msrs.size());
        for (Msr m : msrs) out.u32(m.index()).u64(m.value());
        out.u32(unreadableMsrs.size());
        for (int m : unreadableMsrs) out.u32(m);
        optional(out, lapic);
        optional(out, events);
        out.u32(mpState);
        optional(out, debugRegs);
    }

    private static void optional(StateOutput out, Optional<StructBytes> s) {
        out.bool(s.isPresent());
        s.ifPresent(out::bytes);
    }

    static VcpuState read(StateInput in) {
        int id = in.u32("vCPU id");
        int n = in.count("CPUID entries", MAX_CPUID, 28);
        List<CpuidEntry> cpuid = new ArrayList<>(n);
        for (int i = 0; i < n; i++)
            cpuid.add(new CpuidEntry(
                    in.u32("CPUID function"),
                    in.u32("CPUID index"),
                    in.u32("CPUID flags"),
                    in.u32("CPUID eax"),
                    in.u32("CPUID ebx"),
                    in.u32("CPUID ecx"),
                    in.u32("CPUID edx")));
        int tscKhz = in.u32("TSC kHz");
        StructBytes regs = in.struct("kvm_regs", kvm_regs.sizeof());
        StructBytes sregs = in.struct("kvm_sregs", kvm_sregs.sizeof());
        int fpuKind = in.u8("FPU kind");
        Fpu fpu = switch (fpuKind) {
            case 1 -> {
                byte[] area = in.bytes("kvm_xsave", MAX_XSAVE);
                if (area.length < kvm_xsave.sizeof() || area.length % 4 != 0)
                    throw SnapshotException.corrupt(in.where() + ": XSAVE area of " + area.length
                            + " bytes, not a multiple of 4 of at least " + kvm_xsave.sizeof());
                yield new Xsave(StructBytes.of(area));
            }
            case 2 -> new LegacyFpu(in.struct("kvm_fpu", kvm_fpu.sizeof()));
            default -> throw SnapshotException.corrupt(in.where() + ": FPU kind " + fpuKind + " is not 1 or 2");
        };
        n = in.count("XCRs", MAX_XCRS, 12);
        List<Xcr> xcrs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) xcrs.add(new Xcr(in.u32("XCR index"), in.u64("XCR value")));
        n = in.count("MSRs", MAX_MSRS, 12);
        List<Msr> msrs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) msrs.add(new Msr(in.u32("MSR index"), in.u64("MSR value")));
        n = in.count("unreadable MSRs", MAX_MSRS, 4);
        List<Integer> unreadable = new ArrayList<>(n);
        for (int i = 0; i < n; i++) unreadable.add(in.u32("unreadable MSR"));
        Optional<StructBytes> lapic = in.bool("local APIC present")
                ? Optional.of(in.struct("kvm_lapic_state", kvm_lapic_state.sizeof()))
                : Optional.empty();
        Optional<StructBytes> events = in.bool("events present")
                ? Optional.of(in.struct("kvm_vcpu_events", kvm_vcpu_events.sizeof()))
                : Optional.empty();
        int mpState = in.u32("MP state");
        Optional<StructBytes> debug = in.bool("debug registers present")
                ? Optional.of(in.struct("kvm_debugregs", kvm_debugregs.sizeof()))
                : Optional.empty();
        return new VcpuState(
                id, cpuid, tscKhz, regs, sregs, fpu, xcrs, msrs, unreadable, lapic, events, mpState, debug);
    }
}
