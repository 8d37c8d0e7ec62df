package dev.jvmm.devices.legacy;

import dev.jvmm.core.bus.BusDevice;

/**
 * Port 0x80, the POST-code port. Firmware writes progress codes to it and Linux writes it to wait about a
 * microsecond (its I/O delay); nothing listens. Writes are ignored without logging (Linux makes many) and
 * reads return all ones, as QEMU's port does and as an undecoded ISA port floats.
 */
public final class PostCodePort implements BusDevice {
    public static final int PORT = 0x80;

    @Override
    public long read(long offset, int size) {
        return size >= 8 ? -1L : (1L << (8 * size)) - 1;
    }

    @Override
    public void write(long offset, int size, long value) {
        // Deliberately nothing: a delay or a POST code with no display to show it.
    }
}
