package dev.jvmm.devices.pci;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.bus.BusDevice;

/**
 * The root of PCI bus 0: configuration access through mechanism #1 (address at port 0xCF8, data at
 * 0xCFC-0xCFF) and through an ECAM window, up to 32 single-function devices, and BAR placement from the
 * MMIO windows the machine reserves (what firmware would do; the guest may move BARs afterwards).
 *
 * <p>Slot 0 holds the host bridge function itself (class 06:00), which Linux's direct-access probe looks
 * for.
 */
public final class PciHostBridge implements dev.jvmm.core.snapshot.Snapshottable {
    public static final int CONFIG_ADDRESS_PORT = 0xcf8;
    /** Ports claimed for mechanism #1: 0xCF8-0xCFF. */
    public static final int CONFIG_PORTS_LENGTH = 8;
    /** ECAM bytes per bus: 32 devices x 8 functions x 4 KiB. */
    public static final long ECAM_BUS_SIZE = 1L << 20;

    public static final int MAX_DEVICES = 32;

    private final Bus mmio;
    private final PciFunction[] devices = new PciFunction[MAX_DEVICES];
    private long next32, end32, next64, end64;
    private int configAddress; // guarded by this

    /** The host bridge function at 00:00.0. */
    static final class HostBridgeFunction extends PciFunction {
        HostBridgeFunction() {
            super(0x1b36, 0x0008, 0x060000, 0, 0x1af4, 0x1100); // Red Hat "PCIe host bridge", class host bridge
        }
    }

    /**
     * @param mmio       the MMIO bus BARs are claimed on
     * @param mmio32Base start of the window below 4 GiB for 32-bit BARs (and 64-bit ones when there is no
     *                   64-bit window)
     * @param mmio64Base start of the window above 4 GiB for 64-bit BARs; size 0 for none
     */
    public PciHostBridge(Bus mmio, long mmio32Base, long mmio32Size, long mmio64Base, long mmio64Size) {
        this.mmio = mmio;
        this.next32 = mmio32Base;
        this.end32 = mmio32Base + mmio32Size;
        this.next64 = mmio64Base;
        this.end64 = mmio64Base + mmio64Size;
        attach(0, new HostBridgeFunction(), "pci-host");
    }

    /**
     * Attaches a function at the first free slot, places its BARs, and returns the slot (device number).
     *
     * @throws PciBusFullException if no slot is free or a BAR does not fit in the MMIO windows
     */
    public synchronized int attach(PciFunction function, String name) {
        for (int slot = 1; slot < MAX_DEVICES; slot++) {
            if (devices[slot] == null) {
                attach(slot, function, name);
                return slot;
            }
        }
        throw new PciBusFullException("PCI bus 0 is full (32 devices); cannot attach " + name);
    }

    public synchronized void attach(int slot, PciFunction function, String name) {
        if (slot < 0 || slot >= MAX_DEVICES || devices[slot] != null)
            throw new IllegalArgumentException("PCI slot " + slot + " is not free for " + name);
        function.attach(mmio, name);
        for (int i = 0; i < 6; i++) {
            PciFunction.Bar bar = function.bar(i);
            if (bar == null) continue;
            boolean high = bar.is64() && end64 > next64;
            long base = high ? next64 : next32;
            long address = (base + bar.size() - 1) & -bar.size();
            if (address + bar.size() > (high ? end64 : end32))
                throw new PciBusFullException(
                        "PCI MMIO window exhausted placing " + bar.size() + "-byte BAR" + i + " of " + name);
            function.setBarAddress(i, address);
            if (high) next64 = address + bar.size();
            else next32 = address + bar.size();
        }
        devices[slot] = function;
    }

    public synchronized PciFunction device(int slot) {
        return slot >= 0 && slot < MAX_DEVICES ? devices[slot] : null;
    }

    private PciFunction function(int bus, int device, int function) {
        if (bus != 0 || function != 0) return null;
        return device(device);
    }

    /** A config read by bus/device/function/register; all ones where there is no function. */
    public int readConfig(int bus, int device, int function, int offset, int size) {
        PciFunction f = function(bus, device, function);
        if (f == null) return size == 4 ? -1 : (1 << (8 * size)) - 1;
        return f.readConfig(offset, size);
    }

    public void writeConfig(int bus, int device, int function, int offset, int size, int value) {
        PciFunction f = function(bus, device, function);
        if (f != null) f.writeConfig(offset, size, value);
    }

    /** Ports 0xCF8-0xCFF, for the port I/O bus at {@link #CONFIG_ADDRESS_PORT}. */
    public BusDevice configPorts() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                if (offset == 0 && size == 4) {
                    synchronized (PciHostBridge.this) {
                        return configAddress & 0xffffffffL;
                    }
                }
                if (offset < 4) return size >= 8 ? -1L : (1L << (8 * size)) - 1;
                int address;
                synchronized (PciHostBridge.this) {
                    address = configAddress;
                }
                if (address >= 0) return (1L << (8 * size)) - 1; // enable bit clear
                int reg = (address & 0xfc) + (int) (offset - 4);
                return readConfig((address >> 16) & 0xff, (address >> 11) & 0x1f, (address >> 8) & 7, reg, size)
                        & 0xffffffffL;
            }

            @Override
            public void write(long offset, int size, long value) {
                if (offset == 0 && size == 4) {
                    synchronized (PciHostBridge.this) {
                        configAddress = (int) value & 0x80fffffc;
                    }
                    return;
                }
                if (offset < 4) return; // byte accesses to 0xCF8-0xCFB are not the address register
                int address;
                synchronized (PciHostBridge.this) {
                    address = configAddress;
                }
                if (address >= 0) return;
                int reg = (address & 0xfc) + (int) (offset - 4);
                writeConfig((address >> 16) & 0xff, (address >> 11) & 0x1f, (address >> 8) & 7, reg, size, (int) value);
            }
        };
    }

    /** The ECAM window for bus 0 ({@link #ECAM_BUS_SIZE} bytes on the MMIO bus). */
    public BusDevice ecam() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                if (size > 4 || (offset & (size - 1)) != 0) return size >= 8 ? -1L : (1L << (8 * size)) - 1;
                return readConfig(
                                (int) (offset >> 20),
                                (int) (offset >> 15) & 0x1f,
                                (int) (offset >> 12) & 7,
                                (int) (offset & 0xfff),
                                size)
                        & 0xffffffffL;
            }

            @Override
            public void write(long offset, int size, long value) {
                if (size > 4 || (offset & (size - 1)) != 0) return;
                writeConfig(
                        (int) (offset >> 20),
                        (int) (offset >> 15) & 0x1f,
                        (int) (offset >> 12) & 7,
                        (int) (offset & 0xfff),
                        size,
                        (int) value);
            }
        };
    }

    // ---- snapshots: the config address register and the bridge's own function; each attached function is its
    // owner's to save (a virtio-pci transport saves its function with its own state).

    static final int STATE_VERSION = 1;

    @Override
    public String snapshotId() {
        return "pci-host";
    }

    @Override
    public int snapshotVersion() {
        return STATE_VERSION;
    }

    @Override
    public synchronized void saveState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u32(configAddress);
        devices[0].saveConfig(out);
    }

    @Override
    public synchronized void restoreState(int version, dev.jvmm.core.snapshot.StateInput in) {
        int address = in.u32("config address");
        devices[0].restoreConfig(in);
        in.expectEnd();
        configAddress = address;
    }
}
