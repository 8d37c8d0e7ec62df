package dev.jvmm.core.snapshot;

import dev.jvmm.core.CpuidEntry;
import java.util.List;

/**
 * Whether a saved vCPU's CPUID asks for features this host's KVM does not support: a guest that found a feature at
 * boot uses it without asking again, so restoring it where KVM lacks the feature would fault the guest later, far from
 * the cause. Only the feature-flag registers are compared; topology, cache and identity leaves may differ.
 */
final class CpuidCheck {
    private enum Reg {
        EAX,
        EBX,
        ECX,
        EDX
    }

    /** A feature register, and the bits of it that KVM or the guest change at run time (not features to compare). */
    private record Feature(int function, int index, Reg reg, int dynamic) {}

    private static final List<Feature> FEATURES = List.of(
            new Feature(1, 0, Reg.ECX, 1 << 27), // OSXSAVE follows the guest's CR4.OSXSAVE
            new Feature(1, 0, Reg.EDX, 1 << 9 | 1 << 28), // APIC follows APIC_BASE's enable; HTT is topology
            new Feature(7, 0, Reg.EBX, 0),
            new Feature(7, 0, Reg.ECX, 1 << 4), // OSPKE follows CR4.PKE
            new Feature(7, 0, Reg.EDX, 0),
            new Feature(0xd, 0, Reg.EAX, 0), // the XCR0 bits the guest may set
            new Feature(0xd, 1, Reg.EAX, 0),
            new Feature(0x80000001, 0, Reg.ECX, 0),
            new Feature(0x80000001, 0, Reg.EDX, 0));

    private CpuidCheck() {}

    static void check(String cpu, List<CpuidEntry> saved, List<CpuidEntry> supported) {
        for (Feature f : FEATURES) {
            int want = value(find(saved, f), f.reg());
            int have = value(find(supported, f), f.reg());
            int missing = want & ~have & ~f.dynamic();
            if (missing != 0)
                throw SnapshotException.host(String.format(
                        "%s's CPUID leaf 0x%x.%d %s has feature bits 0x%08x that this host's KVM does not support",
                        cpu, f.function(), f.index(), f.reg(), missing));
        }
    }

    private static CpuidEntry find(List<CpuidEntry> entries, Feature f) {
        for (CpuidEntry e : entries) if (e.function() == f.function() && e.index() == f.index()) return e;
        return null;
    }

    private static int value(CpuidEntry e, Reg reg) {
        if (e == null) return 0;
        return switch (reg) {
            case EAX -> e.eax();
            case EBX -> e.ebx();
            case ECX -> e.ecx();
            case EDX -> e.edx();
        };
    }
}
