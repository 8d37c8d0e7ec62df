package dev.jvmm.devices.virtio.net;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static dev.jvmm.devices.virtio.net.VirtioNet.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.snapshot.DeviceState;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioTransport;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A NIC across a snapshot, on each transport: while quiesced it takes no frame from its backend (they wait there);
 * restored into a device built afresh over the same memory with a new backend, it keeps the MAC the driver set, its
 * receive filter and link, receives into the buffers the driver had posted and transmits.
 */
class VirtioNetSnapshotTest {
    static final long MAC = 0x525400123456L, NEW_MAC = 0x525400010203L, PEER = 0x525400abcdefL;

    GuestRam ram = new GuestRam(0x10000, 8 << 20);
    TestDriver drv;
    DriverQueue[] q = new DriverQueue[3];

    @AfterEach
    void tearDown() {
        if (drv != null) drv.close();
        ram.close();
    }

    long put(byte[] data) {
        long gpa = ram.alloc(Math.max(1, data.length), 16);
        ram.memory.write(gpa, data);
        return gpa;
    }

    int ctrl(int cls, int cmd, byte[] data) throws InterruptedException {
        long hdr = put(new byte[] {(byte) cls, (byte) cmd});
        long ack = ram.alloc(1, 1);
        q[2].add(in(hdr, 2), in(put(data), data.length), out(ack, 1));
        drv.notifyQueue(2);
        assertTrue(TestDriver.awaitUsed(q[2], 1, 5000), "control command completed");
        q[2].takeUsed();
        return ram.memory.readByte(ack);
    }

    static byte[] frame(long dst) {
        byte[] f = new byte[HEADER + 60];
        for (int i = 0; i < 6; i++) f[HEADER + i] = (byte) (dst >>> (40 - 8 * i));
        for (int i = 0; i < 6; i++) f[HEADER + 6 + i] = (byte) (PEER >>> (40 - 8 * i));
        f[HEADER + 20] = 0x42;
        return f;
    }

    static VirtioNet nic(FakeBackend backend) {
        return new VirtioNet(backend, new VirtioNet.Options(new MacAddress(MAC), 256, 16));
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void theRestoredNicKeepsItsMacFilterAndBuffers(Transport t) throws Exception {
        FakeBackend first = new FakeBackend(VirtioNetTest.ALL);
        drv = t.attach(ram, nic(first));
        for (int i = 0; i < 3; i++) q[i] = new DriverQueue(ram, 64);
        drv.init(VirtioNetTest.BASE & drv.deviceFeatures(), q);
        assertEquals(CTRL_OK, ctrl(CTRL_MAC, CTRL_MAC_ADDR_SET, new MacAddress(NEW_MAC).bytes()));
        assertEquals(CTRL_OK, ctrl(CTRL_RX, CTRL_RX_PROMISC, new byte[] {0}));
        ByteBuffer tables =
                ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(0).putInt(0);
        assertEquals(CTRL_OK, ctrl(CTRL_MAC, CTRL_MAC_TABLE_SET, tables.array()));
        long[] bufs = new long[4];
        for (int i = 0; i < bufs.length; i++) {
            bufs[i] = ram.alloc(2048, 16);
            q[0].add(out(bufs[i], 2048));
        }
        drv.notifyQueue(0);
        assertTrue(first.deliver(0, frame(NEW_MAC)), "a frame before the snapshot");
        assertTrue(TestDriver.awaitUsed(q[0], 1, 5000));
        q[0].takeUsed();

        VirtioTransport transport = (VirtioTransport) drv.owner();
        transport.quiesce();
        DeviceState saved;
        try {
            assertFalse(first.deliver(0, frame(NEW_MAC)), "while quiesced a frame waits in the backend");
            saved = DeviceState.of(transport);
        } finally {
            transport.resumeAfterSnapshot();
        }
        drv.close();

        FakeBackend second = new FakeBackend(VirtioNetTest.ALL);
        VirtioNet restored = nic(second);
        drv = t.attach(ram, restored);
        saved.restoreInto((Snapshottable) drv.owner());
        assertEquals(1, second.activations.size(), "the new backend is started for the running driver");
        assertEquals(new MacAddress(NEW_MAC), restored.mac());
        assertTrue(restored.linkUp());
        assertTrue(second.deliver(0, frame(PEER)), "a frame for another unicast address is taken");
        assertEquals(1, restored.rxFiltered(), "and filtered: promiscuous mode stays off");
        assertTrue(second.deliver(0, frame(NEW_MAC)));
        assertTrue(TestDriver.awaitUsed(q[0], 1, 5000), "received into a buffer posted before the snapshot");
        int[] used = q[0].takeUsed();
        assertEquals(HEADER + 60, used[1]);
        byte[] got = new byte[HEADER + 60];
        ram.memory.read(bufs[1], got, 0, got.length);
        assertEquals(0x42, got[HEADER + 20], "into the second buffer: the first was used before the snapshot");

        long tx = put(frame(PEER));
        q[1].add(in(tx, HEADER + 60));
        drv.notifyQueue(1);
        assertTrue(TestDriver.awaitUsed(q[1], 1, 5000), "transmits");
        assertEquals(1, second.sent.get(0).size());
    }
}
