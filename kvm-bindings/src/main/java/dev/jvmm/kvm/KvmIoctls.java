package dev.jvmm.kvm;

import static dev.jvmm.kvm.Ioctl.io;
import static dev.jvmm.kvm.Ioctl.ior;
import static dev.jvmm.kvm.Ioctl.iow;
import static dev.jvmm.kvm.Ioctl.iowr;

import dev.jvmm.kvm.gen.kvm_clock_data;
import dev.jvmm.kvm.gen.kvm_cpuid2;
import dev.jvmm.kvm.gen.kvm_debugregs;
import dev.jvmm.kvm.gen.kvm_enable_cap;
import dev.jvmm.kvm.gen.kvm_fpu;
import dev.jvmm.kvm.gen.kvm_interrupt;
import dev.jvmm.kvm.gen.kvm_ioeventfd;
import dev.jvmm.kvm.gen.kvm_irq_level;
import dev.jvmm.kvm.gen.kvm_irq_routing;
import dev.jvmm.kvm.gen.kvm_irqchip;
import dev.jvmm.kvm.gen.kvm_irqfd;
import dev.jvmm.kvm.gen.kvm_lapic_state;
import dev.jvmm.kvm.gen.kvm_mp_state;
import dev.jvmm.kvm.gen.kvm_msi;
import dev.jvmm.kvm.gen.kvm_msr_list;
import dev.jvmm.kvm.gen.kvm_msrs;
import dev.jvmm.kvm.gen.kvm_pit_config;
import dev.jvmm.kvm.gen.kvm_pit_state2;
import dev.jvmm.kvm.gen.kvm_regs;
import dev.jvmm.kvm.gen.kvm_sregs;
import dev.jvmm.kvm.gen.kvm_translation;
import dev.jvmm.kvm.gen.kvm_userspace_memory_region;
import dev.jvmm.kvm.gen.kvm_vcpu_events;
import dev.jvmm.kvm.gen.kvm_xcrs;
import dev.jvmm.kvm.gen.kvm_xsave;

/**
 * KVM's ioctl request numbers (linux/kvm.h), encoded by hand from the generated struct sizes.
 * KvmIoctlsTest compiles a C program against the real headers and checks each one.
 */
public final class KvmIoctls {
    public static final int KVMIO = 0xAE;

    // /dev/kvm
    public static final long KVM_GET_API_VERSION = io(KVMIO, 0x00);
    public static final long KVM_CREATE_VM = io(KVMIO, 0x01);
    public static final long KVM_GET_MSR_INDEX_LIST = iowr(KVMIO, 0x02, kvm_msr_list.sizeof());
    public static final long KVM_CHECK_EXTENSION = io(KVMIO, 0x03);
    public static final long KVM_GET_VCPU_MMAP_SIZE = io(KVMIO, 0x04);
    public static final long KVM_GET_SUPPORTED_CPUID = iowr(KVMIO, 0x05, kvm_cpuid2.sizeof());

    // VM fd
    public static final long KVM_CREATE_VCPU = io(KVMIO, 0x41);
    public static final long KVM_SET_USER_MEMORY_REGION = iow(KVMIO, 0x46, kvm_userspace_memory_region.sizeof());
    public static final long KVM_SET_TSS_ADDR = io(KVMIO, 0x47);
    public static final long KVM_SET_IDENTITY_MAP_ADDR = iow(KVMIO, 0x48, 8);
    public static final long KVM_CREATE_IRQCHIP = io(KVMIO, 0x60);
    public static final long KVM_IRQ_LINE = iow(KVMIO, 0x61, kvm_irq_level.sizeof());
    public static final long KVM_GET_IRQCHIP = iowr(KVMIO, 0x62, kvm_irqchip.sizeof());
    // _IOR although the kernel reads the struct: a historical slip in linux/kvm.h that the number keeps.
    public static final long KVM_SET_IRQCHIP = ior(KVMIO, 0x63, kvm_irqchip.sizeof());
    public static final long KVM_IRQ_LINE_STATUS = iowr(KVMIO, 0x67, kvm_irq_level.sizeof());
    public static final long KVM_SET_GSI_ROUTING = iow(KVMIO, 0x6a, kvm_irq_routing.sizeof());
    public static final long KVM_IRQFD = iow(KVMIO, 0x76, kvm_irqfd.sizeof());
    public static final long KVM_CREATE_PIT2 = iow(KVMIO, 0x77, kvm_pit_config.sizeof());
    public static final long KVM_IOEVENTFD = iow(KVMIO, 0x79, kvm_ioeventfd.sizeof());
    public static final long KVM_SET_CLOCK = iow(KVMIO, 0x7b, kvm_clock_data.sizeof());
    public static final long KVM_GET_CLOCK = ior(KVMIO, 0x7c, kvm_clock_data.sizeof());
    public static final long KVM_GET_PIT2 = ior(KVMIO, 0x9f, kvm_pit_state2.sizeof());
    public static final long KVM_SET_PIT2 = iow(KVMIO, 0xa0, kvm_pit_state2.sizeof());
    public static final long KVM_ENABLE_CAP = iow(KVMIO, 0xa3, kvm_enable_cap.sizeof());
    public static final long KVM_SIGNAL_MSI = iow(KVMIO, 0xa5, kvm_msi.sizeof());

