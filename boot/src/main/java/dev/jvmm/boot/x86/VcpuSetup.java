package dev.jvmm.boot.x86;

import dev.jvmm.core.CpuidEntry;
import dev.jvmm.core.Vcpu;
import dev.jvmm.kvm.gen.kvm_lapic_state;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The CPUID topology, MSRs and local APIC state a PC's vCPUs start with, as Firecracker and QEMU set them. */
public final class VcpuSetup {
    private static final int APIC_LVT_LINT0 = 0x350, APIC_LVT_LINT1 = 0x360;
    private static final int DELIVERY_EXTINT = 7, DELIVERY_NMI = 4;

    private VcpuSetup() {}

    /** Leaf 0xB: one thread per core, all cores in one package; leaf 4: the core count. */
    public static List<CpuidEntry> topology(List<CpuidEntry> entries, int apicId, int cpus) {
        int shift = 32 - Integer.numberOfLeadingZeros(Math.max(cpus - 1, 0));
        List<CpuidEntry> out = new ArrayList<>(entries.size());
        for (CpuidEntry e : entries) {
            if (e.function() == 0xb && e.index() == 0) out.add(e.withRegisters(0, 1, (1 << 8), apicId));
            else if (e.function() == 0xb && e.index() == 1) out.add(e.withRegisters(shift, cpus, (2 << 8) | 1, apicId));
            else if (e.function() == 4)
                out.add(e.withRegisters((e.eax() & 0x03ff_ffff) | ((cpus - 1) << 26), e.ebx(), e.ecx(), e.edx()));
            else out.add(e);
        }
        return out;
    }

    /** The boot MSRs: syscall MSRs cleared, fast strings on, MTRRs enabled with write-back as the default. */
    public static void msrs(Vcpu vcpu) {
        Map<Integer, Long> msrs = new LinkedHashMap<>();
        msrs.put(0x174, 0L); // IA32_SYSENTER_CS
        msrs.put(0x175, 0L); // IA32_SYSENTER_ESP
        msrs.put(0x176, 0L); // IA32_SYSENTER_EIP
        msrs.put(0xc0000081, 0L); // STAR
        msrs.put(0xc0000082, 0L); // LSTAR
        msrs.put(0xc0000083, 0L); // CSTAR
        msrs.put(0xc0000084, 0L); // SYSCALL_MASK
        msrs.put(0xc0000102, 0L); // KERNEL_GS_BASE
        msrs.put(0x10, 0L); // TSC
        msrs.put(0x1a0, 1L); // IA32_MISC_ENABLE: fast string operations
        msrs.put(0x2ff, (1L << 11) | 6); // MTRRdefType: MTRRs on, default write-back
        vcpu.setMsrs(msrs);
    }

    /** LINT0 delivers the PIC's ExtINT, LINT1 NMIs: what a BIOS leaves for the kernel's virtual-wire mode. */
    public static void lapic(Vcpu vcpu) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment lapic = kvm_lapic_state.allocate(arena);
            vcpu.getLapic(lapic);
            setDeliveryMode(lapic, APIC_LVT_LINT0, DELIVERY_EXTINT);
            setDeliveryMode(lapic, APIC_LVT_LINT1, DELIVERY_NMI);
            vcpu.setLapic(lapic);
        }
    }

    private static void setDeliveryMode(MemorySegment lapic, int reg, int mode) {
        long off = kvm_lapic_state.regs$offset() + reg;
        int v = lapic.get(ValueLayout.JAVA_INT_UNALIGNED, off);
        lapic.set(ValueLayout.JAVA_INT_UNALIGNED, off, (v & ~0x700) | (mode << 8));
    }
}
