package dev.jvmm.devices.virtio.pci;

import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.event.IoEventRegistry;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.pci.MsixCapability;
import dev.jvmm.devices.pci.PciFunction;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioTransport;
import dev.jvmm.devices.virtio.Virtqueue;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Modern (non-transitional) virtio-pci (virtio 1.2, 4.1): PCI device ID 0x1040 + device type, revision 1,
 * the virtio structures in one 64-bit memory BAR (BAR0) found through vendor capabilities, MSI-X with one
 * vector per queue plus one for configuration changes, and INTA# with the ISR register when MSI-X is off.
 *
 * <p>BAR0 layout: common configuration at 0x0000, ISR at 0x1000, device configuration at 0x2000,
 * notifications at 0x3000 (queue n at 0x3000 + 4n), the MSI-X table at 0x4000 and its PBA at 0x5000.
 * Attach {@link #pciFunction()} to the host bridge; with an {@link IoEventRegistry} the transport registers
 * each queue's notify address as an ioeventfd wherever the guest places BAR0.
 */
public final class VirtioPciTransport extends VirtioTransport {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioPciTransport.class);

    public static final int VENDOR = 0x1af4, DEVICE_ID_BASE = 0x1040, PCI_REVISION = 1, PCI_SUBSYSTEM_ID = 0x40;
    public static final long BAR_SIZE = 0x8000;
    public static final int COMMON_OFFSET = 0x0000,
            ISR_OFFSET = 0x1000,
            DEVICE_OFFSET = 0x2000,
            NOTIFY_OFFSET = 0x3000,
            MSIX_TABLE_OFFSET = 0x4000,
            MSIX_PBA_OFFSET = 0x5000;
    public static final int NOTIFY_MULTIPLIER = 4;
    public static final int COMMON_LENGTH = 0x38;
    public static final int NO_VECTOR = 0xffff;
    public static final int CAP_VENDOR = 0x09;
    public static final int CFG_COMMON = 1, CFG_NOTIFY = 2, CFG_ISR = 3, CFG_DEVICE = 4, CFG_PCI = 5;
    static final int ISR_QUEUE = 1, ISR_CONFIG = 2;

    // Common configuration structure offsets.
    static final int DEVICE_FEATURE_SELECT = 0x00,
            DEVICE_FEATURE = 0x04,
            DRIVER_FEATURE_SELECT = 0x08,
            DRIVER_FEATURE = 0x0c,
            CONFIG_MSIX_VECTOR = 0x10,
            NUM_QUEUES = 0x12,
            DEVICE_STATUS = 0x14,
            CONFIG_GENERATION = 0x15,
            QUEUE_SELECT = 0x16,
            QUEUE_SIZE = 0x18,
            QUEUE_MSIX_VECTOR = 0x1a,
            QUEUE_ENABLE = 0x1c,
            QUEUE_NOTIFY_OFF = 0x1e,
            QUEUE_DESC = 0x20,
            QUEUE_DRIVER = 0x28,
            QUEUE_DEVICE = 0x30;

    private final Function function;
    private final MsixCapability msix;
    private final int pciCfgCap;
    private final IoEventRegistry ioEvents;
    private final List<IoEventRegistry.Registration> ioEventRegistrations = new ArrayList<>();

    private final Object isrLock = new Object();
    private int isr; // guarded by isrLock

    // Common configuration registers (guarded by this).
    private int deviceFeatureSelect, driverFeatureSelect, queueSelect;
    private volatile int configVector = NO_VECTOR;
    private final int[] queueVectors;

    /**
     * @param irqs     where MSI-X routes and the INTx line come from
     * @param intxGsi  the GSI INTA# is wired to (written to the Interrupt Line register)
     * @param ioEvents ioeventfd registration, or null to take notifications through the bus
     */
    public VirtioPciTransport(
            String name,
            VirtioDevice device,
            GuestMemory memory,
            InterruptController irqs,
            int intxGsi,
            IoEventRegistry ioEvents) {
        super(name, device, memory);
        this.ioEvents = ioEvents;
        this.queueVectors = new int[queues.length];
        Arrays.fill(queueVectors, NO_VECTOR);
        this.function = new Function(device.deviceType());
        function.addBar();
        int cfgLen = device.configSize();
        function.addVirtioCap(CFG_COMMON, COMMON_OFFSET, COMMON_LENGTH, null);
        function.addVirtioCap(
                CFG_NOTIFY, NOTIFY_OFFSET, Math.max(2, NOTIFY_MULTIPLIER * queues.length), le32(NOTIFY_MULTIPLIER));
        function.addVirtioCap(CFG_ISR, ISR_OFFSET, 1, null);
        if (cfgLen > 0) function.addVirtioCap(CFG_DEVICE, DEVICE_OFFSET, cfgLen, null);
        this.pciCfgCap = function.addVirtioCap(CFG_PCI, 0, 0, new byte[4]);
        function.makePciCfgCapWritable(pciCfgCap);
        this.msix =
                new MsixCapability(function, queues.length + 1, 0, MSIX_TABLE_OFFSET, MSIX_PBA_OFFSET, irqs::msiRoute);
        function.setIntx(irqs.line(intxGsi), intxGsi);
    }

    private static byte[] le32(int v) {
        return new byte[] {(byte) v, (byte) (v >> 8), (byte) (v >> 16), (byte) (v >> 24)};
    }

    /** The PCI function to attach to the host bridge. */
    public PciFunction pciFunction() {
        return function;
    }

    public MsixCapability msix() {
        return msix;
    }

    /** The guest-physical notify address of queue {@code index} while BAR0 is mapped, else -1. */
    public long notifyAddress(int index) {
        long bar = function.barAddress(0);
        return bar < 0 ? -1 : bar + NOTIFY_OFFSET + (long) NOTIFY_MULTIPLIER * index;
    }

    /** The PCI function: type-0 header plus the virtio capabilities, BAR0 dispatching to the transport. */
    private final class Function extends PciFunction {
        Function(int deviceType) {
            // The class QEMU reports: 01:00 (SCSI storage) for virtio-blk, 02:00 (Ethernet) for virtio-net, else ff:00.
            super(
                    VENDOR,
                    DEVICE_ID_BASE + deviceType,
                    switch (deviceType) {
                        case VirtioDevice.TYPE_BLOCK -> 0x010000;
                        case VirtioDevice.TYPE_NET -> 0x020000;
                        default -> 0xff0000;
                    },
                    VirtioPciTransport.PCI_REVISION,
                    VENDOR,
                    VirtioPciTransport.PCI_SUBSYSTEM_ID);
        }

        void addBar() {
            addMemoryBar(0, BAR_SIZE, true, false, bar0);
        }

        int addVirtioCap(int type, int offset, int length, byte[] extra) {
            int extraLen = extra == null ? 0 : extra.length;
            byte[] body = new byte[14 + extraLen];
            body[0] = (byte) (16 + extraLen); // cap_len
            body[1] = (byte) type;
            body[2] = 0; // bar
            body[3] = 0; // id
            System.arraycopy(le32(offset), 0, body, 6, 4);
            System.arraycopy(le32(length), 0, body, 10, 4);
            if (extra != null) System.arraycopy(extra, 0, body, 14, extraLen);
            return addCapability(CAP_VENDOR, body);
        }

        void makePciCfgCapWritable(int cap) {
            setWritable(cap + 4, 1, 0xff); // bar
            setWritable(cap + 8, 4, 0xff); // offset
            setWritable(cap + 12, 4, 0xff); // length
            setWritable(cap + 16, 4, 0xff); // pci_cfg_data
        }

        @Override
        public int readConfig(int offset, int size) {
            int data = pciCfgCap + 16;
            if (offset >= data && offset + size <= data + 4) {
                // The window into BAR0: done outside the config lock, as the register access may reset the device.
                long v = pciCfgAccess(false, 0);
                return (int) (v >>> (8 * (offset - data))) & (size == 4 ? -1 : (1 << (8 * size)) - 1);
            }
            return super.readConfig(offset, size);
        }

        @Override
        public void writeConfig(int offset, int size, int value) {
            super.writeConfig(offset, size, value);
            int data = pciCfgCap + 16;
            if (offset >= data && offset + size <= data + 4) {
                long v = super.readConfig(data, 4) & 0xffffffffL;
                pciCfgAccess(true, v);
            }
        }

        /** VIRTIO_PCI_CAP_PCI_CFG: cap.bar/offset/length select an access of BAR0 through pci_cfg_data. */
        private long pciCfgAccess(boolean write, long value) {
            int bar = super.readConfig(pciCfgCap + 4, 1);
            long off = super.readConfig(pciCfgCap + 8, 4) & 0xffffffffL;
            int len = super.readConfig(pciCfgCap + 12, 4);
            if (bar != 0 || (len != 1 && len != 2 && len != 4) || off % len != 0 || off + len > BAR_SIZE) return 0;
            if (write) {
                bar0.write(off, len, value & (len == 4 ? 0xffffffffL : (1L << (8 * len)) - 1));
                return 0;
            }
            return bar0.read(off, len);
        }

        @Override
        protected void barMoved(int index, long address) {
            if (index == 0) registerIoEvents(address);
        }

        void intx(boolean asserted) {
            setIntxAsserted(asserted);
        }
    }

    private synchronized void registerIoEvents(long barAddress) {
        for (IoEventRegistry.Registration r : ioEventRegistrations) r.close();
        ioEventRegistrations.clear();
        if (ioEvents == null || barAddress < 0) return;
        for (int q = 0; q < queues.length; q++) {
            long addr = barAddress + NOTIFY_OFFSET + (long) NOTIFY_MULTIPLIER * q;
            ioEventRegistrations.add(ioEvents.register(IoEventRegistry.Space.MMIO, addr, 2, notifyEvent()));
        }
    }

    private final BusDevice bar0 = new BusDevice() {
        @Override
        public long read(long offset, int size) {
            if (offset < ISR_OFFSET) return readCommon((int) offset, size);
            if (offset < DEVICE_OFFSET) return offset == ISR_OFFSET ? readIsr() : 0;
            if (offset < NOTIFY_OFFSET) return readDeviceConfig((int) (offset - DEVICE_OFFSET), size);
            if (offset < MSIX_TABLE_OFFSET) return 0;
            if (offset < MSIX_PBA_OFFSET) return msix.table().read(offset - MSIX_TABLE_OFFSET, size);
            return msix.pba().read(offset - MSIX_PBA_OFFSET, size);
        }

        @Override
        public void write(long offset, int size, long value) {
            if (offset < ISR_OFFSET) writeCommon((int) offset, size, value);
            else if (offset < DEVICE_OFFSET) return; // ISR is read-only
            else if (offset < NOTIFY_OFFSET) writeDeviceConfig((int) (offset - DEVICE_OFFSET), size, value);
            else if (offset < MSIX_TABLE_OFFSET) notifyFromBus();
            else if (offset < MSIX_PBA_OFFSET) msix.table().write(offset - MSIX_TABLE_OFFSET, size, value);
        }
    };

    /** A device-to-guest interrupt is read here; reading clears it and deasserts INTA#. */
    private int readIsr() {
        synchronized (isrLock) {
            int v = isr;
            isr = 0;
            function.intx(false);
            return v;
        }
    }

    private synchronized long readCommon(int offset, int size) {
        long v = 0;
        for (int i = 0; i < size; i++) v |= (long) commonByte(offset + i) << (8 * i);
        return v;
    }

    /** One byte of the common configuration structure as it reads now. */
    private int commonByte(int offset) {
        if (offset >= COMMON_LENGTH) return 0;
        Virtqueue q = queue(queueSelect);
        int field, fieldOffset;
        long value;
        if (offset >= QUEUE_DESC) {
            fieldOffset = (offset - QUEUE_DESC) / 8 * 8 + QUEUE_DESC;
            value = q == null
                    ? 0
                    : switch (fieldOffset) {
                        case QUEUE_DESC -> q.descAddress();
                        case QUEUE_DRIVER -> q.driverAddress();
                        default -> q.deviceAddress();
                    };
        } else {
            fieldOffset = switch (offset) {
                case 0, 1, 2, 3 -> DEVICE_FEATURE_SELECT;
                case 4, 5, 6, 7 -> DEVICE_FEATURE;
                case 8, 9, 10, 11 -> DRIVER_FEATURE_SELECT;
                case 12, 13, 14, 15 -> DRIVER_FEATURE;
                case 0x14 -> DEVICE_STATUS;
                case 0x15 -> CONFIG_GENERATION;
                default -> offset & ~1;
            };
            field = fieldOffset;
            value = switch (field) {
                case DEVICE_FEATURE_SELECT -> deviceFeatureSelect;
                case DEVICE_FEATURE -> deviceFeatureWord(deviceFeatureSelect);
                case DRIVER_FEATURE_SELECT -> driverFeatureSelect;
                case DRIVER_FEATURE -> driverFeatureWord(driverFeatureSelect);
                case CONFIG_MSIX_VECTOR -> configVector;
                case NUM_QUEUES -> queues.length;
                case DEVICE_STATUS -> status();
                case CONFIG_GENERATION -> configGeneration();
                case QUEUE_SELECT -> queueSelect;
                case QUEUE_SIZE -> q == null ? 0 : q.size();
                case QUEUE_MSIX_VECTOR -> q == null ? NO_VECTOR : queueVectors[queueSelect];
                case QUEUE_ENABLE -> q != null && q.isReady() ? 1 : 0;
                case QUEUE_NOTIFY_OFF -> q == null ? 0 : queueSelect;
                default -> 0;
            };
        }
        return (int) (value >>> (8 * (offset - fieldOffset))) & 0xff;
    }

    private synchronized void writeCommon(int offset, int size, long value) {
        Virtqueue q = queue(queueSelect);
        boolean qw = queueConfigWritable(q);
        int v = (int) value;
        switch (offset) {
            case DEVICE_FEATURE_SELECT -> {
                if (size == 4) deviceFeatureSelect = v;
            }
            case DRIVER_FEATURE_SELECT -> {
                if (size == 4) driverFeatureSelect = v;
            }
            case DRIVER_FEATURE -> {
                if (size == 4) setDriverFeatureWord(driverFeatureSelect, v);
            }
            case CONFIG_MSIX_VECTOR -> {
                if (size == 2) configVector = validVector(v & 0xffff);
            }
            case DEVICE_STATUS -> {
                if (size == 1) writeStatus(v & 0xff);
            }
            case QUEUE_SELECT -> {
                if (size == 2) queueSelect = v & 0xffff;
            }
            case QUEUE_SIZE -> {
                if (size == 2 && qw) q.setSize(v & 0xffff);
            }
            case QUEUE_MSIX_VECTOR -> {
                if (size == 2 && q != null) queueVectors[queueSelect] = validVector(v & 0xffff);
            }
            case QUEUE_ENABLE -> {
                if (size == 2 && qw && (v & 0xffff) == 1) q.setReady(true);
            }
            case QUEUE_DESC, QUEUE_DESC + 4 -> {
                if (qw) q.setDescAddress(merge(q.descAddress(), offset - QUEUE_DESC, size, value));
            }
            case QUEUE_DRIVER, QUEUE_DRIVER + 4 -> {
                if (qw) q.setDriverAddress(merge(q.driverAddress(), offset - QUEUE_DRIVER, size, value));
            }
            case QUEUE_DEVICE, QUEUE_DEVICE + 4 -> {
                if (qw) q.setDeviceAddress(merge(q.deviceAddress(), offset - QUEUE_DEVICE, size, value));
            }
            default ->
                LOG.debug("{}: {}-byte write to common config 0x{} ignored", name(), size, Integer.toHexString(offset));
        }
    }

    /** A 64-bit field written as one 8-byte access or as 32-bit halves. */
    private static long merge(long old, int within, int size, long value) {
        if (size == 8 && within == 0) return value;
        if (size != 4) return old;
        return within == 0 ? (old & 0xffffffff00000000L) | (value & 0xffffffffL) : (old & 0xffffffffL) | (value << 32);
    }

    /** A vector the table has, or NO_VECTOR (the read-back tells the driver the mapping failed). */
    private int validVector(int v) {
        return v < msix.vectors() ? v : NO_VECTOR;
    }

    @Override
    protected void raiseQueueInterrupt(int index) {
        if (msix.isEnabled()) {
            int v = queueVectors[index];
            if (v != NO_VECTOR) msix.trigger(v);
            return;
        }
        raiseIntx(ISR_QUEUE);
    }

    @Override
    protected void raiseConfigInterrupt() {
        if (msix.isEnabled()) {
            int v = configVector;
            if (v != NO_VECTOR) msix.trigger(v);
            // The ISR bit is set for configuration changes whatever the interrupt mode (4.1.4.5).
            synchronized (isrLock) {
                isr |= ISR_CONFIG;
            }
            return;
        }
        raiseIntx(ISR_CONFIG);
    }

    private void raiseIntx(int bit) {
        synchronized (isrLock) {
            isr |= bit;
            function.intx(true);
        }
    }

    @Override
    protected void saveTransportState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u32(deviceFeatureSelect).u32(driverFeatureSelect).u16(queueSelect).u16(configVector);
        for (int v : queueVectors) out.u16(v);
        synchronized (isrLock) {
            out.u8(isr);
        }
        msix.saveState(out);
        function.saveConfig(out);
    }

    /**
     * The MSI-X table first, then the configuration space, which places BAR0 where the guest had it (and with it
     * the notify ioeventfds) and enables MSI-X, delivering what was pending and unmasked.
     */
    @Override
    protected void restoreTransportState(dev.jvmm.core.snapshot.StateInput in) {
        deviceFeatureSelect = in.u32("device feature select");
        driverFeatureSelect = in.u32("driver feature select");
        queueSelect = in.u16("queue select");
        configVector = validVector(in.u16("config vector"));
        for (int q = 0; q < queueVectors.length; q++) queueVectors[q] = validVector(in.u16("queue vector"));
        int nIsr = in.u8("ISR") & (ISR_QUEUE | ISR_CONFIG);
        msix.restoreState(in);
        function.restoreConfig(in);
        synchronized (isrLock) {
            isr = nIsr;
        }
    }

    @Override
    protected void resetInterrupts() {
        synchronized (isrLock) {
            isr = 0;
            function.intx(false);
        }
        configVector = NO_VECTOR;
        Arrays.fill(queueVectors, NO_VECTOR);
        deviceFeatureSelect = driverFeatureSelect = queueSelect = 0;
    }

    /** Whether DRIVER_OK is set (for tests and diagnostics). */
    public boolean driverOk() {
        return (status() & DeviceStatus.DRIVER_OK) != 0;
    }

    @Override
    public synchronized void close() {
        for (IoEventRegistry.Registration r : ioEventRegistrations) r.close();
        ioEventRegistrations.clear();
        super.close();
        msix.close();
    }
}