    // vCPU fd
    public static final long KVM_RUN = io(KVMIO, 0x80);
    public static final long KVM_GET_REGS = ior(KVMIO, 0x81, kvm_regs.sizeof());
    public static final long KVM_SET_REGS = iow(KVMIO, 0x82, kvm_regs.sizeof());
    public static final long KVM_GET_SREGS = ior(KVMIO, 0x83, kvm_sregs.sizeof());
    public static final long KVM_SET_SREGS = iow(KVMIO, 0x84, kvm_sregs.sizeof());
    public static final long KVM_TRANSLATE = iowr(KVMIO, 0x85, kvm_translation.sizeof());
    public static final long KVM_INTERRUPT = iow(KVMIO, 0x86, kvm_interrupt.sizeof());
    public static final long KVM_GET_MSRS = iowr(KVMIO, 0x88, kvm_msrs.sizeof());
    public static final long KVM_SET_MSRS = iow(KVMIO, 0x89, kvm_msrs.sizeof());
    public static final long KVM_GET_FPU = ior(KVMIO, 0x8c, kvm_fpu.sizeof());
    public static final long KVM_SET_FPU = iow(KVMIO, 0x8d, kvm_fpu.sizeof());
    public static final long KVM_GET_LAPIC = ior(KVMIO, 0x8e, kvm_lapic_state.sizeof());
    public static final long KVM_SET_LAPIC = iow(KVMIO, 0x8f, kvm_lapic_state.sizeof());
    public static final long KVM_SET_CPUID2 = iow(KVMIO, 0x90, kvm_cpuid2.sizeof());
    public static final long KVM_GET_CPUID2 = iowr(KVMIO, 0x91, kvm_cpuid2.sizeof());
    public static final long KVM_GET_MP_STATE = ior(KVMIO, 0x98, kvm_mp_state.sizeof());
    public static final long KVM_SET_MP_STATE = iow(KVMIO, 0x99, kvm_mp_state.sizeof());
    public static final long KVM_GET_VCPU_EVENTS = ior(KVMIO, 0x9f, kvm_vcpu_events.sizeof());
    public static final long KVM_SET_VCPU_EVENTS = iow(KVMIO, 0xa0, kvm_vcpu_events.sizeof());
    public static final long KVM_SET_TSC_KHZ = io(KVMIO, 0xa2);
    public static final long KVM_GET_TSC_KHZ = io(KVMIO, 0xa3);
    public static final long KVM_GET_DEBUGREGS = ior(KVMIO, 0xa1, kvm_debugregs.sizeof());
    public static final long KVM_SET_DEBUGREGS = iow(KVMIO, 0xa2, kvm_debugregs.sizeof());
    /** The number carries sizeof(struct kvm_xsave), 4 KiB; KVM copies that many bytes. */
    public static final long KVM_GET_XSAVE = ior(KVMIO, 0xa4, kvm_xsave.sizeof());
    /** KVM reads as many bytes as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM says, at least 4 KiB. */
    public static final long KVM_SET_XSAVE = iow(KVMIO, 0xa5, kvm_xsave.sizeof());

    public static final long KVM_GET_XCRS = ior(KVMIO, 0xa6, kvm_xcrs.sizeof());
    public static final long KVM_SET_XCRS = iow(KVMIO, 0xa7, kvm_xcrs.sizeof());
    /** Like KVM_GET_XSAVE, but writes KVM_CAP_XSAVE2's size (the number still names the 4 KiB struct). */
    public static final long KVM_GET_XSAVE2 = ior(KVMIO, 0xcf, kvm_xsave.sizeof());

    private KvmIoctls() {}
}
