package dev.jvmm.core;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.KvmIoctls;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.OwnedFd;
import dev.jvmm.kvm.SyscallException;
import dev.jvmm.kvm.gen.kvm_cpuid2;
import dev.jvmm.kvm.gen.kvm_cpuid_entry2;
import dev.jvmm.kvm.gen.kvm_debugregs;
import dev.jvmm.kvm.gen.kvm_fpu;
import dev.jvmm.kvm.gen.kvm_lapic_state;
import dev.jvmm.kvm.gen.kvm_mp_state;
import dev.jvmm.kvm.gen.kvm_msr_entry;
import dev.jvmm.kvm.gen.kvm_msrs;
import dev.jvmm.kvm.gen.kvm_regs;
import dev.jvmm.kvm.gen.kvm_sregs;
import dev.jvmm.kvm.gen.kvm_translation;
import dev.jvmm.kvm.gen.kvm_vcpu_events;
import dev.jvmm.kvm.gen.kvm_xcrs;
import dev.jvmm.kvm.gen.kvm_xsave;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A KVM vCPU fd and its mmapped kvm_run area: one method per vCPU ioctl. The struct-valued calls take and
 * fill segments laid out as the generated struct classes ({@code kvm_regs.allocate(arena)}), so a caller can
 * keep one buffer and allocate nothing per call. After close() every call throws ClosedFdException.
 */
public final class Vcpu implements AutoCloseable {
    private final int id;
    private final OwnedFd fd;
    private final MemorySegment run;

    Vcpu(int id, OwnedFd fd, MemorySegment run) {
        this.id = id;
        this.fd = fd;
        this.run = run;
    }

    public int id() {
        return id;
    }

    /** The shared kvm_run area (read it with {@code dev.jvmm.kvm.gen.kvm_run}). */
    public MemorySegment runArea() {
        fd.get(); // unmapped once closed
        return run;
    }

    /** KVM_RUN: 0 on an exit to handle, or -errno (EINTR when kicked); never allocates, throws only once closed. */
    public int run() {
        return Libc.ioctlRaw(fd.get(), KvmIoctls.KVM_RUN, 0L);
    }

    public void getRegs(MemorySegment regs) {
        Libc.ioctl(fd.get(), "KVM_GET_REGS", KvmIoctls.KVM_GET_REGS, checked(regs, kvm_regs.sizeof()));
    }

    public void setRegs(MemorySegment regs) {
        Libc.ioctl(fd.get(), "KVM_SET_REGS", KvmIoctls.KVM_SET_REGS, checked(regs, kvm_regs.sizeof()));
    }

    public void getSregs(MemorySegment sregs) {
        Libc.ioctl(fd.get(), "KVM_GET_SREGS", KvmIoctls.KVM_GET_SREGS, checked(sregs, kvm_sregs.sizeof()));
    }

    public void setSregs(MemorySegment sregs) {
        Libc.ioctl(fd.get(), "KVM_SET_SREGS", KvmIoctls.KVM_SET_SREGS, checked(sregs, kvm_sregs.sizeof()));
    }

    public void getFpu(MemorySegment fpu) {
        Libc.ioctl(fd.get(), "KVM_GET_FPU", KvmIoctls.KVM_GET_FPU, checked(fpu, kvm_fpu.sizeof()));
    }

    public void setFpu(MemorySegment fpu) {
        Libc.ioctl(fd.get(), "KVM_SET_FPU", KvmIoctls.KVM_SET_FPU, checked(fpu, kvm_fpu.sizeof()));
    }

    public void getLapic(MemorySegment lapic) {
        Libc.ioctl(fd.get(), "KVM_GET_LAPIC", KvmIoctls.KVM_GET_LAPIC, checked(lapic, kvm_lapic_state.sizeof()));
    }

    public void setLapic(MemorySegment lapic) {
        Libc.ioctl(fd.get(), "KVM_SET_LAPIC", KvmIoctls.KVM_SET_LAPIC, checked(lapic, kvm_lapic_state.sizeof()));
    }

    public void getVcpuEvents(MemorySegment events) {
        Libc.ioctl(
                fd.get(),
                "KVM_GET_VCPU_EVENTS",
                KvmIoctls.KVM_GET_VCPU_EVENTS,
                checked(events, kvm_vcpu_events.sizeof()));
    }

    public void setVcpuEvents(MemorySegment events) {
        Libc.ioctl(
                fd.get(),
                "KVM_SET_VCPU_EVENTS",
                KvmIoctls.KVM_SET_VCPU_EVENTS,
                checked(events, kvm_vcpu_events.sizeof()));
    }

