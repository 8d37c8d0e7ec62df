package dev.jvmm.core;

import dev.jvmm.core.event.IoEventRegistry.Space;

/** Where a guest write lands for KVM_IOEVENTFD: an I/O port or a guest-physical MMIO address. */
public record IoEventAddress(Space space, long address) {
    public IoEventAddress {
        if (space == null) throw new NullPointerException("space");
        if (space == Space.PIO && (address < 0 || address > 0xffff))
            throw new IllegalArgumentException(String.format("I/O port 0x%x is outside 0-0xffff", address));
    }

    public static IoEventAddress pio(int port) {
        return new IoEventAddress(Space.PIO, port);
    }

    public static IoEventAddress mmio(long address) {
        return new IoEventAddress(Space.MMIO, address);
    }
}
