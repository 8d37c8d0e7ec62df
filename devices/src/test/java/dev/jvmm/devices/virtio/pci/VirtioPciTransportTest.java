package dev.jvmm.devices.virtio.pci;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.event.IoEventRegistry;
import dev.jvmm.devices.block.MemoryBackend;
import dev.jvmm.devices.pci.PciHostBridge;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.FakeInterruptController;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.PciTestDriver;
import dev.jvmm.devices.virtio.RecordingIrqLine;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class VirtioPciTransportTest {
    static final long FEATURES = VirtioFeatures.bit(VirtioFeatures.VERSION_1);

    GuestRam ram = new GuestRam();
    MemoryBackend disk = new MemoryBackend(1 << 20, false);
    Bus mmio = new Bus("mmio"), pio = new Bus("pio");
    PciHostBridge host = new PciHostBridge(mmio, Transport.MMIO32_BASE, 0x1000_0000L, 0, 0);
    FakeInterruptController irqs = new FakeInterruptController();
    FakeIoEvents ioEvents = new FakeIoEvents();
    VirtioPciTransport transport;
    PciTestDriver drv;

    static final class FakeIoEvents implements IoEventRegistry {
        final List<long[]> active = new ArrayList<>();

        @Override
        public synchronized Registration register(Space space, long address, int length, EventFd event) {
            long[] r = {address, length};
            active.add(r);
            return () -> {
                synchronized (FakeIoEvents.this) {
                    active.remove(r);
                }
            };
        }

        synchronized List<Long> addresses() {
            List<Long> a = new ArrayList<>();
            for (long[] r : active) a.add(r[0]);
            return a;
        }
    }

    PciTestDriver attach(boolean msix, int queues) {
        pio.register("pci", PciHostBridge.CONFIG_ADDRESS_PORT, PciHostBridge.CONFIG_PORTS_LENGTH, host.configPorts());
        transport = new VirtioPciTransport(
                "vda",
                new VirtioBlock(disk, VirtioBlock.Options.DEFAULT.withQueues(queues)),
                ram.memory,
                irqs,
                17,
                ioEvents);
        int slot = host.attach(transport.pciFunction(), "vda");
        drv = new PciTestDriver(mmio, pio, irqs, slot, 17, msix, transport);
        return drv;
    }

    @AfterEach
    void tearDown() {
        if (drv != null) drv.close();
        disk.close();
        ram.close();
    }

    long flush(DriverQueue q) {
        long hdr = ram.alloc(16, 8), status = ram.alloc(1, 1);
        ram.memory.writeInt(hdr, VirtioBlock.T_FLUSH);
        ram.memory.writeByte(status, (byte) 0x7f);
        q.add(in(hdr, 16), out(status, 1));
        return status;
    }

    @Test
    void modernIdsAndVirtioCapabilities() {
        attach(true, 2);
        assertEquals(0x1af4, drv.cfg(0, 2));
        assertEquals(0x1042, drv.cfg(2, 2), "0x1040 + block device type 2");
        assertEquals(1, drv.cfg(8, 1), "revision 1: a non-transitional device");
        assertEquals(0x40, drv.cfg(0x2e, 2), "subsystem id >= 0x40");
        assertEquals(0x0100, drv.cfg(0x0a, 2), "mass storage class");
        assertEquals(0x4, drv.cfg(0x10, 4) & 0x6, "BAR0 is a 64-bit memory BAR");
        assertEquals(VirtioPciTransport.COMMON_OFFSET, drv.common);
        assertEquals(VirtioPciTransport.NOTIFY_OFFSET, drv.notify);
        assertEquals(VirtioPciTransport.ISR_OFFSET, drv.isr);
        assertEquals(VirtioPciTransport.DEVICE_OFFSET, drv.device);
        assertTrue(drv.pciCfg > 0, "VIRTIO_PCI_CAP_PCI_CFG is present");
        assertTrue(drv.msixCap > 0);
        assertEquals(2, (drv.cfg(drv.msixCap + 2, 2) & 0x7ff), "3 vectors: config + 2 queues");
        assertEquals(4, drv.notifyMultiplier);
        assertEquals(2, drv.common(0x12, 2), "num_queues");
        assertEquals(drv.bar0 + 0x3000, drv.notifyAddress(0));
        assertEquals(drv.bar0 + 0x3004, drv.notifyAddress(1));
        assertEquals(drv.bar0 + 0x3004, transport.notifyAddress(1));
        assertEquals(256, drv.queueMaxSize(1));
        assertEquals(0, drv.queueMaxSize(2), "no third queue");
    }

    @Test
    void msixVectorsOutsideTheTableReadBackAsNoVector() {
        attach(true, 1);
        drv.common(0x10, 2, 5);
        assertEquals(0xffff, drv.common(0x10, 2));
        drv.common(0x16, 2, 0);
        drv.common(0x1a, 2, 1);
        assertEquals(1, drv.common(0x1a, 2));
        drv.common(0x1a, 2, 2);
        assertEquals(0xffff, drv.common(0x1a, 2));
    }

    @Test
    void queueInterruptsGoToTheirMsixVectors() throws Exception {
        attach(true, 2);
        DriverQueue q0 = new DriverQueue(ram, 16), q1 = new DriverQueue(ram, 16);
        drv.init(FEATURES | VirtioFeatures.bit(VirtioBlock.F_MQ), q0, q1);
        flush(q1);
        drv.notifyQueue(1);
        assertTrue(drv.awaitQueueInterrupt(1, 5000));
        assertEquals(0, irqs.deliveredWithData(PciTestDriver.MSI_DATA_BASE + 1), "queue 0's vector stays quiet");
        assertFalse(((RecordingIrqLine) irqs.line(17)).isHigh(), "no INTx with MSI-X on");
        assertEquals(0, drv.mmio.read(drv.bar0 + drv.isr, 1), "no ISR queue bit with MSI-X on");
    }

    @Test
    void noVectorMeansNoInterrupt() throws Exception {
        attach(true, 1);
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES, q);
        drv.common(0x16, 2, 0);
        // Queue vectors are frozen with the queue; use a fresh device setup with NO_VECTOR instead.
        drv.reset();
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        drv.negotiate(FEATURES);
        DriverQueue q2 = new DriverQueue(ram, 16);
        drv.common(0x16, 2, 0);
        drv.common(0x18, 2, 16);
        drv.common(0x20, 8, q2.desc);
        drv.common(0x28, 8, q2.avail);
        drv.common(0x30, 8, q2.used);
        assertEquals(0xffff, drv.common(0x1a, 2), "reset unmapped the queue vector");
        drv.common(0x1c, 2, 1);
        drv.driverOk();
        flush(q2);
        drv.notifyQueue(0);
        assertTrue(TestDriver.awaitUsed(q2, 1, 5000));
        Thread.sleep(20);
        assertEquals(0, irqs.deliveredWithData(PciTestDriver.MSI_DATA_BASE + 1));
    }

    @Test
    void intxWithIsrReadToClear() throws Exception {
        attach(false, 1);
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES, q);
        RecordingIrqLine line = (RecordingIrqLine) irqs.line(17);
        assertEquals(17, drv.cfg(0x3c, 1), "Interrupt Line names the GSI");
        flush(q);
        drv.notifyQueue(0);
        assertTrue(line.awaitHigh(5000));
        assertNotEquals(0, drv.cfg(0x06, 2) & 0x08, "PCI status shows the interrupt");
        assertEquals(1, drv.mmio.read(drv.bar0 + drv.isr, 1));
        assertFalse(line.isHigh(), "reading ISR deasserts INTx");
        assertEquals(0, drv.mmio.read(drv.bar0 + drv.isr, 1), "and clears it");
    }

    @Test
    void needsResetRaisesConfigInterruptAndIsrBit() throws Exception {
        attach(true, 1);
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES, q);
        q.setDesc(0, ram.alloc(8, 8), 8, Virtqueue.DESC_F_NEXT, 0);
        q.publish(0);
        drv.notifyQueue(0);
        assertTrue(drv.awaitConfigInterrupt(5000));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        assertEquals(2, drv.mmio.read(drv.bar0 + drv.isr, 1), "the config bit is set in ISR");
    }

    @Test
    void pciCfgCapabilityIsAWindowIntoBar0() {
        attach(true, 1);
        int cap = drv.pciCfg;
        drv.cfg(cap + 4, 1, 0); // bar
        drv.cfg(cap + 12, 4, 4); // length
        drv.cfg(cap + 8, 4, 0x12); // offset: num_queues (a 16-bit field within the dword at 0x10)
        drv.cfg(cap + 8, 4, 0x10);
        assertEquals(1, drv.cfg(cap + 16, 4) >>> 16, "num_queues read through the window");
        drv.cfg(cap + 12, 4, 1);
        drv.cfg(cap + 8, 4, 0x14); // device_status
        drv.cfg(cap + 16, 1, DeviceStatus.ACKNOWLEDGE);
        assertEquals(DeviceStatus.ACKNOWLEDGE, drv.status());
        assertEquals(DeviceStatus.ACKNOWLEDGE, drv.cfg(cap + 16, 1));
        drv.cfg(cap + 8, 4, 0x13); // misaligned for nothing: a byte is always aligned; try length 4 at 0x2
        drv.cfg(cap + 12, 4, 4);
        drv.cfg(cap + 8, 4, 0x2);
        assertEquals(0, drv.cfg(cap + 16, 4), "misaligned window access does nothing");
    }

    @Test
    void ioEventsFollowBar0() {
        attach(true, 2);
        long bar = drv.bar0;
        assertEquals(List.of(bar + 0x3000, bar + 0x3004), ioEvents.addresses());
        drv.cfg(0x04, 2, 0);
        assertEquals(List.of(), ioEvents.addresses(), "unregistered when decoding stops");
        drv.cfg(0x10, 4, 0xd000_0000);
        drv.cfg(0x04, 2, 2);
        assertEquals(List.of(0xd000_3000L, 0xd000_3004L), ioEvents.addresses());
        drv.close();
        drv = null;
        assertEquals(List.of(), ioEvents.addresses(), "closed with the transport");
    }

    @Test
    void queueEnableCannotBeCleared() {
        attach(true, 1);
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        drv.negotiate(FEATURES);
        drv.setupQueue(0, new DriverQueue(ram, 16));
        drv.common(0x1c, 2, 0);
        assertEquals(1, drv.common(0x1c, 2));
        drv.common(0x18, 2, 4);
        assertEquals(16, drv.common(0x18, 2), "queue_size frozen once enabled");
    }
}