    /** KVM_GET_DEBUGREGS (needs KVM_CAP_DEBUGREGS). */
    public void getDebugRegs(MemorySegment debugRegs) {
        Libc.ioctl(
                fd.get(), "KVM_GET_DEBUGREGS", KvmIoctls.KVM_GET_DEBUGREGS, checked(debugRegs, kvm_debugregs.sizeof()));
    }

    /** KVM_SET_DEBUGREGS (needs KVM_CAP_DEBUGREGS; flags must be 0). */
    public void setDebugRegs(MemorySegment debugRegs) {
        Libc.ioctl(
                fd.get(), "KVM_SET_DEBUGREGS", KvmIoctls.KVM_SET_DEBUGREGS, checked(debugRegs, kvm_debugregs.sizeof()));
    }

    /** KVM_GET_XSAVE: the first 4 KiB of the XSAVE area (needs KVM_CAP_XSAVE). */
    public void getXsave(MemorySegment xsave) {
        Libc.ioctl(fd.get(), "KVM_GET_XSAVE", KvmIoctls.KVM_GET_XSAVE, checked(xsave, kvm_xsave.sizeof()));
    }

    /**
     * KVM_GET_XSAVE2: the whole XSAVE area, as many bytes as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM says
     * ({@code xsave} must be at least that large: the kernel writes that many bytes whatever the segment's size).
     */
    public void getXsave2(MemorySegment xsave, int size) {
        int f = fd.get(); // a closed Vcpu says so before anything else
        if (size < kvm_xsave.sizeof())
            throw new IllegalArgumentException("KVM_CAP_XSAVE2 size " + size + " is below 4096: not from KVM");
        Libc.ioctl(f, "KVM_GET_XSAVE2", KvmIoctls.KVM_GET_XSAVE2, checked(xsave, size));
    }

    /** KVM_SET_XSAVE: KVM reads KVM_CAP_XSAVE2's size where offered, else 4 KiB; {@code xsave} must hold that. */
    public void setXsave(MemorySegment xsave, int size) {
        Libc.ioctl(fd.get(), "KVM_SET_XSAVE", KvmIoctls.KVM_SET_XSAVE, checked(xsave, Math.max(size, (int)
                kvm_xsave.sizeof())));
    }

    /** KVM_GET_XCRS (needs KVM_CAP_XCRS). */
    public void getXcrs(MemorySegment xcrs) {
        Libc.ioctl(fd.get(), "KVM_GET_XCRS", KvmIoctls.KVM_GET_XCRS, checked(xcrs, kvm_xcrs.sizeof()));
    }

    /** KVM_SET_XCRS (needs KVM_CAP_XCRS). */
    public void setXcrs(MemorySegment xcrs) {
        Libc.ioctl(fd.get(), "KVM_SET_XCRS", KvmIoctls.KVM_SET_XCRS, checked(xcrs, kvm_xcrs.sizeof()));
    }

