package dev.jvmm.devices.virtio;

import dev.jvmm.core.bus.Bus;

/** A guest's virtio-mmio driver over an MMIO bus (32-bit register accesses, as the spec requires). */
public final class MmioTestDriver implements TestDriver {
    public final Bus bus;
    public final long base;
    public final RecordingInterruptEvent irq;
    private final AutoCloseable owner;

    public MmioTestDriver(Bus bus, long base, RecordingInterruptEvent irq, AutoCloseable owner) {
        this.bus = bus;
        this.base = base;
        this.irq = irq;
        this.owner = owner;
    }

    public int reg(int offset) {
        return (int) bus.read(base + offset, 4);
    }

    public void reg(int offset, int value) {
        bus.write(base + offset, 4, value & 0xffffffffL);
    }

    @Override
    public int deviceId() {
        return reg(0x008);
    }

    @Override
    public long deviceFeatures() {
        reg(0x014, 0);
        long lo = reg(0x010) & 0xffffffffL;
        reg(0x014, 1);
        long hi = reg(0x010) & 0xffffffffL;
        return lo | hi << 32;
    }

    @Override
    public boolean negotiate(long features) {
        reg(0x024, 0);
        reg(0x020, (int) features);
        reg(0x024, 1);
        reg(0x020, (int) (features >>> 32));
        writeStatus(status() | DeviceStatus.FEATURES_OK);
        return (status() & DeviceStatus.FEATURES_OK) != 0;
    }

    @Override
    public int queueMaxSize(int index) {
        reg(0x030, index);
        return reg(0x034);
    }

    @Override
    public void setupQueue(int index, DriverQueue q) {
        reg(0x030, index);
        if (reg(0x044) != 0) throw new AssertionError("queue already ready");
        reg(0x038, q.size);
        reg(0x080, (int) q.desc);
        reg(0x084, (int) (q.desc >>> 32));
        reg(0x090, (int) q.avail);
        reg(0x094, (int) (q.avail >>> 32));
        reg(0x0a0, (int) q.used);
        reg(0x0a4, (int) (q.used >>> 32));
        reg(0x044, 1);
    }

    @Override
    public void driverOk() {
        writeStatus(status() | DeviceStatus.DRIVER_OK);
    }

    @Override
    public int status() {
        return reg(0x070);
    }

    @Override
    public void writeStatus(int status) {
        reg(0x070, status);
    }

    @Override
    public void notifyQueue(int index) {
        reg(0x050, index);
    }

    private boolean awaitBit(int bit, long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        while (true) {
            int seen = irq.triggers();
            int s = reg(0x060);
            if ((s & bit) != 0) {
                reg(0x064, bit);
                irq.eoi();
                return true;
            }
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return false;
            irq.awaitTriggers(seen + 1, Math.min(left, 10));
        }
    }

    @Override
    public boolean awaitQueueInterrupt(int index, long millis) throws InterruptedException {
        return awaitBit(1, millis);
    }

    @Override
    public boolean awaitConfigInterrupt(long millis) throws InterruptedException {
        return awaitBit(2, millis);
    }

    @Override
    public long readConfigAt(int offset, int size) {
        return bus.read(base + 0x100 + offset, size);
    }

    @Override
    public AutoCloseable owner() {
        return owner;
    }
}
