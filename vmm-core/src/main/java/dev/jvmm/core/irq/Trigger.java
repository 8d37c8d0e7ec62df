package dev.jvmm.core.irq;

/**
 * How an interrupt pin is described to the guest (MP table, ACPI MADT), and so how a device signals it: ISA IRQs
 * are edge-triggered unless an override says otherwise, PCI INTx pins level-triggered.
 */
public enum Trigger {
    EDGE,
    LEVEL
}
