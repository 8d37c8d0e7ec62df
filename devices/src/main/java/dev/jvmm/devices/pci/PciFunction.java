package dev.jvmm.devices.pci;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A PCI function with a type-0 configuration header: IDs, command/status, up to six memory BARs (32- or
 * 64-bit, with the sizing protocol), a capability list, and the INTx pin. A BAR is claimed on the MMIO bus
 * while memory decoding is enabled and it holds a usable address; a guest moving it moves the claim.
 *
 * <p>Subclasses add capabilities and BARs in their constructor and may refine config accesses. Config
 * accesses come from vCPU threads and are serialized by an internal lock; INTx has a lock of its own, so a
 * device's I/O thread can raise it whatever the vCPUs are doing.
 */
public abstract class PciFunction {
    private static final Logger LOG = LoggerFactory.getLogger(PciFunction.class);

    public static final int VENDOR_ID = 0x00,
            DEVICE_ID = 0x02,
            COMMAND = 0x04,
            STATUS = 0x06,
            REVISION = 0x08,
            CLASS_CODE = 0x09,
            CACHE_LINE = 0x0c,
            HEADER_TYPE = 0x0e,
            BAR0 = 0x10,
            SUBSYSTEM_VENDOR = 0x2c,
            SUBSYSTEM_ID = 0x2e,
            ROM = 0x30,
            CAPABILITIES = 0x34,
            INTERRUPT_LINE = 0x3c,
            INTERRUPT_PIN = 0x3d;
    public static final int CMD_IO = 1, CMD_MEMORY = 2, CMD_BUS_MASTER = 4, CMD_INTX_DISABLE = 0x400;
    public static final int STATUS_INTERRUPT = 0x08, STATUS_CAP_LIST = 0x10;
    public static final int CONFIG_SIZE = 256;
    /** Highest guest-physical address a 64-bit BAR may be placed at (the x86 physical address width). */
    private static final long MAX_BAR_END = 1L << 48;

    /** A memory BAR: its size (a power of two), width and the device behind it. */
    public static final class Bar {
        final int index;
        final long size;
        final boolean is64;
        final boolean prefetchable;
        final BusDevice handler;
        Bus.Claim claim;

        Bar(int index, long size, boolean is64, boolean prefetchable, BusDevice handler) {
            this.index = index;
            this.size = size;
            this.is64 = is64;
            this.prefetchable = prefetchable;
            this.handler = handler;
        }

        public int index() {
            return index;
        }

        public long size() {
            return size;
        }

        public boolean is64() {
            return is64;
        }
    }

    private final Object lock = new Object();
    private final byte[] config = new byte[CONFIG_SIZE];
    private final byte[] writeMask = new byte[CONFIG_SIZE];
    private final Bar[] bars = new Bar[6];
    private int lastCapPointer = CAPABILITIES;
    private int nextCapOffset = 0x40;
    private Bus mmio;
    private MsixCapability msix;
    private String name = getClass().getSimpleName();

    private final Object intxLock = new Object();
    private IrqLine intx;
    private boolean intxAsserted;
    private boolean intxDriven;

    protected PciFunction(
            int vendorId, int deviceId, int classCode, int revision, int subsystemVendor, int subsystemId) {
        put16(VENDOR_ID, vendorId);
        put16(DEVICE_ID, deviceId);
        config[REVISION] = (byte) revision;
        config[CLASS_CODE] = (byte) classCode;
        config[CLASS_CODE + 1] = (byte) (classCode >> 8);
        config[CLASS_CODE + 2] = (byte) (classCode >> 16);
        put16(SUBSYSTEM_VENDOR, subsystemVendor);
        put16(SUBSYSTEM_ID, subsystemId);
        put16(STATUS, STATUS_CAP_LIST);
        config[INTERRUPT_PIN] = 1; // INTA#
        writeMask[COMMAND] = (byte) (CMD_IO | CMD_MEMORY | CMD_BUS_MASTER);
        writeMask[COMMAND + 1] = (byte) (CMD_INTX_DISABLE >> 8);
        writeMask[CACHE_LINE] = (byte) 0xff;
        writeMask[CACHE_LINE + 1] = (byte) 0xff; // latency timer
        writeMask[INTERRUPT_LINE] = (byte) 0xff;
    }

