package dev.jvmm.devices.virtio;

import dev.jvmm.core.irq.IrqLine;

/** An interrupt line that remembers its level and how often it was raised. */
public final class RecordingIrqLine implements IrqLine {
    private boolean high;
    private int raises;

    @Override
    public synchronized void set(boolean high) {
        if (high && !this.high) raises++;
        this.high = high;
        notifyAll();
    }

    public synchronized boolean isHigh() {
        return high;
    }

    public synchronized int raises() {
        return raises;
    }

    /** Waits until the line is high; false after the timeout. */
    public synchronized boolean awaitHigh(long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        while (!high) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return false;
            wait(left);
        }
        return true;
    }
}
