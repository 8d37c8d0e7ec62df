package dev.jvmm.bench;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.irq.InterruptEvent;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * The register side of the benchmarks' Java drivers (NetGuest, BlkGuest): a device on virtio-mmio on a bus of its own,
 * initialised by register writes as a guest's driver does it (virtio 1.2, 3.1.1), its only interrupt waking the driver
 * thread, which then polls its used rings.
 */
final class MmioDriver implements AutoCloseable {
    static final long BASE = 0xd000_0000L;
    private static final int REG_DRV_FEATURES = 0x020,
            REG_DRV_FEATURES_SEL = 0x024,
            REG_QUEUE_SEL = 0x030,
            REG_QUEUE_NUM = 0x038,
            REG_QUEUE_READY = 0x044,
            REG_NOTIFY = 0x050,
            REG_INT_STATUS = 0x060,
            REG_INT_ACK = 0x064,
            REG_STATUS = 0x070,
            REG_QUEUE_DESC = 0x080,
            REG_QUEUE_DRIVER = 0x090,
            REG_QUEUE_DEVICE = 0x0a0;

    private final Bus bus = new Bus("mmio");
    private final VirtioMmioTransport transport;
    private volatile Thread waiter;

    private final InterruptController irqs = new InterruptController() {
        @Override
        public InterruptEvent event(int gsi, Trigger trigger, BooleanSupplier pending) {
            return new InterruptEvent() {
                @Override
                public void trigger() {
                    Thread t = waiter;
                    if (t != null) LockSupport.unpark(t);
                }

                @Override
                public void close() {}
            };
        }

        @Override
        public IrqLine line(int gsi) {
            throw new UnsupportedOperationException();
        }

        @Override
        public MsiRoute msiRoute() {
            throw new UnsupportedOperationException();
        }

        @Override
        public void signalMsi(long address, int data) {
            throw new UnsupportedOperationException();
        }
    };

    /** Attaches {@code device} and negotiates {@code features} (VERSION_1 added); the queues come next. */
    MmioDriver(String name, VirtioDevice device, GuestMemory memory, long features) {
        transport = new VirtioMmioTransport(name, device, memory, irqs, 5, Trigger.EDGE);
        bus.register(name, BASE, VirtioMmioTransport.WINDOW_SIZE, transport);
        reg(REG_STATUS, 0);
        reg(REG_STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        long accepted = features | VirtioFeatures.bit(VirtioFeatures.VERSION_1);
        reg(REG_DRV_FEATURES_SEL, 0);
        reg(REG_DRV_FEATURES, (int) accepted);
        reg(REG_DRV_FEATURES_SEL, 1);
        reg(REG_DRV_FEATURES, (int) (accepted >>> 32));
        reg(REG_STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        if ((reg(REG_STATUS) & DeviceStatus.FEATURES_OK) == 0)
            throw new IllegalStateException("device refused features 0x" + Long.toHexString(accepted));
    }

    /** Sets up and enables queue {@code index} at the given guest addresses. */
    void queue(int index, int size, long desc, long avail, long used) {
        reg(REG_QUEUE_SEL, index);
        reg(REG_QUEUE_NUM, size);
        int[] offsets = {REG_QUEUE_DESC, REG_QUEUE_DRIVER, REG_QUEUE_DEVICE};
        long[] addrs = {desc, avail, used};
        for (int i = 0; i < 3; i++) {
            reg(offsets[i], (int) addrs[i]);
            reg(offsets[i] + 4, (int) (addrs[i] >>> 32));
        }
        reg(REG_QUEUE_READY, 1);
    }

    /** The last step of initialisation: the device is live. */
    void driverOk() {
        reg(
                REG_STATUS,
                DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    }

    void notify(int queue) {
        bus.write(BASE + REG_NOTIFY, 4, queue);
    }

    /**
     * Sleeps until the device interrupts (or {@code micros} pass) unless one is pending or {@code nothingNew} says
     * there is work already, then acknowledges the interrupt.
     */
    void awaitInterrupt(long micros, BooleanSupplier nothingNew) {
        waiter = Thread.currentThread();
        int s = reg(REG_INT_STATUS);
        if (s == 0 && nothingNew.getAsBoolean()) LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(micros));
        s = reg(REG_INT_STATUS);
        if (s != 0) reg(REG_INT_ACK, s);
    }

    private int reg(int offset) {
        return (int) bus.read(BASE + offset, 4);
    }

    private void reg(int offset, int value) {
        bus.write(BASE + offset, 4, value & 0xffffffffL);
    }

    /** Resets the device and closes its transport. */
    @Override
    public void close() {
        reg(REG_STATUS, 0);
        transport.close();
    }
}
