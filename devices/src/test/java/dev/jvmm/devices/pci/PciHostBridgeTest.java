package dev.jvmm.devices.pci;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.devices.virtio.FakeInterruptController;
import dev.jvmm.devices.virtio.RecordingIrqLine;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PciHostBridgeTest {
    static final long ECAM = 0xb000_0000L, WIN32 = 0xc000_0000L, WIN64 = 0x80_0000_0000L;
    Bus mmio, pio;
    PciHostBridge host;
    TestFunction fn;
    int slot;

    /** A device with a 64-bit 16 KiB BAR0, a 32-bit 4 KiB BAR2 and MSI-X in BAR2. */
    static final class TestFunction extends PciFunction {
        final AtomicLong lastWrite = new AtomicLong(-1);
        final MsixCapability msix;
        final FakeInterruptController irqs = new FakeInterruptController();
        long lastMoved = -2;

        TestFunction() {
            super(0x1234, 0x5678, 0x0c0330, 7, 0x1af4, 0x99);
            addMemoryBar(0, 0x4000, true, true, new BusDevice() {
                public long read(long offset, int size) {
                    return 0x1000 + offset;
                }

                public void write(long offset, int size, long value) {
                    lastWrite.set(value);
                }
            });
            addCapability(0x09, new byte[] {4, 0x42});
            msix = new MsixCapability(this, 4, 2, 0, 0x800, irqs::msiRoute);
            addMemoryBar(2, 0x1000, false, false, new BusDevice() {
                public long read(long offset, int size) {
                    return offset < 0x800
                            ? msix.table().read(offset, size)
                            : msix.pba().read(offset - 0x800, size);
                }

                public void write(long offset, int size, long value) {
                    if (offset < 0x800) msix.table().write(offset, size, value);
                }
            });
        }

        @Override
        protected void barMoved(int index, long address) {
            if (index == 0) lastMoved = address;
        }

        void intx(boolean on) {
            setIntxAsserted(on);
        }
    }

    @BeforeEach
    void setUp() {
        mmio = new Bus("mmio");
        pio = new Bus("pio");
        host = new PciHostBridge(mmio, WIN32, 0x1000_0000L, WIN64, 1L << 32);
        pio.register("pci", PciHostBridge.CONFIG_ADDRESS_PORT, PciHostBridge.CONFIG_PORTS_LENGTH, host.configPorts());
        mmio.register("ecam", ECAM, PciHostBridge.ECAM_BUS_SIZE, host.ecam());
        fn = new TestFunction();
        slot = host.attach(fn, "test");
    }

    int conf1(int dev, int off, int size) {
        pio.write(0xcf8, 4, 0x8000_0000L | (dev << 11) | (off & 0xfc));
        return (int) pio.read(0xcfc + (off & 3), size);
    }

    void conf1(int dev, int off, int size, int v) {
        pio.write(0xcf8, 4, 0x8000_0000L | (dev << 11) | (off & 0xfc));
        pio.write(0xcfc + (off & 3), size, v & 0xffffffffL);
    }

    int ecam(int dev, int off, int size) {
        return (int) mmio.read(ECAM + (dev << 15) + off, size);
    }

    @Test
    void mechanism1AddressRegisterReadsBackAndGatesAccess() {
        pio.write(0xcf8, 4, 0x8000_0000L);
        assertEquals(0x8000_0000L, pio.read(0xcf8, 4), "Linux's conf1 probe reads the address back");
        pio.write(0xcf8, 4, 0x0000_0000L); // enable bit clear
        assertEquals(0xffff_ffffL, pio.read(0xcfc, 4));
        pio.write(0xcf8, 4, 0x8000_0003L);
        assertEquals(0x8000_0000L, pio.read(0xcf8, 4), "reserved low bits read as 0");
    }

    @Test
    void hostBridgeAtSlotZeroAndAbsentDevicesReadAllOnes() {
        assertEquals(0x0600, conf1(0, 0x0a, 2), "class: host bridge");
        assertEquals(1, slot);
        assertEquals(0xffff, conf1(5, 0, 2) & 0xffff);
        assertEquals(-1, conf1(5, 0, 4));
        assertEquals(-1, ecam(5, 0, 4));
        assertEquals(-1, (int) mmio.read(ECAM + (1 << 20) - 4, 4), "function 7 of device 31 is absent");
    }

    @Test
    void ecamAndMechanism1SeeTheSameSpace() {
        for (int off = 0; off < 0x40; off += 4) assertEquals(conf1(slot, off, 4), ecam(slot, off, 4), "offset " + off);
        assertEquals(0x5678_1234, ecam(slot, 0, 4));
        assertEquals(0x12, ecam(slot, 1, 1), "byte access at an odd offset");
        assertEquals(0x0c0330, ecam(slot, 8, 4) >>> 8);
        assertEquals(7, ecam(slot, 8, 1));
        assertEquals(0, ecam(slot, 0x100, 4), "no extended capabilities");
    }

    @Test
    void sixtyFourBitBarSizingProtocol() {
        int low = conf1(slot, 0x10, 4), high = conf1(slot, 0x14, 4);
        assertEquals(0xc, low & 0xf, "64-bit prefetchable memory BAR");
        assertEquals(WIN64, (low & 0xfffffff0L) | (long) high << 32, "placed in the 64-bit window");
        conf1(slot, 0x10, 4, -1);
        conf1(slot, 0x14, 4, -1);
        assertEquals(0xffffc00c, conf1(slot, 0x10, 4), "size 16 KiB in the low dword");
        assertEquals(0xffffffff, conf1(slot, 0x14, 4));
        conf1(slot, 0x10, 4, low);
        conf1(slot, 0x14, 4, high);
        assertEquals(low, conf1(slot, 0x10, 4));
        int bar2 = conf1(slot, 0x18, 4);
        assertEquals(0, bar2 & 0xf, "32-bit memory BAR");
        assertEquals(WIN32, bar2 & 0xfffffff0L);
        conf1(slot, 0x18, 4, -1);
        assertEquals(0xfffff000, conf1(slot, 0x18, 4));
        assertEquals(0, conf1(slot, 0x1c, 4), "BAR3 is not implemented");
        conf1(slot, 0x1c, 4, -1);
        assertEquals(0, conf1(slot, 0x1c, 4));
    }

    @Test
    void barsDecodeOnlyWithMemoryEnabledAndFollowTheGuest() {
        assertEquals(-1, fn.barAddress(0));
        assertEquals(0xffL, mmio.read(WIN64, 1), "not decoded before the command register enables memory");
        conf1(slot, 0x04, 2, PciFunction.CMD_MEMORY);
        assertEquals(WIN64, fn.barAddress(0));
        assertEquals(WIN64, fn.lastMoved);
        assertEquals(0x1010, mmio.read(WIN64 + 0x10, 4));
        mmio.write(WIN64 + 8, 4, 77);
        assertEquals(77, fn.lastWrite.get());
        // The guest moves BAR0 below 4 GiB.
        conf1(slot, 0x10, 4, 0xd000_0000);
        conf1(slot, 0x14, 4, 0);
        assertEquals(0xd000_0000L, fn.barAddress(0));
        assertEquals(0xd000_0000L, fn.lastMoved);
        assertEquals(0xffL, mmio.read(WIN64, 1), "old address released");
        assertEquals(0x1000, mmio.read(0xd000_0000L, 4));
        // Sizing with decoding on never maps the all-ones pattern above the physical address width.
        conf1(slot, 0x10, 4, -1);
        conf1(slot, 0x14, 4, -1);
        assertEquals(-1, fn.barAddress(0));
        conf1(slot, 0x04, 2, 0);
        assertEquals(-1, fn.lastMoved);
    }

    @Test
    void barOverlappingAnotherClaimStaysUnmapped() {
        conf1(slot, 0x04, 2, PciFunction.CMD_MEMORY);
        conf1(slot, 0x10, 4, (int) ECAM);
        conf1(slot, 0x14, 4, 0);
        assertEquals(-1, fn.barAddress(0));
        assertEquals(0x1234, ecam(slot, 0, 2), "ECAM still answers");
    }

    @Test
    void capabilityListIsWalkable() {
        assertNotEquals(0, conf1(slot, 0x06, 2) & PciFunction.STATUS_CAP_LIST);
        int cap = conf1(slot, 0x34, 1);
        assertEquals(0x40, cap);
        assertEquals(0x09, conf1(slot, cap, 1));
        assertEquals(0x42, conf1(slot, cap + 3, 1));
        int next = conf1(slot, cap + 1, 1);
        assertEquals(MsixCapability.CAP_ID, conf1(slot, next, 1));
        assertEquals(3, conf1(slot, next + 2, 2) & 0x7ff, "table size - 1");
        assertEquals(2, conf1(slot, next + 4, 4) & 7, "table BIR");
        assertEquals(0x802, conf1(slot, next + 8, 4), "PBA offset and BIR");
        assertEquals(0, conf1(slot, next + 1, 1), "end of list");
        conf1(slot, cap, 1, 0x55);
        assertEquals(0x09, conf1(slot, cap, 1), "capability IDs are read-only");
    }

    @Test
    void intxFollowsTheInterruptDisableBit() {
        RecordingIrqLine line = new RecordingIrqLine();
        fn.setIntx(line, 10);
        assertEquals(10, conf1(slot, 0x3c, 1));
        assertEquals(1, conf1(slot, 0x3d, 1), "INTA#");
        fn.intx(true);
        assertTrue(line.isHigh());
        assertNotEquals(0, conf1(slot, 0x06, 2) & PciFunction.STATUS_INTERRUPT);
        conf1(slot, 0x04, 2, PciFunction.CMD_INTX_DISABLE);
        assertFalse(line.isHigh(), "masked by Interrupt Disable");
        assertNotEquals(0, conf1(slot, 0x06, 2) & PciFunction.STATUS_INTERRUPT, "status still shows it");
        conf1(slot, 0x04, 2, 0);
        assertTrue(line.isHigh());
        fn.intx(false);
        assertFalse(line.isHigh());
        assertEquals(0, conf1(slot, 0x06, 2) & PciFunction.STATUS_INTERRUPT);
    }

    @Test
    void msixDeliversMasksAndRemembersPending() {
        MsixCapability m = fn.msix;
        int cap = m.capabilityOffset();
        conf1(slot, 0x04, 2, PciFunction.CMD_MEMORY);
        long table = WIN32;
        assertFalse(m.trigger(1), "disabled: the caller falls back to INTx");
        mmio.write(table + 16, 4, 0xfee0_0000L);
        mmio.write(table + 20, 4, 0);
        mmio.write(table + 24, 4, 0x41);
        assertEquals(1, mmio.read(table + 28, 4), "vectors start masked");
        conf1(slot, cap + 2, 2, 0x8000); // enable
        assertTrue(m.trigger(1));
        assertEquals(0, fn.irqs.deliveredWithData(0x41), "masked: not delivered");
        assertEquals(0b10, mmio.read(table + 0x800, 4), "pending bit in the PBA");
        mmio.write(table + 28, 4, 0); // unmask
        assertEquals(1, fn.irqs.deliveredWithData(0x41), "delivered on unmask");
        assertEquals(0, mmio.read(table + 0x800, 4));
        assertEquals(0xfee0_0000L, fn.irqs.routes.get(0).address);
        m.trigger(1);
        assertEquals(2, fn.irqs.deliveredWithData(0x41));
        conf1(slot, cap + 2, 2, 0xc000); // function mask
        m.trigger(1);
        assertEquals(2, fn.irqs.deliveredWithData(0x41));
        conf1(slot, cap + 2, 2, 0x8000);
        assertEquals(3, fn.irqs.deliveredWithData(0x41), "delivered when the function mask clears");
        mmio.write(table + 24, 4, 0x42); // reprogrammed data reaches the route
        m.trigger(1);
        assertEquals(1, fn.irqs.deliveredWithData(0x42));
        assertEquals(1, fn.irqs.routes.size(), "one route per vector, reused");
        m.close();
        for (MsiRoute r : fn.irqs.routes) assertTrue(((FakeInterruptController.Route) r).closed);
    }

    @Test
    void aFullBusIsReportedAsSuch() {
        for (int i = 2; i < PciHostBridge.MAX_DEVICES; i++)
            host.attach(new PciHostBridge.HostBridgeFunction(), "filler " + i);
        assertThrows(
                PciBusFullException.class, () -> host.attach(new PciHostBridge.HostBridgeFunction(), "one too many"));
        // A 16 KiB BAR in a 4 KiB window with no 64-bit window: no room either.
        PciHostBridge small = new PciHostBridge(new Bus("small"), WIN32, 0x1000, 0, 0);
        assertThrows(PciBusFullException.class, () -> small.attach(new TestFunction(), "too big"));
    }
}
