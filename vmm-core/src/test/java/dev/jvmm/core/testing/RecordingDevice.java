package dev.jvmm.core.testing;

import dev.jvmm.core.bus.BusDevice;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;

/** A test device that records every access and answers reads from a supplier. */
public final class RecordingDevice implements BusDevice {
    public record Access(boolean write, long offset, int size, long value) {}

    private final List<Access> accesses = new ArrayList<>();
    private final LongSupplier readValue;

    public RecordingDevice(LongSupplier readValue) {
        this.readValue = readValue;
    }

    @Override
    public synchronized long read(long offset, int size) {
        long v = readValue.getAsLong();
        accesses.add(new Access(false, offset, size, v));
        return v;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        accesses.add(new Access(true, offset, size, value));
        notifyAll();
    }

    public synchronized List<Access> accesses() {
        return new ArrayList<>(accesses);
    }

    /** The bytes written, in order (each write's low byte), as a string. */
    public synchronized String writtenText() {
        StringBuilder sb = new StringBuilder();
        for (Access a : accesses) if (a.write()) sb.append((char) (a.value() & 0xff));
        return sb.toString();
    }

    /** Waits until at least n writes were recorded. */
    public synchronized boolean awaitWrites(int n, long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        while (accesses.stream().filter(Access::write).count() < n) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return false;
            wait(left);
        }
        return true;
    }
}
