package dev.jvmm.kvm;

import dev.jvmm.kvm.gen.KvmHeaders;

/** The KVM capabilities jvmm asks about (KVM_CHECK_EXTENSION, KVM_ENABLE_CAP); the C name is KVM_CAP_ + name(). */
public enum Cap {
    /** The recommended vCPU count. */
    NR_VCPUS(KvmHeaders.KVM_CAP_NR_VCPUS()),
    /** KVM_SET_GSI_ROUTING; the answer is the number of GSIs a routing table may use. */
    IRQ_ROUTING(KvmHeaders.KVM_CAP_IRQ_ROUTING()),
    /** The most vCPUs a VM may have. */
    MAX_VCPUS(KvmHeaders.KVM_CAP_MAX_VCPUS()),
    /** KVM_GET/SET_XSAVE. */
    XSAVE(KvmHeaders.KVM_CAP_XSAVE()),
    /** KVM_GET_XSAVE2; the answer (on a VM) is the byte size of the XSAVE area KVM_GET_XSAVE2/SET_XSAVE move. */
    XSAVE2(KvmHeaders.KVM_CAP_XSAVE2()),
    /** KVM_GET/SET_XCRS. */
    XCRS(KvmHeaders.KVM_CAP_XCRS()),
    /** KVM_GET/SET_DEBUGREGS. */
    DEBUGREGS(KvmHeaders.KVM_CAP_DEBUGREGS()),
    /** KVM_GET/SET_VCPU_EVENTS. */
    VCPU_EVENTS(KvmHeaders.KVM_CAP_VCPU_EVENTS()),
    /** KVM_GET/SET_PIT2. */
    PIT_STATE2(KvmHeaders.KVM_CAP_PIT_STATE2()),
    /** KVM_GET/SET_CLOCK; the answer is the KVM_CLOCK_* flags KVM_GET_CLOCK may report. */
    ADJUST_CLOCK(KvmHeaders.KVM_CAP_ADJUST_CLOCK()),
    /** KVM_SET_TSC_KHZ: the guest's TSC may run at another rate than the host's. */
    TSC_CONTROL(KvmHeaders.KVM_CAP_TSC_CONTROL()),
    /** KVM_GET_TSC_KHZ. */
    GET_TSC_KHZ(KvmHeaders.KVM_CAP_GET_TSC_KHZ());

    private final int number;

    Cap(int number) {
        this.number = number;
    }

    /** The KVM_CAP_* number the kernel knows it by. */
    public int number() {
        return number;
    }
}