    // --- construction ---------------------------------------------------------------------------------------

    /** Declares a memory BAR (a 64-bit one takes two slots). */
    protected final Bar addMemoryBar(int index, long size, boolean is64, boolean prefetchable, BusDevice handler) {
        if (index < 0
                || index > (is64 ? 4 : 5)
                || bars[index] != null
                || (index > 0 && bars[index - 1] != null && bars[index - 1].is64))
            throw new IllegalArgumentException("BAR " + index + " is not free");
        if (size < 16 || Long.bitCount(size) != 1 || (!is64 && size > 1L << 31))
            throw new IllegalArgumentException("BAR size " + size + " must be a power of two of at least 16 bytes");
        Bar bar = new Bar(index, size, is64, prefetchable, handler);
        bars[index] = bar;
        int low = (is64 ? 0x4 : 0) | (prefetchable ? 0x8 : 0);
        put32(BAR0 + 4 * index, low);
        if (is64) put32(BAR0 + 4 * (index + 1), 0);
        return bar;
    }

    /**
     * Appends a capability to the list: {@code body} follows the ID and next-pointer bytes. Returns the
     * capability's offset in configuration space.
     */
    protected final int addCapability(int id, byte[] body) {
        int offset = nextCapOffset;
        int len = 2 + body.length;
        if (offset + len > CONFIG_SIZE) throw new IllegalStateException("PCI configuration space is full");
        config[offset] = (byte) id;
        config[offset + 1] = 0;
        System.arraycopy(body, 0, config, offset + 2, body.length);
        config[lastCapPointer == CAPABILITIES ? CAPABILITIES : lastCapPointer + 1] = (byte) offset;
        lastCapPointer = offset;
        nextCapOffset = (offset + len + 3) & ~3;
        return offset;
    }

    /** Lets the guest write the bits of {@code mask} in the bytes [offset, offset+len). */
    protected final void setWritable(int offset, int len, int maskByte) {
        for (int i = 0; i < len; i++) writeMask[offset + i] = (byte) maskByte;
    }

    void setMsix(MsixCapability capability) {
        this.msix = capability;
    }

    // --- attachment (host bridge and machine builder) -------------------------------------------------------

    void attach(Bus mmioBus, String deviceName) {
        this.mmio = mmioBus;
        this.name = deviceName;
    }

    public String name() {
        return name;
    }

    public Bar bar(int index) {
        return index >= 0 && index < 6 ? bars[index] : null;
    }

