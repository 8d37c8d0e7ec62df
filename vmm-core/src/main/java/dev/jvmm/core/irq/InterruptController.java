package dev.jvmm.core.irq;

/** What device transports need of the machine's interrupt controller. */
public interface InterruptController {
    /** The line for a GSI (0-23 on the IOAPIC). */
    IrqLine line(int gsi);

    /** A new MSI vector; the caller closes it when the device goes away. */
    MsiRoute msiRoute();

    /** Injects one MSI without a route (slow path: an ioctl each time). */
    void signalMsi(long address, int data);
}