    /** KVM_GET_CPUID2: the leaves set with KVM_SET_CPUID2, as KVM keeps them (runtime bits such as OSXSAVE updated). */
    public List<CpuidEntry> getCpuid() {
        for (int nent = 128; ; nent *= 2) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment c = arena.allocate(kvm_cpuid2.sizeof() + nent * kvm_cpuid_entry2.sizeof(), 8);
                kvm_cpuid2.nent(c, nent);
                int r = Libc.ioctlRaw(fd.get(), KvmIoctls.KVM_GET_CPUID2, c);
                if (r == -Errno.E2BIG && nent < 4096) continue;
                if (r < 0) throw new SyscallException("ioctl(KVM_GET_CPUID2)", -r);
                return Kvm.Cpuid.read(c);
            }
        }
    }

    /** KVM_SET_CPUID2. */
    public void setCpuid(List<CpuidEntry> entries) {
        try (Arena arena = Arena.ofConfined()) {
            Libc.ioctl(fd.get(), "KVM_SET_CPUID2", KvmIoctls.KVM_SET_CPUID2, Kvm.Cpuid.write(arena, entries));
        }
    }

    /** KVM_GET_MP_STATE: one of KVM_MP_STATE_*. */
    public int getMpState() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = kvm_mp_state.allocate(arena);
            Libc.ioctl(fd.get(), "KVM_GET_MP_STATE", KvmIoctls.KVM_GET_MP_STATE, s);
            return kvm_mp_state.mp_state(s);
        }
    }

    public void setMpState(int state) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = kvm_mp_state.allocate(arena);
            kvm_mp_state.mp_state(s, state);
            Libc.ioctl(fd.get(), "KVM_SET_MP_STATE", KvmIoctls.KVM_SET_MP_STATE, s);
        }
    }

    /** KVM_SET_MSRS; every MSR must be accepted, else the call names the first one refused. */
    public void setMsrs(Map<Integer, Long> msrs) {
        int done = setMsrsInOrder(msrs);
        if (done != msrs.size()) {
            int refused = List.copyOf(msrs.keySet()).get(done);
            throw new IllegalStateException(String.format("KVM_SET_MSRS refused MSR 0x%x", refused));
        }
    }

    /**
     * KVM_SET_MSRS as the kernel does it: sets the MSRs in the map's order and stops at the first it refuses,
     * returning how many it set (the refused one is the entry at that position).
     */
    public int setMsrsInOrder(Map<Integer, Long> msrs) {
        try (Arena arena = Arena.ofConfined()) {
            return Libc.ioctl(fd.get(), "KVM_SET_MSRS", KvmIoctls.KVM_SET_MSRS, msrBuffer(arena, msrs));
        }
    }

    /**
     * KVM_GET_MSRS for the given indices, in order; KVM stops at the first it cannot read, so the result holds the
     * MSRs before that one (its size says where it stopped).
     */
    public Map<Integer, Long> getMsrs(int... indices) {
        try (Arena arena = Arena.ofConfined()) {
            Map<Integer, Long> query = new LinkedHashMap<>();
            for (int i : indices) query.put(i, 0L);
            MemorySegment m = msrBuffer(arena, query);
            int done = Libc.ioctl(fd.get(), "KVM_GET_MSRS", KvmIoctls.KVM_GET_MSRS, m);
            Map<Integer, Long> out = new LinkedHashMap<>();
            MemorySegment entries = m.asSlice(kvm_msrs.entries$offset());
            for (int i = 0; i < done; i++) {
                MemorySegment e = kvm_msr_entry.asSlice(entries, i);
                out.put(kvm_msr_entry.index(e), kvm_msr_entry.data(e));
            }
            return out;
        }
    }

    private static MemorySegment msrBuffer(Arena arena, Map<Integer, Long> msrs) {
        MemorySegment m = arena.allocate(kvm_msrs.sizeof() + msrs.size() * kvm_msr_entry.sizeof(), 8);
        kvm_msrs.nmsrs(m, msrs.size());
        MemorySegment entries = m.asSlice(kvm_msrs.entries$offset());
        int i = 0;
        for (Map.Entry<Integer, Long> e : msrs.entrySet()) {
            MemorySegment x = kvm_msr_entry.asSlice(entries, i++);
            kvm_msr_entry.index(x, e.getKey());
            kvm_msr_entry.data(x, e.getValue());
        }
        return m;
    }

    /** KVM_TRANSLATE: the guest-physical address of a linear address under the vCPU's paging, or -1. */
    public long translate(long linearAddress) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment t = kvm_translation.allocate(arena);
            kvm_translation.linear_address(t, linearAddress);
            Libc.ioctl(fd.get(), "KVM_TRANSLATE", KvmIoctls.KVM_TRANSLATE, t);
            return kvm_translation.valid(t) != 0 ? kvm_translation.physical_address(t) : -1;
        }
    }

    /** KVM_GET_TSC_KHZ. */
    public int tscKhz() {
        return Libc.ioctl(fd.get(), "KVM_GET_TSC_KHZ", KvmIoctls.KVM_GET_TSC_KHZ, 0);
    }

    /** KVM_SET_TSC_KHZ: the rate the guest's TSC runs at (needs KVM_CAP_TSC_CONTROL to differ from the host's). */
    public void setTscKhz(int khz) {
        Libc.ioctl(fd.get(), "KVM_SET_TSC_KHZ", KvmIoctls.KVM_SET_TSC_KHZ, khz);
    }

    private static MemorySegment checked(MemorySegment s, long size) {
        if (s.byteSize() < size)
            throw new IllegalArgumentException("buffer of " + s.byteSize() + " bytes, need " + size);
        return s;
    }

    @Override
    public synchronized void close() {
        if (fd.isClosed()) return;
        try {
            Libc.munmap(run);
        } finally {
            fd.close();
        }
    }
}
