package dev.jvmm.core.snapshot;

import dev.jvmm.core.CpuidEntry;
import dev.jvmm.core.Kvm;
import dev.jvmm.core.Vm;
import dev.jvmm.kvm.Cap;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * What this host's KVM can save and restore, asked once per VM: which state ioctls it offers, the XSAVE area's size,
 * the MSRs it saves ({@code KVM_GET_MSR_INDEX_LIST}) and the CPUID it supports.
 *
 * @param xsaveSize bytes KVM_GET_XSAVE2/KVM_SET_XSAVE move (KVM_CAP_XSAVE2 on the VM; 4096 with plain KVM_CAP_XSAVE),
 *     0 where only KVM_GET_FPU is offered
 * @param xsave2 KVM_GET_XSAVE2 is offered
 */
public record HostCapabilities(
        int xsaveSize,
        boolean xsave2,
        boolean xcrs,
        boolean debugRegs,
        boolean vcpuEvents,
        boolean pitState2,
        boolean adjustClock,
        boolean tscControl,
        boolean getTscKhz,
        Set<Integer> msrIndices,
        List<CpuidEntry> supportedCpuid) {
    public HostCapabilities {
        msrIndices = Collections.unmodifiableSortedSet(new TreeSet<>(msrIndices)); // read and saved in index order
        supportedCpuid = List.copyOf(supportedCpuid);
    }

    /** Asks {@code kvm} and {@code vm} (some answers, such as KVM_CAP_XSAVE2's size, are per VM). */
    public static HostCapabilities probe(Kvm kvm, Vm vm) {
        int xsave2 = vm.checkExtension(Cap.XSAVE2);
        int xsaveSize = xsave2 > 0 ? xsave2 : vm.checkExtension(Cap.XSAVE) > 0 ? 4096 : 0;
        Set<Integer> msrs = new TreeSet<>();
        for (int i : kvm.msrIndexList()) msrs.add(i);
        return new HostCapabilities(
                xsaveSize,
                xsave2 > 0,
                vm.checkExtension(Cap.XCRS) > 0,
                vm.checkExtension(Cap.DEBUGREGS) > 0,
                vm.checkExtension(Cap.VCPU_EVENTS) > 0,
                vm.checkExtension(Cap.PIT_STATE2) > 0,
                vm.checkExtension(Cap.ADJUST_CLOCK) > 0,
                vm.checkExtension(Cap.TSC_CONTROL) > 0,
                vm.checkExtension(Cap.GET_TSC_KHZ) > 0,
                msrs,
                kvm.supportedCpuid());
    }
}
