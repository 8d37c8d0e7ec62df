package dev.jvmm.core;

/** Names of KVM_EXIT_* values, for reports. */
public final class ExitReason {
    private static final String[] NAMES = {
        "UNKNOWN",
        "EXCEPTION",
        "IO",
        "HYPERCALL",
        "DEBUG",
        "HLT",
        "MMIO",
        "IRQ_WINDOW_OPEN",
        "SHUTDOWN",
        "FAIL_ENTRY",
        "INTR",
        "SET_TPR",
        "TPR_ACCESS",
        "S390_SIEIC",
        "S390_RESET",
        "DCR",
        "NMI",
        "INTERNAL_ERROR",
        "OSI",
        "PAPR_HCALL",
        "S390_UCONTROL",
        "WATCHDOG",
        "S390_TSCH",
        "EPR",
        "SYSTEM_EVENT",
        "S390_STSI",
        "IOAPIC_EOI",
        "HYPERV",
        "ARM_NISV",
        "X86_RDMSR",
        "X86_WRMSR",
        "DIRTY_RING_FULL",
        "AP_RESET_HOLD",
        "X86_BUS_LOCK",
        "XEN",
        "RISCV_SBI",
        "RISCV_CSR",
        "NOTIFY"
    };

    private ExitReason() {}

    public static String name(int reason) {
        return reason >= 0 && reason < NAMES.length ? NAMES[reason] : "EXIT_" + reason;
    }
}