    /** Places a BAR (what firmware does); it is claimed once the guest enables memory decoding. */
    public void setBarAddress(int index, long address) {
        synchronized (lock) {
            Bar bar = bars[index];
            if ((address & (bar.size - 1)) != 0)
                throw new IllegalArgumentException(
                        "BAR address 0x" + Long.toHexString(address) + " is not aligned to its size");
            int low = (int) address | (bar.is64 ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
            put32(BAR0 + 4 * index, low);
            if (bar.is64) put32(BAR0 + 4 * index + 4, (int) (address >>> 32));
            updateMappings();
        }
    }

    /** The address the BAR decodes at now, or -1 when it is not mapped. */
    public long barAddress(int index) {
        synchronized (lock) {
            Bar bar = bars[index];
            return bar == null || bar.claim == null ? -1 : bar.claim.base();
        }
    }

    /** Wires INTA# to an interrupt line; {@code gsi} goes in the Interrupt Line register for the guest. */
    public void setIntx(IrqLine line, int gsi) {
        synchronized (intxLock) {
            this.intx = line;
        }
        synchronized (lock) {
            config[INTERRUPT_LINE] = (byte) gsi;
        }
    }

    // --- config space accesses ------------------------------------------------------------------------------

    /** Reads {@code size} bytes at offset; the extended space beyond 256 bytes reads as zero. */
    public int readConfig(int offset, int size) {
        if (offset < 0 || size < 1 || size > 4 || offset + size > 4096) return -1;
        if (offset >= CONFIG_SIZE) return 0;
        synchronized (lock) {
            int v = 0;
            for (int i = 0; i < size && offset + i < CONFIG_SIZE; i++) v |= (config[offset + i] & 0xff) << (8 * i);
            if (offset <= STATUS && offset + size > STATUS) {
                synchronized (intxLock) {
                    if (intxAsserted) v |= STATUS_INTERRUPT << (8 * (STATUS - offset));
                }
            }
            return v;
        }
    }

    public void writeConfig(int offset, int size, int value) {
        if (offset < 0 || size < 1 || size > 4 || offset + size > CONFIG_SIZE) return;
        synchronized (lock) {
            int oldCommand = get16(COMMAND);
            boolean barsTouched = false;
            for (int i = 0; i < size; i++) {
                int off = offset + i;
                byte b = (byte) (value >>> (8 * i));
                if (off >= BAR0 && off < BAR0 + 24) {
                    barsTouched |= writeBarByte(off, b);
                } else {
                    config[off] = (byte) ((config[off] & ~writeMask[off]) | (b & writeMask[off]));
                }
            }
            int command = get16(COMMAND);
            if (barsTouched || ((command ^ oldCommand) & CMD_MEMORY) != 0) updateMappings();
            if (((command ^ oldCommand) & CMD_INTX_DISABLE) != 0) driveIntx();
            if (msix != null) {
                int control = msix.capabilityOffset() + 2;
                if (offset < control + 2 && control < offset + size) msix.controlWritten(get16(control));
            }
            configWritten(offset, size);
        }
    }

    /** Called after every config write (under the config lock): capabilities react here. */
    protected void configWritten(int offset, int size) {}

    private boolean writeBarByte(int off, byte b) {
        int slot = (off - BAR0) / 4;
        int byteInDword = (off - BAR0) % 4;
        Bar bar = bars[slot];
        boolean upperHalf = false;
        if (bar == null && slot > 0 && bars[slot - 1] != null && bars[slot - 1].is64) {
            bar = bars[slot - 1];
            upperHalf = true;
        }
        if (bar == null) return false; // unimplemented BARs read as 0
        long mask = upperHalf ? ~((bar.size - 1) >>> 32) : ~(bar.size - 1) & 0xfffffff0L;
        byte m = (byte) (mask >>> (8 * byteInDword));
        config[off] = (byte) ((config[off] & ~m) | (b & m));
        return true;
    }

    private long barRegisterAddress(Bar bar) {
        long low = get32(BAR0 + 4 * bar.index) & 0xfffffff0L;
        long high = bar.is64 ? (get32(BAR0 + 4 * bar.index + 4) & 0xffffffffL) << 32 : 0;
        return low | high;
    }

    private void updateMappings() {
        boolean decode = (get16(COMMAND) & CMD_MEMORY) != 0;
        for (Bar bar : bars) {
            if (bar == null) continue;
            long address = barRegisterAddress(bar);
            long limit = bar.is64 ? MAX_BAR_END : 1L << 32;
            boolean usable = decode && address != 0 && address <= limit - bar.size;
            long current = bar.claim == null ? -1 : bar.claim.base();
            long wanted = usable ? address : -1;
            if (current == wanted) continue;
            if (bar.claim != null && mmio != null) mmio.unregister(bar.claim);
            bar.claim = null;
            if (wanted >= 0 && mmio != null) {
                try {
                    bar.claim = mmio.register(name + " BAR" + bar.index, wanted, bar.size, bar.handler);
                } catch (IllegalArgumentException e) {
                    LOG.warn(
                            "{}: BAR{} at 0x{} not mapped: {}",
                            name,
                            bar.index,
                            Long.toHexString(wanted),
                            e.getMessage());
                }
            }
            barMoved(bar.index, bar.claim == null ? -1 : bar.claim.base());
        }
    }

    /** A BAR was mapped at a new address (or unmapped: -1). Called under the config lock. */
    protected void barMoved(int index, long address) {}

    // --- INTx -----------------------------------------------------------------------------------------------

    /** Asserts or deasserts INTA# (level); masked by the command register's Interrupt Disable bit. */
    protected final void setIntxAsserted(boolean asserted) {
        synchronized (intxLock) {
            intxAsserted = asserted;
            driveIntxLocked(intxDisabled());
        }
    }

    private boolean intxDisabled() {
        // Read without the config lock: a stale value is corrected by driveIntx() after the command write.
        return ((config[COMMAND + 1] & 0xff) << 8 & CMD_INTX_DISABLE) != 0;
    }

    private void driveIntx() {
        synchronized (intxLock) {
            driveIntxLocked(intxDisabled());
        }
    }

    private void driveIntxLocked(boolean disabled) {
        boolean level = intxAsserted && !disabled;
        if (intx != null && level != intxDriven) intx.set(level);
        intxDriven = level;
    }

    // --- snapshots --------------------------------------------------------------------------------------------

    /**
     * Writes the configuration space (BARs, command, capabilities' registers) and the INTx level; MSI-X's table
     * is its owner's to save. For the owner's {@code Snapshottable}.
     */
    public final void saveConfig(StateOutput out) {
        synchronized (lock) {
            out.raw(config);
            synchronized (intxLock) {
                out.bool(intxAsserted);
            }
        }
    }

    /**
     * Loads what {@link #saveConfig} wrote into this function as built: bytes the guest cannot write must be
     * the same (the same device, with the same capabilities), or the snapshot is of another machine. BARs are
     * claimed again where the guest had placed them (and {@link #barMoved} re-registers what hangs on them),
     * MSI-X takes its control register, and INTA# is driven as it was.
     */
    public final void restoreConfig(StateInput in) {
        byte[] saved = in.raw("PCI configuration space", CONFIG_SIZE);
        boolean asserted = in.bool("INTx asserted");
        synchronized (lock) {
            for (int i = 0; i < CONFIG_SIZE; i++) {
                if (i >= BAR0 && i < BAR0 + 24) continue; // checked below against each BAR's size
                if (i == STATUS || i == STATUS + 1) continue; // the interrupt bit is not kept here
                int fixed = ~writeMask[i] & 0xff;
                if (((saved[i] ^ config[i]) & fixed) != 0)
                    throw new SnapshotException(
                            SnapshotException.Kind.MACHINE_MISMATCH,
                            in.where() + ": PCI configuration byte 0x" + Integer.toHexString(i) + " was 0x"
                                    + Integer.toHexString(saved[i] & 0xff) + ", this " + name + " has 0x"
                                    + Integer.toHexString(config[i] & 0xff) + " (a different device)");
            }
            for (int i = 0; i < CONFIG_SIZE; i++) {
                if (i >= BAR0 && i < BAR0 + 24) {
                    writeBarByte(i, saved[i]);
                } else if (i != STATUS && i != STATUS + 1) {
                    config[i] = saved[i];
                }
            }
            updateMappings();
            if (msix != null) msix.controlWritten(get16(msix.capabilityOffset() + 2));
        }
        synchronized (intxLock) {
            intxAsserted = asserted;
            intxDriven = !(asserted && !intxDisabled()); // forces the line to be driven to its level
            driveIntxLocked(intxDisabled());
        }
    }

    // --- little-endian helpers over config --------------------------------------------------------------------

    protected final int get16(int off) {
        return (config[off] & 0xff) | (config[off + 1] & 0xff) << 8;
    }

    protected final int get32(int off) {
        return get16(off) | get16(off + 2) << 16;
    }

    protected final void put16(int off, int v) {
        config[off] = (byte) v;
        config[off + 1] = (byte) (v >> 8);
    }

    protected final void put32(int off, int v) {
        put16(off, v);
        put16(off + 2, v >>> 16);
    }

    protected final byte configByte(int off) {
        return config[off];
    }

    protected final Object configLock() {
        return lock;
    }
}
