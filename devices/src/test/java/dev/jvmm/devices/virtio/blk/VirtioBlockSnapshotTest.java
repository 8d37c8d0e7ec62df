package dev.jvmm.devices.virtio.blk;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.snapshot.DeviceState;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.devices.block.MemoryBackend;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioTransport;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A virtio-blk disk across a snapshot, on each transport: its transport's state (status, features, queue layout and
 * position, MSI-X table, PCI configuration, interrupt state) saved, loaded into a transport and device built afresh
 * over the same guest memory and disk, and the mock driver goes on as if nothing happened; what is refused.
 */
class VirtioBlockSnapshotTest {
    static final long DISK = 1 << 20;

    GuestRam ram = new GuestRam();
    MemoryBackend disk = new MemoryBackend(DISK, false);
    TestDriver drv;

    @AfterEach
    void tearDown() {
        if (drv != null) drv.close();
        disk.close();
        ram.close();
    }

    long header(int type, long sector) {
        long h = ram.alloc(16, 8);
        ram.memory.writeInt(h, type);
        ram.memory.writeLong(h + 8, sector);
        return h;
    }

    /** Makes a request available without notifying: returns the status byte's address. */
    long post(DriverQueue q, int type, long sector, long data, int len) {
        long status = ram.alloc(1, 1);
        ram.memory.writeByte(status, (byte) 0x7f);
        var dataBuf = type == VirtioBlock.T_IN ? out(data, len) : in(data, len);
        q.add(in(header(type, sector), 16), dataBuf, out(status, 1));
        return status;
    }

    void complete(DriverQueue q, long status) throws InterruptedException {
        assertTrue(TestDriver.awaitUsed(q, 1, 5000), "request completed");
        q.takeUsed();
        assertEquals(VirtioBlock.S_OK, ram.memory.readByte(status));
    }

    /** Saves the transport as a snapshot does: quiesced, then resumed. */
    static DeviceState save(TestDriver d) {
        VirtioTransport t = (VirtioTransport) d.owner();
        t.quiesce();
        try {
            return DeviceState.of(t);
        } finally {
            t.resumeAfterSnapshot();
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void theDriverGoesOnWithTheRestoredDisk(Transport t) throws Exception {
        drv = t.attach(ram, new VirtioBlock(disk, VirtioBlock.Options.DEFAULT));
        DriverQueue q = new DriverQueue(ram, 64);
        drv.init(VirtioBlockTest.ALL & drv.deviceFeatures(), q);
        byte[] a = new byte[4096];
        new Random(1).nextBytes(a);
        long buf = ram.alloc(4096, 8);
        ram.memory.write(buf, a);
        for (int i = 0; i < 5; i++) { // the rings move off zero
            long st = post(q, VirtioBlock.T_OUT, 8L * i, buf, 4096);
            drv.notifyQueue(0);
            complete(q, st);
        }
        assertTrue(drv.awaitQueueInterrupt(0, 5000));
        DeviceState saved = save(drv);
        drv.close(); // the old machine is gone

        // A request the driver made available after the snapshot's position: the restored device must serve it.
        long readBuf = ram.alloc(4096, 8);
        q.setUsedEvent(5); // event index: an interrupt for the next used buffer, please
        long status = post(q, VirtioBlock.T_IN, 16, readBuf, 4096);
        drv = t.attach(ram, new VirtioBlock(disk, VirtioBlock.Options.DEFAULT));
        saved.restoreInto((Snapshottable) drv.owner());
        assertEquals(
                DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK,
                drv.status());
        complete(q, status);
        byte[] got = new byte[4096];
        ram.memory.read(readBuf, got, 0, got.length);
        assertArrayEquals(a, got, "read through the restored device");
        assertTrue(drv.awaitQueueInterrupt(0, 5000), "its interrupt (an MSI-X route made anew, or the pin)");

        // And a notified request, through the restored notify address.
        q.setUsedEvent(6);
        long status2 = post(q, VirtioBlock.T_IN, 0, readBuf, 512);
        drv.notifyQueue(0);
        complete(q, status2);
        assertTrue(drv.awaitQueueInterrupt(0, 5000), "and its interrupt");
        ram.memory.read(readBuf, got, 0, got.length);
        assertArrayEquals(Arrays.copyOf(a, 512), Arrays.copyOf(got, 512));
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void anotherDiskOrAStateCutShortIsRefused(Transport t) throws Exception {
        drv = t.attach(ram, new VirtioBlock(disk, VirtioBlock.Options.DEFAULT));
        DriverQueue q = new DriverQueue(ram, 64);
        drv.init(VirtioBlockTest.ALL & drv.deviceFeatures(), q);
        DeviceState saved = save(drv);
        drv.close();
        drv = null;

        try (MemoryBackend ro = new MemoryBackend(DISK, true)) {
            TestDriver other = t.attach(ram, new VirtioBlock(ro, VirtioBlock.Options.DEFAULT));
            try {
                SnapshotException e =
                        assertThrows(SnapshotException.class, () -> saved.restoreInto((Snapshottable) other.owner()));
                assertEquals(SnapshotException.Kind.MACHINE_MISMATCH, e.kind());
                assertTrue(e.getMessage().contains("read-only"), e.getMessage());
            } finally {
                other.close();
            }
        }
        try (MemoryBackend bigger = new MemoryBackend(2 * DISK, false)) {
            TestDriver other = t.attach(ram, new VirtioBlock(bigger, VirtioBlock.Options.DEFAULT));
            try {
                SnapshotException e =
                        assertThrows(SnapshotException.class, () -> saved.restoreInto((Snapshottable) other.owner()));
                assertEquals(SnapshotException.Kind.MACHINE_MISMATCH, e.kind());
                assertTrue(
                        e.getMessage().contains("2048 sectors")
                                && e.getMessage().contains("4096"),
                        e.getMessage());
            } finally {
                other.close();
            }
        }
        byte[] s = saved.state();
        for (int n : new int[] {0, 7, 20, s.length / 2, s.length - 1}) {
            TestDriver other = t.attach(ram, new VirtioBlock(disk, VirtioBlock.Options.DEFAULT));
            try {
                DeviceState cut = new DeviceState(saved.id(), saved.version(), Arrays.copyOf(s, n));
                SnapshotException e =
                        assertThrows(SnapshotException.class, () -> cut.restoreInto((Snapshottable) other.owner()));
                assertEquals(SnapshotException.Kind.CORRUPT, e.kind(), e.getMessage());
            } finally {
                other.close();
            }
        }
    }
}
