package dev.jvmm.devices.pci;

/**
 * No room for another function on PCI bus 0: every slot is taken, or the MMIO window cannot place one of its
 * BARs. A machine builder reports it as too many devices; it stays an {@link IllegalStateException} for callers
 * that treat it as one.
 */
public final class PciBusFullException extends IllegalStateException {
    public PciBusFullException(String message) {
        super(message);
    }
}
