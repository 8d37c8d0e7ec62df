package dev.jvmm.devices.virtio;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.devices.pci.PciHostBridge;

/**
 * A guest's modern virtio-pci driver: finds the device through config mechanism #1, reads the virtio
 * capabilities, enables memory decoding, and uses MSI-X (one vector per queue, vector 0 for config changes)
 * or INTx with the ISR register.
 */
public final class PciTestDriver implements TestDriver {
    public static final long MSI_ADDRESS = 0xfee0_0000L;
    public static final int MSI_DATA_BASE = 0x40;

    public final Bus mmio, pio;
    public final FakeInterruptController irqs;
    public final int slot;
    public final boolean msix;
    public final int intxGsi;
    private final AutoCloseable owner;
    public long bar0;
    public int common = -1, notify = -1, isr = -1, device = -1, pciCfg = -1, msixCap = -1;
    public int notifyMultiplier;
    private int configAcked;
    private final int[] queueAcked = new int[64];

    public PciTestDriver(
            Bus mmio, Bus pio, FakeInterruptController irqs, int slot, int intxGsi, boolean msix, AutoCloseable owner) {
        this.mmio = mmio;
        this.pio = pio;
        this.irqs = irqs;
        this.slot = slot;
        this.intxGsi = intxGsi;
        this.msix = msix;
        this.owner = owner;
        discover();
    }

    public int cfg(int offset, int size) {
        pio.write(PciHostBridge.CONFIG_ADDRESS_PORT, 4, 0x8000_0000L | (slot << 11) | (offset & 0xfc));
        return (int) pio.read(PciHostBridge.CONFIG_ADDRESS_PORT + 4 + (offset & 3), size);
    }

    public void cfg(int offset, int size, int value) {
        pio.write(PciHostBridge.CONFIG_ADDRESS_PORT, 4, 0x8000_0000L | (slot << 11) | (offset & 0xfc));
        pio.write(PciHostBridge.CONFIG_ADDRESS_PORT + 4 + (offset & 3), size, value & 0xffffffffL);
    }

    private void discover() {
        if ((cfg(0, 2) & 0xffff) != 0x1af4) throw new AssertionError("no virtio device in slot " + slot);
        for (int cap = cfg(0x34, 1) & 0xff; cap != 0; cap = cfg(cap + 1, 1) & 0xff) {
            int id = cfg(cap, 1) & 0xff;
            if (id == 0x11) msixCap = cap;
            if (id != 0x09) continue;
            int type = cfg(cap + 3, 1) & 0xff;
            int offset = cfg(cap + 8, 4);
            switch (type) {
                case 1 -> {
                    if (common < 0) common = offset;
                }
                case 2 -> {
                    if (notify < 0) {
                        notify = offset;
                        notifyMultiplier = cfg(cap + 16, 4);
                    }
                }
                case 3 -> {
                    if (isr < 0) isr = offset;
                }
                case 4 -> {
                    if (device < 0) device = offset;
                }
                case 5 -> {
                    if (pciCfg < 0) pciCfg = cap;
                }
                default -> {}
            }
        }
        long lo = cfg(0x10, 4) & 0xfffffff0L, hi = cfg(0x14, 4) & 0xffffffffL;
        bar0 = lo | hi << 32;
        cfg(0x04, 2, cfg(0x04, 2) | 0x6); // memory decoding and bus mastering
        if (msix) {
            int vectors = (cfg(msixCap + 2, 2) & 0x7ff) + 1;
            int table = cfg(msixCap + 4, 4) & ~7;
            for (int v = 0; v < vectors; v++) {
                long e = bar0 + table + 16L * v;
                mmio.write(e, 4, MSI_ADDRESS);
                mmio.write(e + 4, 4, 0);
                mmio.write(e + 8, 4, MSI_DATA_BASE + v);
                mmio.write(e + 12, 4, 0); // unmask
            }
            cfg(msixCap + 2, 2, cfg(msixCap + 2, 2) | 0x8000);
        }
    }

