package dev.jvmm.kvm;

import dev.jvmm.kvm.gen.KvmHeaders;

/** The KVM capabilities jvmm asks about (KVM_CHECK_EXTENSION, KVM_ENABLE_CAP); the C name is KVM_CAP_ + name(). */
public enum Cap {
    /** The recommended vCPU count. */
    NR_VCPUS(KvmHeaders.KVM_CAP_NR_VCPUS()),
    /** KVM_SET_GSI_ROUTING; the answer is the number of GSIs a routing table may use. */
    IRQ_ROUTING(KvmHeaders.KVM_CAP_IRQ_ROUTING()),
    /** The most vCPUs a VM may have. */
    MAX_VCPUS(KvmHeaders.KVM_CAP_MAX_VCPUS());

    private final int number;

    Cap(int number) {
        this.number = number;
    }

    /** The KVM_CAP_* number the kernel knows it by. */
    public int number() {
        return number;
    }
}
