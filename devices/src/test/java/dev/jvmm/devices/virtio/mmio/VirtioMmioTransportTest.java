package dev.jvmm.devices.virtio.mmio;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.devices.block.MemoryBackend;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.FakeInterruptController;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.MmioTestDriver;
import dev.jvmm.devices.virtio.RecordingInterruptEvent;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class VirtioMmioTransportTest {
    static final long BASE = 0xd000_0000L;
    static final long FEATURES = VirtioFeatures.bit(VirtioFeatures.VERSION_1);

    GuestRam ram;
    Bus bus;
    MemoryBackend disk;
    FakeInterruptController irqs;
    RecordingInterruptEvent irq;
    VirtioMmioTransport transport;
    MmioTestDriver drv;

    @BeforeEach
    void setUp() {
        ram = new GuestRam();
        bus = new Bus("mmio");
        disk = new MemoryBackend(1 << 20, false);
        irqs = new FakeInterruptController();
        transport = new VirtioMmioTransport(
                "vda", new VirtioBlock(disk, VirtioBlock.Options.DEFAULT), ram.memory, irqs, 5, Trigger.LEVEL);
        irq = irqs.events.get(5);
        bus.register("vda", BASE, VirtioMmioTransport.WINDOW_SIZE, transport);
        drv = new MmioTestDriver(bus, BASE, irq, transport);
    }

    @AfterEach
    void tearDown() {
        drv.close();
        disk.close();
        ram.close();
    }

    /** A flush request: header (readable) and status (writable). */
    int flush(DriverQueue q) {
        long hdr = ram.alloc(16, 8), status = ram.alloc(1, 1);
        ram.memory.writeInt(hdr, VirtioBlock.T_FLUSH);
        ram.memory.writeByte(status, (byte) 0xff);
        q.add(in(hdr, 16), out(status, 1));
        return (int) status;
    }

    @Test
    void identifiesAsVersion2BlockDevice() {
        assertEquals(0x74726976, drv.reg(0x000));
        assertEquals(2, drv.reg(0x004));
        assertEquals(2, drv.reg(0x008));
        assertEquals(VirtioMmioTransport.VENDOR_ID, drv.reg(0x00c));
        assertEquals(256, drv.queueMaxSize(0));
        assertEquals(0, drv.queueMaxSize(1), "no second queue");
        assertEquals(0, bus.read(BASE, 2), "registers answer only 32-bit accesses");
    }

    @Test
    void cmdlineFragmentNamesSizeAddressAndIrq() {
        assertEquals("virtio_mmio.device=4K@0xd0000000:5", VirtioMmioTransport.cmdlineFragment(BASE, 5));
        assertEquals(BASE + 0x50, VirtioMmioTransport.notifyAddress(BASE));
    }

    @Test
    void featureNegotiation() {
        long offered = drv.deviceFeatures();
        assertTrue(VirtioFeatures.has(offered, VirtioFeatures.VERSION_1));
        assertTrue(VirtioFeatures.has(offered, VirtioBlock.F_FLUSH));
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        assertFalse(
                drv.negotiate(FEATURES | VirtioFeatures.bit(VirtioFeatures.RING_PACKED)),
                "an unoffered feature is refused");
        drv.reset();
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        assertFalse(
                drv.negotiate(VirtioFeatures.bit(VirtioBlock.F_FLUSH)), "a legacy driver (no VERSION_1) is refused");
        drv.reset();
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        assertTrue(drv.negotiate(FEATURES | VirtioFeatures.bit(VirtioBlock.F_FLUSH)));
        assertEquals(FEATURES | VirtioFeatures.bit(VirtioBlock.F_FLUSH), transport.negotiatedFeatures());
        // After FEATURES_OK the driver features are frozen.
        drv.reg(0x024, 0);
        drv.reg(0x020, 0);
        assertEquals(FEATURES | VirtioFeatures.bit(VirtioBlock.F_FLUSH), transport.negotiatedFeatures());
    }

    @Test
    void driverOkWithoutFeaturesOkIsNotAccepted() {
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK);
        assertEquals(0, drv.status() & DeviceStatus.DRIVER_OK);
    }

    @Test
    void requestCompletesWithOneTriggerAndStatusUntilAcknowledged() throws Exception {
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES | VirtioFeatures.bit(VirtioBlock.F_FLUSH), q);
        int status = flush(q);
        assertEquals(0, irq.triggers());
        drv.notifyQueue(0);
        assertTrue(irq.awaitTriggers(1, 5000), "used-buffer interrupt");
        assertEquals(1, drv.reg(0x060), "InterruptStatus: used buffer");
        assertEquals(1, q.pendingUsed());
        assertEquals(0, ram.memory.readByte(status));
        assertTrue(irq.isAsserted(), "a level pin stays asserted until EOI");
        drv.reg(0x064, 1);
        assertEquals(0, drv.reg(0x060));
        irq.eoi();
        assertFalse(irq.isAsserted());
        assertEquals(1, irq.triggers(), "nothing pending at EOI: not asserted again");
        assertEquals(1, disk.flushes.get());
    }

    @Test
    void everyEventIsOneTriggerOnAnEdgePin() throws Exception {
        FakeInterruptController edgeIrqs = new FakeInterruptController();
        MemoryBackend disk2 = new MemoryBackend(1 << 20, false);
        VirtioMmioTransport t2 = new VirtioMmioTransport(
                "vdb", new VirtioBlock(disk2, VirtioBlock.Options.DEFAULT), ram.memory, edgeIrqs, 6, Trigger.EDGE);
        bus.register("vdb", BASE + 0x1000, VirtioMmioTransport.WINDOW_SIZE, t2);
        RecordingInterruptEvent edge = edgeIrqs.events.get(6);
        try (MmioTestDriver drv2 = new MmioTestDriver(bus, BASE + 0x1000, edge, t2)) {
            DriverQueue q = new DriverQueue(ram, 16);
            drv2.init(FEATURES, q);
            flush(q);
            drv2.notifyQueue(0);
            assertTrue(edge.awaitTriggers(1, 5000));
            flush(q);
            drv2.notifyQueue(0); // not acknowledged yet: the second event is an edge of its own
            assertTrue(edge.awaitTriggers(2, 5000), "an edge-triggered pin sees the second event");
            assertEquals(1, drv2.reg(0x060));
            drv2.reg(0x064, 1);
            assertEquals(0, drv2.reg(0x060));
        } finally {
            disk2.close();
        }
        assertTrue(edge.isClosed(), "closing the transport closes its interrupt");
    }

    @Test
    void eventWhileTheGuestHandlesTheLastIsAssertedAgainAtEoi() throws Exception {
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES, q);
        flush(q);
        drv.notifyQueue(0);
        assertTrue(irq.awaitTriggers(1, 5000));
        // The guest's handler reads and acknowledges, then a second request completes before its EOI: the
        // trigger finds the pin still asserted, which a level-triggered IOAPIC pin would not deliver.
        assertEquals(1, drv.reg(0x060));
        drv.reg(0x064, 1);
        flush(q);
        drv.notifyQueue(0);
        assertTrue(irq.awaitTriggers(2, 5000));
        irq.eoi();
        assertTrue(irq.isAsserted(), "the pending event asserts the pin again after EOI");
        assertEquals(3, irq.triggers());
        assertEquals(1, drv.reg(0x060));
    }

    @Test
    void queueConfigurationIsFrozenOnceReady() {
        DriverQueue q = new DriverQueue(ram, 16);
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        drv.negotiate(FEATURES);
        drv.setupQueue(0, q);
        drv.reg(0x080, 0x1234);
        drv.reg(0x038, 4);
        drv.driverOk();
        assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET, "the original layout is used");
    }

    @Test
    void resetClearsStatusInterruptsAndQueues() throws Exception {
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES, q);
        flush(q);
        drv.notifyQueue(0);
        assertTrue(irq.awaitTriggers(1, 5000));
        drv.writeStatus(0);
        assertEquals(0, drv.status());
        assertEquals(0, drv.reg(0x060));
        irq.eoi();
        assertFalse(irq.isAsserted(), "nothing pending after reset: the pin stays down after EOI");
        drv.reg(0x030, 0);
        assertEquals(0, drv.reg(0x044), "QueueReady cleared by reset");
        assertEquals(0, transport.negotiatedFeatures());
        // The device works again after re-initialisation, from fresh rings.
        DriverQueue q2 = new DriverQueue(ram, 16);
        drv.init(FEATURES, q2);
        flush(q2);
        drv.notifyQueue(0);
        assertTrue(TestDriver.awaitUsed(q2, 1, 5000));
    }

    @Test
    void badRingLayoutMeansNeedsResetAndConfigInterrupt() throws Exception {
        DriverQueue q = new DriverQueue(ram.memory, 16, ram.end() - 64, ram.base + 0x100, ram.base + 0x1000);
        drv.init(FEATURES, q);
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        assertNotEquals(0, drv.status() & DeviceStatus.DRIVER_OK);
        assertTrue(drv.awaitConfigInterrupt(1000));
    }

    @Test
    void malformedChainMeansNeedsResetWhileOtherDevicesKeepRunning() throws Exception {
        // A second device on the same bus, with its own disk.
        MemoryBackend disk2 = new MemoryBackend(1 << 20, false);
        VirtioMmioTransport t2 = new VirtioMmioTransport(
                "vdb", new VirtioBlock(disk2, VirtioBlock.Options.DEFAULT), ram.memory, irqs, 6, Trigger.LEVEL);
        bus.register("vdb", BASE + 0x1000, VirtioMmioTransport.WINDOW_SIZE, t2);
        try (MmioTestDriver drv2 = new MmioTestDriver(bus, BASE + 0x1000, irqs.events.get(6), t2)) {
            DriverQueue q = new DriverQueue(ram, 16), q2 = new DriverQueue(ram, 16);
            drv.init(FEATURES, q);
            drv2.init(FEATURES, q2);
            long b = ram.alloc(16, 8);
            q.setDesc(0, b, 16, Virtqueue.DESC_F_NEXT, 0); // a loop
            q.publish(0);
            drv.notifyQueue(0);
            assertTrue(drv.awaitConfigInterrupt(5000), "configuration change interrupt announces NEEDS_RESET");
            assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
            assertEquals(0, q.pendingUsed());

            flush(q2);
            drv2.notifyQueue(0);
            assertTrue(drv2.awaitQueueInterrupt(0, 5000), "the other device still serves");
            assertEquals(1, q2.pendingUsed());

            // Further notifications to the broken device do nothing; a reset brings it back.
            drv.notifyQueue(0);
            DriverQueue q3 = new DriverQueue(ram, 16);
            drv.init(FEATURES, q3);
            assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
            flush(q3);
            drv.notifyQueue(0);
            assertTrue(drv.awaitQueueInterrupt(0, 5000));
            assertEquals(1, q3.pendingUsed());
        } finally {
            disk2.close();
        }
    }

    @Test
    void notificationsBeforeDriverOkAreNotServed() throws Exception {
        DriverQueue q = new DriverQueue(ram, 16);
        drv.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        drv.negotiate(FEATURES);
        drv.setupQueue(0, q);
        flush(q);
        drv.notifyQueue(0);
        Thread.sleep(50);
        assertEquals(0, q.pendingUsed(), "nothing consumed before DRIVER_OK");
        drv.driverOk();
        assertTrue(TestDriver.awaitUsed(q, 1, 5000), "buffers offered before DRIVER_OK are served after it");
    }

    @Test
    void configSpaceReadsCapacity() {
        assertEquals((1 << 20) / 512, drv.readConfig(0, 8));
        assertEquals(512, drv.readConfig(20, 4));
        assertEquals(0, drv.readConfig(0x1000 - 0x100 - 4, 4), "beyond the device's config reads 0");
    }

    @Test
    void anErrorInTheDeviceMeansNeedsResetAConfigInterruptAndOneReport() throws Exception {
        List<String> broken = new CopyOnWriteArrayList<>();
        transport.onBroken(broken::add);
        DriverQueue q = new DriverQueue(ram, 16);
        drv.init(FEATURES, q);
        disk.errorOnFlush = new OutOfMemoryError("test: no heap for this request");
        flush(q);
        drv.notifyQueue(0);
        assertTrue(drv.awaitConfigInterrupt(5000), "configuration change interrupt announces NEEDS_RESET");
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        assertEquals(List.of("vda"), broken);
        // The I/O thread lived through it: after a reset the device serves again.
        DriverQueue q2 = new DriverQueue(ram, 16);
        drv.init(FEATURES, q2);
        assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        flush(q2);
        drv.notifyQueue(0);
        assertTrue(TestDriver.awaitUsed(q2, 1, 5000));
    }
}
