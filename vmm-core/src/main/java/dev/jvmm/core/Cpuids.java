package dev.jvmm.core;

import java.util.ArrayList;
import java.util.List;

/** CPUID adjustments every VM needs: the hypervisor's identity, and each vCPU's APIC id where the guest reads it. */
public final class Cpuids {
    /** The base of the hypervisor range (Intel and AMD reserve 0x40000000-0x4fffffff for it). */
    public static final int KVM_SIGNATURE_LEAF = 0x40000000, KVM_FEATURES_LEAF = 0x40000001;
    /** "KVMKVMKVM\0\0\0" in EBX, ECX, EDX: what Linux's kvm_cpuid_base() looks for. */
    static final int KVM_SIG_EBX = 0x4b4d564b, KVM_SIG_ECX = 0x564b4d56, KVM_SIG_EDX = 0x0000004d;

    static final int HYPERVISOR_BIT = 1 << 31;

    private Cpuids() {}

    /**
     * Says to the guest that it runs under KVM, as QEMU and Firecracker do: the hypervisor bit (leaf 1 ECX[31])
     * and KVM's signature leaf. Without them Linux neither looks for kvm-clock nor believes its PMU is virtual
     * ("Failed to access perfctr msr"), and calibrates the TSC against a PIT that is itself emulated. The
     * paravirtual features offered are exactly those KVM reports in KVM_GET_SUPPORTED_CPUID's leaf 0x40000001,
     * all served by the kernel (kvm-clock, PV EOI, steal time, async page faults); where KVM reports none (kvm_pvm)
     * the features leaf is present and empty, since Linux reads it whenever the signature is there.
     */
    public static List<CpuidEntry> withKvmIdentity(List<CpuidEntry> supported) {
        List<CpuidEntry> out = new ArrayList<>(supported.size() + 2);
        CpuidEntry features = null;
        for (CpuidEntry e : supported) {
            if (e.function() == KVM_FEATURES_LEAF) features = e;
            if (e.function() == KVM_SIGNATURE_LEAF || e.function() == KVM_FEATURES_LEAF) continue;
            out.add(e.function() == 1 ? e.withRegisters(e.eax(), e.ebx(), e.ecx() | HYPERVISOR_BIT, e.edx()) : e);
        }
        out.add(new CpuidEntry(KVM_SIGNATURE_LEAF, 0, 0, KVM_FEATURES_LEAF, KVM_SIG_EBX, KVM_SIG_ECX, KVM_SIG_EDX));
        out.add(features != null ? features : new CpuidEntry(KVM_FEATURES_LEAF, 0, 0, 0, 0, 0, 0));
        return out;
    }

    /** Sets the initial APIC id (leaf 1 EBX[31:24], leaf 0xB/0x1F EDX) and the logical count of leaf 1. */
    public static List<CpuidEntry> withApicId(List<CpuidEntry> entries, int apicId, int cpus) {
        List<CpuidEntry> out = new ArrayList<>(entries.size());
        for (CpuidEntry e : entries) {
            switch (e.function()) {
                case 1 -> {
                    int ebx = (e.ebx() & 0x0000ffff) | (apicId << 24) | (Math.min(cpus, 255) << 16);
                    int edx = cpus > 1 ? e.edx() | (1 << 28) : e.edx(); // HTT: the logical count is valid
                    out.add(e.withRegisters(e.eax(), ebx, e.ecx(), edx));
                }
                case 0xb, 0x1f -> out.add(e.withRegisters(e.eax(), e.ebx(), e.ecx(), apicId));
                default -> out.add(e);
            }
        }
        return out;
    }
}
