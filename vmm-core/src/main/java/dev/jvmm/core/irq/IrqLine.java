package dev.jvmm.core.irq;

/** A legacy interrupt line (a GSI of the PIC/IOAPIC). */
public interface IrqLine {
    /** Drives the line high or low (level-triggered devices hold it high until the guest acknowledges). */
    void set(boolean high);

    /** An edge: high, then low. */
    default void pulse() {
        set(true);
        set(false);
    }
}
