package dev.jvmm.devices.legacy;

import dev.jvmm.core.bus.BusDevice;
import java.io.OutputStream;

/**
 * QEMU's debugcon: every byte written to the port goes to an output; a read returns the port number (0xe9),
 * which is how guests detect the device. Output is batched off the vCPU thread ({@link OutputPump}).
 */
public final class DebugCon implements BusDevice, AutoCloseable {
    public static final int DEFAULT_PORT = 0xe9;
    /** What a read returns wherever the device sits (QEMU's readback default). */
    public static final int READBACK = 0xe9;

    private final OutputPump output;

    /** A debugcon writing to out; register it on one port (usually {@link #DEFAULT_PORT}). */
    public DebugCon(OutputStream out) {
        this.output = new OutputPump("debugcon", out);
    }

    @Override
    public long read(long offset, int size) {
        return offset == 0 ? READBACK : 0xff;
    }

    @Override
    public void write(long offset, int size, long value) {
        // A wider write reaches only this one-byte port; QEMU likewise prints its low byte.
        if (offset == 0) output.put((byte) value);
    }

    public void flush() {
        output.flush();
    }

    @Override
    public void close() {
        output.close();
    }
}
