package dev.jvmm.core.bus;

/**
 * A device's side of a port I/O or MMIO range. Offsets are relative to the start of the range the device
 * claimed; sizes are 1, 2, 4 or 8 bytes; values are little-endian in the low bytes of the long.
 * Called on vCPU threads, so implementations guard their own state.
 */
public interface BusDevice {
    long read(long offset, int size);

    void write(long offset, int size, long value);
}
