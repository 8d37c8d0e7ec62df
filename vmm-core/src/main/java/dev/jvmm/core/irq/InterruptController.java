package dev.jvmm.core.irq;

import java.util.function.BooleanSupplier;

/** What device transports need of the machine's interrupt controller. */
public interface InterruptController {
    /** The line for a GSI (0-23 on the IOAPIC). */
    IrqLine line(int gsi);

    /**
     * A signalled interrupt on IOAPIC pin {@code gsi} (0-23), for a device whose guest driver learns why from the
     * device's registers. EDGE: each {@link InterruptEvent#trigger} is one edge. LEVEL: a trigger asserts the pin
     * until the guest's end of interrupt (EOI); then, while {@code pending} says the device still holds an event
     * the guest has not acknowledged, it is asserted again ({@code pending} is called from another thread and
     * is not used for EDGE). The caller closes the event; what is left open is closed with the VM.
     */
    InterruptEvent event(int gsi, Trigger trigger, BooleanSupplier pending);

    /** A new MSI vector; the caller closes it when the device goes away. */
    MsiRoute msiRoute();

    /** Injects one MSI without a route (slow path: an ioctl each time). */
    void signalMsi(long address, int data);
}
