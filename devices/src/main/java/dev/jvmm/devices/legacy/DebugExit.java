package dev.jvmm.devices.legacy;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VmControl;
import dev.jvmm.core.bus.BusDevice;
import java.util.Objects;

/**
 * QEMU's isa-debug-exit: a write of value v to its ports ends the run with {@link ExitStatus.GuestExit}(v),
 * whose process exit code is (v &lt;&lt; 1) | 1, so test kernels written for QEMU report the same way.
 * Reads return all ones (QEMU's device has no read side).
 */
public final class DebugExit implements BusDevice {
    public static final int DEFAULT_IOBASE = 0xf4;
    public static final int DEFAULT_IOSIZE = 4;

    private final VmControl control;
    private final int iobase;
    private final int iosize;

    /** The device at QEMU's defaults (iobase 0xf4, iosize 4). */
    public DebugExit(VmControl control) {
        this(control, DEFAULT_IOBASE, DEFAULT_IOSIZE);
    }

    public DebugExit(VmControl control, int iobase, int iosize) {
        if (iobase < 0 || iobase > 0xffff)
            throw new IllegalArgumentException(
                    "debug-exit port 0x" + Integer.toHexString(iobase) + " is not an I/O port (0-0xffff)");
        if (iosize < 1 || iosize > 4 || iobase + iosize > 0x10000)
            throw new IllegalArgumentException("debug-exit size " + iosize + " at port 0x" + Integer.toHexString(iobase)
                    + " must be 1, 2 or 4 ports within 0-0xffff");
        this.control = Objects.requireNonNull(control, "control");
        this.iobase = iobase;
        this.iosize = iosize;
    }

    public int iobase() {
        return iobase;
    }

    public int iosize() {
        return iosize;
    }

    @Override
    public long read(long offset, int size) {
        return size >= 8 ? -1L : (1L << (8 * size)) - 1;
    }

    @Override
    public void write(long offset, int size, long value) {
        long mask = size >= 8 ? -1L : (1L << (8 * size)) - 1;
        control.requestExit(new ExitStatus.GuestExit((int) (value & mask)));
    }
}
