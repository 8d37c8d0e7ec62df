package dev.jvmm.devices.virtio;

import dev.jvmm.core.irq.InterruptEvent;
import dev.jvmm.core.irq.Trigger;
import java.util.function.BooleanSupplier;

/**
 * A signalled interrupt that counts its triggers and models KVM's pin: an edge leaves nothing behind; a level stays
 * asserted until {@link #eoi}, which asserts it again while the device says an event is pending (what a resampling
 * irqfd and KvmInterrupts do together).
 */
public final class RecordingInterruptEvent implements InterruptEvent {
    private final Trigger trigger;
    private final BooleanSupplier pending;
    private int triggers;
    private boolean asserted, closed;

    public RecordingInterruptEvent(Trigger trigger, BooleanSupplier pending) {
        this.trigger = trigger;
        this.pending = pending;
    }

    @Override
    public synchronized void trigger() {
        if (closed) return;
        triggers++;
        if (trigger == Trigger.LEVEL) asserted = true;
        notifyAll();
    }

    /** The guest's end of interrupt. */
    public void eoi() {
        if (trigger == Trigger.EDGE) return;
        synchronized (this) {
            asserted = false;
        }
        if (pending.getAsBoolean()) trigger(); // outside this lock: pending takes the device's
    }

    public synchronized int triggers() {
        return triggers;
    }

    /** Whether a level pin is asserted (always false for an edge). */
    public synchronized boolean isAsserted() {
        return asserted;
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    /** Waits until there have been at least {@code count} triggers; false after the timeout. */
    public synchronized boolean awaitTriggers(int count, long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        while (triggers < count) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return false;
            wait(left);
        }
        return true;
    }

    @Override
    public synchronized void close() {
        closed = true;
    }
}