    public long common(int off, int size) {
        return mmio.read(bar0 + common + off, size);
    }

    public void common(int off, int size, long v) {
        mmio.write(bar0 + common + off, size, v);
    }

    @Override
    public int deviceId() {
        return (cfg(2, 2) & 0xffff) - 0x1040;
    }

    @Override
    public long deviceFeatures() {
        common(0x00, 4, 0);
        long lo = common(0x04, 4);
        common(0x00, 4, 1);
        return lo | common(0x04, 4) << 32;
    }

    @Override
    public boolean negotiate(long features) {
        common(0x08, 4, 0);
        common(0x0c, 4, features & 0xffffffffL);
        common(0x08, 4, 1);
        common(0x0c, 4, features >>> 32);
        writeStatus(status() | DeviceStatus.FEATURES_OK);
        if (msix) {
            common(0x10, 2, 0);
            if (common(0x10, 2) != 0) throw new AssertionError("config vector not accepted");
        }
        return (status() & DeviceStatus.FEATURES_OK) != 0;
    }

    @Override
    public int queueMaxSize(int index) {
        common(0x16, 2, index);
        return (int) common(0x18, 2);
    }

    @Override
    public void setupQueue(int index, DriverQueue q) {
        common(0x16, 2, index);
        if (common(0x1c, 2) != 0) throw new AssertionError("queue already enabled");
        common(0x18, 2, q.size);
        common(0x20, 4, q.desc & 0xffffffffL);
        common(0x24, 4, q.desc >>> 32);
        common(0x28, 8, q.avail); // a 64-bit access works too
        common(0x30, 4, q.used & 0xffffffffL);
        common(0x34, 4, q.used >>> 32);
        if (msix) {
            common(0x1a, 2, index + 1);
            if (common(0x1a, 2) != index + 1) throw new AssertionError("queue vector not accepted");
        }
        common(0x1c, 2, 1);
    }

    @Override
    public void driverOk() {
        writeStatus(status() | DeviceStatus.DRIVER_OK);
    }

    @Override
    public int status() {
        return (int) common(0x14, 1);
    }

    @Override
    public void writeStatus(int status) {
        common(0x14, 1, status);
    }

    public long notifyAddress(int queue) {
        common(0x16, 2, queue);
        return bar0 + notify + common(0x1e, 2) * notifyMultiplier;
    }

    @Override
    public void notifyQueue(int index) {
        mmio.write(notifyAddress(index), 2, index);
    }

    private boolean awaitMsi(int data, int[] acked, int slotIndex, long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        while (irqs.deliveredWithData(data) <= acked[slotIndex]) {
            if (System.currentTimeMillis() > deadline) return false;
            Thread.sleep(1);
        }
        acked[slotIndex] = irqs.deliveredWithData(data);
        return true;
    }

    private boolean awaitIsr(int bit, long millis) throws InterruptedException {
        RecordingIrqLine line = (RecordingIrqLine) irqs.line(intxGsi);
        long deadline = System.currentTimeMillis() + millis;
        int pendingBits = 0;
        while (true) {
            if (line.isHigh()) pendingBits |= (int) mmio.read(bar0 + isr, 1);
            if ((pendingBits & bit) != 0) return true;
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return false;
            line.awaitHigh(Math.min(left, 10));
        }
    }

    @Override
    public boolean awaitQueueInterrupt(int index, long millis) throws InterruptedException {
        return msix ? awaitMsi(MSI_DATA_BASE + index + 1, queueAcked, index, millis) : awaitIsr(1, millis);
    }

    @Override
    public boolean awaitConfigInterrupt(long millis) throws InterruptedException {
        if (!msix) return awaitIsr(2, millis);
        int[] acked = {configAcked};
        boolean ok = awaitMsi(MSI_DATA_BASE, acked, 0, millis);
        configAcked = acked[0];
        return ok;
    }

    @Override
    public long readConfigAt(int offset, int size) {
        return mmio.read(bar0 + device + offset, size);
    }

    @Override
    public AutoCloseable owner() {
        return owner;
    }
}
