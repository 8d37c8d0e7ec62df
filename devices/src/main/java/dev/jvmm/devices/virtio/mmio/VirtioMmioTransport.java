package dev.jvmm.devices.virtio.mmio;

import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.event.IoEventRegistry;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.irq.InterruptEvent;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioTransport;
import dev.jvmm.devices.virtio.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-mmio version 2 (virtio 1.2, 4.2): a 4 KiB register window with the device configuration at 0x100,
 * one interrupt pin, signalled once per event through the interrupt controller (an irqfd with KVM, as Firecracker
 * and Cloud Hypervisor do) and edge- or level-triggered as the machine describes the pin to the guest. Claim
 * {@link #WINDOW_SIZE} bytes of the MMIO bus at the device's base address and announce it to Linux with
 * {@link #cmdlineFragment}.
 */
public final class VirtioMmioTransport extends VirtioTransport implements BusDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioMmioTransport.class);

    public static final long WINDOW_SIZE = 0x1000;
    public static final int MAGIC = 0x74726976; // "virt"
    public static final int VERSION = 2;
    /** "JVMM", little-endian: the subsystem vendor ID. */
    public static final int VENDOR_ID = 0x4d4d564a;

    static final int MAGIC_VALUE = 0x000,
            VERSION_REG = 0x004,
            DEVICE_ID = 0x008,
            VENDOR_ID_REG = 0x00c,
            DEVICE_FEATURES = 0x010,
            DEVICE_FEATURES_SEL = 0x014,
            DRIVER_FEATURES = 0x020,
            DRIVER_FEATURES_SEL = 0x024,
            QUEUE_SEL = 0x030,
            QUEUE_NUM_MAX = 0x034,
            QUEUE_NUM = 0x038,
            QUEUE_READY = 0x044,
            QUEUE_NOTIFY = 0x050,
            INTERRUPT_STATUS = 0x060,
            INTERRUPT_ACK = 0x064,
            STATUS = 0x070,
            QUEUE_DESC_LOW = 0x080,
            QUEUE_DESC_HIGH = 0x084,
            QUEUE_DRIVER_LOW = 0x090,
            QUEUE_DRIVER_HIGH = 0x094,
            QUEUE_DEVICE_LOW = 0x0a0,
            QUEUE_DEVICE_HIGH = 0x0a4,
            SHM_SEL = 0x0ac,
            SHM_LEN_LOW = 0x0b0,
            SHM_LEN_HIGH = 0x0b4,
            SHM_BASE_LOW = 0x0b8,
            SHM_BASE_HIGH = 0x0bc,
            QUEUE_RESET = 0x0c0,
            CONFIG_GENERATION = 0x0fc,
            CONFIG = 0x100;
    public static final int INT_USED_BUFFER = 1, INT_CONFIG_CHANGE = 2;

    private final InterruptEvent irq;
    private final Object irqLock = new Object();
    private int interruptStatus; // guarded by irqLock
    private int deviceFeaturesSel, driverFeaturesSel, queueSel;
    private IoEventRegistry.Registration ioEvent;

    /** A transport interrupting on IOAPIC pin {@code gsi}, described to the guest as {@code trigger}. */
    public VirtioMmioTransport(
            String name, VirtioDevice device, GuestMemory memory, InterruptController irqs, int gsi, Trigger trigger) {
        super(name, device, memory);
        InterruptEvent event;
        try {
            event = irqs.event(gsi, trigger, this::interruptPending);
        } catch (RuntimeException e) {
            super.close(); // the notification eventfd
            throw e;
        }
        this.irq = event;
    }

    /**
     * The Linux command line option announcing this device at {@code base} with interrupt {@code irq}:
     * {@code virtio_mmio.device=4K@0xd0000000:5}.
     */
    public static String cmdlineFragment(long base, int irq) {
        return String.format("virtio_mmio.device=%dK@0x%x:%d", WINDOW_SIZE / 1024, base, irq);
    }

    /**
     * Makes guest writes to QueueNotify at {@code base + 0x50} complete in the kernel (ioeventfd): any
     * written value wakes the I/O thread, which looks at every queue.
     */
    public synchronized void registerIoEvent(IoEventRegistry registry, long base) {
        if (ioEvent != null) ioEvent.close();
        ioEvent = registry.register(IoEventRegistry.Space.MMIO, base + QUEUE_NOTIFY, 4, notifyEvent());
    }

    /** The guest-physical address of QueueNotify for a window at {@code base}. */
    public static long notifyAddress(long base) {
        return base + QUEUE_NOTIFY;
    }

    public int interruptStatus() {
        synchronized (irqLock) {
            return interruptStatus;
        }
    }

    /** Whether the guest has an event to acknowledge: a level-triggered pin is asserted again after EOI while so. */
    private boolean interruptPending() {
        return interruptStatus() != 0;
    }

    @Override
    public long read(long offset, int size) {
        if (offset >= CONFIG) {
            return readDeviceConfig((int) (offset - CONFIG), size);
        }
        if (size != 4 || (offset & 3) != 0) {
            LOG.debug(
                    "{}: {}-byte read at 0x{} ignored (registers are 32-bit)", name(), size, Long.toHexString(offset));
            return 0;
        }
        return readRegister((int) offset) & 0xffffffffL;
    }

    private synchronized int readRegister(int offset) {
        Virtqueue q = queue(queueSel);
        return switch (offset) {
            case MAGIC_VALUE -> MAGIC;
            case VERSION_REG -> VERSION;
            case DEVICE_ID -> device.deviceType();
            case VENDOR_ID_REG -> VENDOR_ID;
            case DEVICE_FEATURES -> deviceFeatureWord(deviceFeaturesSel);
            case QUEUE_NUM_MAX -> q == null ? 0 : q.maxSize();
            case QUEUE_READY -> q != null && q.isReady() ? 1 : 0;
            case INTERRUPT_STATUS -> interruptStatus();
            case STATUS -> status();
            case SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH -> -1; // no shared memory regions
            case QUEUE_RESET -> 0;
            case CONFIG_GENERATION -> configGeneration();
            default -> 0;
        };
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset >= CONFIG) {
            writeDeviceConfig((int) (offset - CONFIG), size, value);
            return;
        }
        if (size != 4 || (offset & 3) != 0) {
            LOG.debug(
                    "{}: {}-byte write at 0x{} ignored (registers are 32-bit)", name(), size, Long.toHexString(offset));
            return;
        }
        int v = (int) value;
        if (offset == QUEUE_NOTIFY) { // the hot path: no lock
            notifyFromBus();
            return;
        }
        if (offset == INTERRUPT_ACK) {
            acknowledge(v);
            return;
        }
        writeRegister((int) offset, v);
    }

    private synchronized void writeRegister(int offset, int v) {
        Virtqueue q = queue(queueSel);
        boolean qw = queueConfigWritable(q);
        switch (offset) {
            case DEVICE_FEATURES_SEL -> deviceFeaturesSel = v;
            case DRIVER_FEATURES -> setDriverFeatureWord(driverFeaturesSel, v);
            case DRIVER_FEATURES_SEL -> driverFeaturesSel = v;
            case QUEUE_SEL -> queueSel = v;
            case QUEUE_NUM -> {
                if (qw) q.setSize(v);
            }
            case QUEUE_READY -> {
                // Ready may be set before DRIVER_OK; clearing it is only meaningful before activation too.
                if (q != null && (status() & dev.jvmm.devices.virtio.DeviceStatus.DRIVER_OK) == 0) q.setReady(v == 1);
            }
            case QUEUE_DESC_LOW -> {
                if (qw) q.setDescAddress(low(q.descAddress(), v));
            }
            case QUEUE_DESC_HIGH -> {
                if (qw) q.setDescAddress(high(q.descAddress(), v));
            }
            case QUEUE_DRIVER_LOW -> {
                if (qw) q.setDriverAddress(low(q.driverAddress(), v));
            }
            case QUEUE_DRIVER_HIGH -> {
                if (qw) q.setDriverAddress(high(q.driverAddress(), v));
            }
            case QUEUE_DEVICE_LOW -> {
                if (qw) q.setDeviceAddress(low(q.deviceAddress(), v));
            }
            case QUEUE_DEVICE_HIGH -> {
                if (qw) q.setDeviceAddress(high(q.deviceAddress(), v));
            }
            case STATUS -> writeStatus(v);
            default ->
                LOG.debug(
                        "{}: write 0x{} to register 0x{} ignored",
                        name(),
                        Integer.toHexString(v),
                        Integer.toHexString(offset));
        }
    }

    private static long low(long old, int v) {
        return (old & 0xffffffff00000000L) | (v & 0xffffffffL);
    }

    private static long high(long old, int v) {
        return (old & 0xffffffffL) | ((long) v << 32);
    }

    private void acknowledge(int bits) {
        synchronized (irqLock) {
            interruptStatus &= ~bits; // a level-triggered pin is dropped at the guest's EOI, not here
        }
    }

    private void raise(int bit) {
        synchronized (irqLock) {
            interruptStatus |= bit;
        }
        // After the status is set, so that the guest's handler, and the re-check at EOI, see the event.
        irq.trigger();
    }

    @Override
    protected void raiseQueueInterrupt(int index) {
        raise(INT_USED_BUFFER);
    }

    @Override
    protected void raiseConfigInterrupt() {
        raise(INT_CONFIG_CHANGE);
    }

    @Override
    protected void saveTransportState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u32(deviceFeaturesSel).u32(driverFeaturesSel).u32(queueSel).u8(interruptStatus());
    }

    /**
     * The pin is signalled again when an interrupt was pending: the restored interrupt controller may hold it, or
     * not (its irqfd is new), and a spurious virtio interrupt costs the driver one look at InterruptStatus.
     */
    @Override
    protected void restoreTransportState(dev.jvmm.core.snapshot.StateInput in) {
        deviceFeaturesSel = in.u32("device features select");
        driverFeaturesSel = in.u32("driver features select");
        queueSel = in.u32("queue select");
        int pending = in.u8("interrupt status") & (INT_USED_BUFFER | INT_CONFIG_CHANGE);
        synchronized (irqLock) {
            interruptStatus = pending;
        }
        if (pending != 0) irq.trigger();
    }

    @Override
    protected void resetInterrupts() {
        synchronized (irqLock) {
            interruptStatus = 0; // an asserted level pin drops at the next EOI and is not asserted again
        }
        deviceFeaturesSel = driverFeaturesSel = queueSel = 0;
    }

    @Override
    public synchronized void close() {
        if (ioEvent != null) {
            ioEvent.close();
            ioEvent = null;
        }
        super.close();
        irq.close();
    }
}
