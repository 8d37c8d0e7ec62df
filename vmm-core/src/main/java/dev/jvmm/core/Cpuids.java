package dev.jvmm.core;

import java.util.ArrayList;
import java.util.List;

/** CPUID adjustments every VM needs: each vCPU's APIC id where the guest reads it. */
public final class Cpuids {
    private Cpuids() {}

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
