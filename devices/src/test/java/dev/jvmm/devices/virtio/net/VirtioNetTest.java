package dev.jvmm.devices.virtio.net;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static dev.jvmm.devices.virtio.net.VirtioNet.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetCapabilities;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.VirtioNetHeader;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** virtio-net driven by a mock guest driver over each transport, against a fake backend. */
class VirtioNetTest {
    static final long MAC = 0x525400123456L, OTHER = 0x525400abcdefL, BCAST = 0xffffffffffffL, MCAST = 0x01005e000001L;
    static final NetCapabilities ALL =
            new NetCapabilities(EnumSet.allOf(NetOffload.class), EnumSet.allOf(NetOffload.class), 1);
    static final NetCapabilities NONE = new NetCapabilities(Set.of(), Set.of(), 1);
    static final long BASE = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
            | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC)
            | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX)
            | bit(F_MAC)
            | bit(F_STATUS)
            | bit(F_CTRL_VQ)
            | bit(F_CTRL_RX)
            | bit(F_CTRL_RX_EXTRA)
            | bit(F_CTRL_MAC_ADDR);

    GuestRam ram = new GuestRam(0x10000, 8 << 20);
    FakeBackend backend;
    VirtioNet net;
    TestDriver drv;
    DriverQueue[] q;

    @AfterEach
    void tearDown() {
        if (drv != null) drv.close();
        ram.close();
    }

    void start(Transport t, NetCapabilities caps, long features, int queueCount) {
        backend = new FakeBackend(caps);
        net = new VirtioNet(backend, new VirtioNet.Options(new MacAddress(MAC), 256, 16));
        drv = t.attach(ram, net);
        q = new DriverQueue[queueCount];
        for (int i = 0; i < queueCount; i++) q[i] = new DriverQueue(ram, 64);
        drv.init(features & drv.deviceFeatures(), q);
    }

    void start(Transport t, long features) {
        start(t, ALL, features, 3);
    }

    DriverQueue rx() {
        return q[0];
    }

    DriverQueue tx() {
        return q[1];
    }

    DriverQueue ctrl() {
        return q[2];
    }

    /** A vnet header (all zero unless given) and an Ethernet frame to dst of len bytes in all. */
    static byte[] frame(long dst, int ethLen, long seed) {
        byte[] f = new byte[HEADER + ethLen];
        new Random(seed).nextBytes(f);
        Arrays.fill(f, 0, HEADER, (byte) 0);
        for (int i = 0; i < 6; i++) f[HEADER + i] = (byte) (dst >>> (40 - 8 * i));
        for (int i = 0; i < 6; i++) f[HEADER + 6 + i] = (byte) (OTHER >>> (40 - 8 * i));
        return f;
    }

    long put(byte[] data) {
        long gpa = ram.alloc(Math.max(1, data.length), 16);
        ram.memory.write(gpa, data);
        return gpa;
    }

    byte[] read(long gpa, int len) {
        byte[] b = new byte[len];
        ram.memory.read(gpa, b, 0, len);
        return b;
    }

    /** Sends the chains on the transmit queue and waits for all to be used. */
    void transmit(DriverQueue.Buf[]... chains) throws InterruptedException {
        for (DriverQueue.Buf[] c : chains) tx().add(c);
        drv.notifyQueue(1);
        assertTrue(TestDriver.awaitUsed(tx(), chains.length, 5000), "transmit chains completed");
        for (int i = 0; i < chains.length; i++) assertEquals(0, tx().takeUsed()[1], "tx used length");
    }

    int ctrlCommand(int cls, int cmd, byte[] data) throws InterruptedException {
        long hdr = put(new byte[] {(byte) cls, (byte) cmd});
        long ack = ram.alloc(1, 1);
        ram.memory.writeByte(ack, (byte) 0x77);
        if (data.length > 0) ctrl().add(in(hdr, 2), in(put(data), data.length), out(ack, 1));
        else ctrl().add(in(hdr, 2), out(ack, 1));
        drv.notifyQueue(2);
        assertTrue(TestDriver.awaitUsed(ctrl(), 1, 5000), "control command completed");
        assertEquals(1, ctrl().takeUsed()[1]);
        return ram.memory.readByte(ack);
    }

    static byte[] macTables(long[] uni, long[] multi) {
        ByteBuffer b = ByteBuffer.allocate(8 + 6 * (uni.length + multi.length)).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(uni.length);
        for (long m : uni) b.put(new MacAddress(m).bytes());
        b.putInt(multi.length);
        for (long m : multi) b.put(new MacAddress(m).bytes());
        return b.array();
    }

    /** Posts {@code count} receive buffers of {@code size} bytes; returns their addresses. */
    long[] postRx(int count, int size) {
        long[] a = new long[count];
        for (int i = 0; i < count; i++) {
            a[i] = ram.alloc(size, 16);
            rx().add(out(a[i], size));
        }
        drv.notifyQueue(0);
        return a;
    }

    // ---- configuration and features ----

    @ParameterizedTest
    @EnumSource(Transport.class)
    void configSpaceHoldsMacLinkAndPairs(Transport t) throws Exception {
        start(t, BASE);
        assertEquals(1, drv.deviceId());
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) mac[i] = (byte) drv.readConfig(i, 1);
        assertEquals(new MacAddress(MAC), MacAddress.of(mac, 0));
        assertEquals(S_LINK_UP, drv.readConfig(6, 2));
        assertEquals(1, drv.readConfig(8, 2));
        net.setLinkUp(false);
        assertTrue(drv.awaitConfigInterrupt(2000), "link change is a configuration change");
        assertEquals(0, drv.readConfig(6, 2));
    }

    @Test
    void offloadsAreOfferedOnlyWhenTheBackendHonoursThem() {
        int[] offloads = {
            F_CSUM,
            F_GUEST_CSUM,
            F_HOST_TSO4,
            F_HOST_TSO6,
            F_HOST_ECN,
            F_HOST_USO,
            F_GUEST_TSO4,
            F_GUEST_TSO6,
            F_GUEST_ECN,
            F_GUEST_USO4,
            F_GUEST_USO6
        };
        long none = VirtioNet.features(NONE, 1);
        for (int f : offloads) assertFalse(has(none, f), "feature " + f + " without backend support");
        assertFalse(has(none, F_MQ), "feature " + F_MQ + " without backend support");
        assertTrue(has(none, F_MRG_RXBUF) && has(none, F_CTRL_VQ) && has(none, F_MAC) && has(none, F_STATUS));

        long all = VirtioNet.features(ALL, 1);
        for (int f : offloads) assertTrue(has(all, f), "feature " + f);

        // Segmentation without partial checksums is not offered (the spec's dependencies).
        NetCapabilities tsoOnly =
                new NetCapabilities(EnumSet.of(NetOffload.TSO4), EnumSet.of(NetOffload.TSO4, NetOffload.TSO_ECN), 1);
        long f = VirtioNet.features(tsoOnly, 1);
        assertFalse(has(f, F_HOST_TSO4) || has(f, F_GUEST_TSO4) || has(f, F_GUEST_ECN));
        NetCapabilities user = new NetCapabilities(
                EnumSet.of(NetOffload.CSUM, NetOffload.TSO4, NetOffload.USO),
                EnumSet.of(NetOffload.CSUM, NetOffload.TSO4),
                1);
        f = VirtioNet.features(user, 1);
        assertTrue(has(f, F_HOST_USO) && has(f, F_GUEST_TSO4));
        assertFalse(has(f, F_GUEST_TSO6) || has(f, F_GUEST_USO4) || has(f, F_HOST_TSO6));
        assertTrue(has(VirtioNet.features(new NetCapabilities(Set.of(), Set.of(), 4), 4), F_MQ));
    }

    @Test
    void backendIsToldOnlyTheOffloadsTheGuestAcceptedWithTheirDependencies() {
        start(Transport.MMIO, BASE | bit(F_GUEST_CSUM) | bit(F_GUEST_TSO4) | bit(F_GUEST_ECN) | bit(F_GUEST_USO4));
        assertEquals(
                EnumSet.of(NetOffload.CSUM, NetOffload.TSO4, NetOffload.TSO_ECN),
                backend.activations.get(0).toGuest());
        assertEquals(HEADER, backend.activations.get(0).vnetHeaderLength());
        assertEquals(
                Set.of(),
                VirtioNet.toGuest(bit(F_GUEST_TSO4) | bit(F_GUEST_TSO6)),
                "TSO without GUEST_CSUM is not used");
        assertEquals(
                EnumSet.of(NetOffload.CSUM, NetOffload.USO),
                VirtioNet.toGuest(bit(F_GUEST_CSUM) | bit(F_GUEST_USO4) | bit(F_GUEST_USO6)));
    }

    // ---- transmit ----

    @ParameterizedTest
    @EnumSource(Transport.class)
    void framesInOneOrSeveralBuffersReachTheBackendIntact(Transport t) throws Exception {
        start(t, BASE);
        byte[] a = frame(OTHER, 60, 1), b = frame(OTHER, 1514, 2), c = frame(BCAST, 400, 3);
        long pa = put(a), pb = put(b), pc = put(c);
        long table = ram.alloc(16 * 3, 16);
        transmit(new DriverQueue.Buf[] {in(pa, a.length)}, new DriverQueue.Buf[] {
            in(pb, HEADER), in(pb + HEADER, 100), in(pb + HEADER + 100, b.length - HEADER - 100)
        });
        tx().publish(tx().indirectChain(table, in(pc, 10), in(pc + 10, 200), in(pc + 210, c.length - 210)));
        drv.notifyQueue(1);
        assertTrue(TestDriver.awaitUsed(tx(), 1, 5000));
        List<byte[]> sent = backend.sent.get(0);
        assertEquals(3, sent.size());
        assertArrayEquals(a, sent.get(0));
        assertArrayEquals(b, sent.get(1));
        assertArrayEquals(c, sent.get(2));
        assertEquals(3, net.txFrames());
        assertEquals(a.length + b.length + c.length - 3L * HEADER, net.txBytes(), "Ethernet bytes, no headers");
        assertEquals(0, net.txDropped());
    }

    @Test
    void malformedFramesAreDroppedCountedAndTheQueueKeepsMoving() throws Exception {
        start(Transport.MMIO, BASE | bit(F_CSUM) | bit(F_HOST_TSO4)); // HOST_TSO6, USO, ECN not accepted
        byte[] good = frame(OTHER, 100, 9);
        java.util.List<byte[]> bad = new java.util.ArrayList<>();
        bad.add(Arrays.copyOf(good, HEADER + 13)); // shorter than an Ethernet header
        bad.add(new byte[HEADER + VirtioNet.MAX_FRAME + 1]); // longer than any frame
        byte[] dataValid = good.clone();
        dataValid[0] = VirtioNetHeader.F_DATA_VALID; // an rx-only flag on tx
        bad.add(dataValid);
        byte[] csumBeyond = good.clone();
        csumBeyond[0] = VirtioNetHeader.F_NEEDS_CSUM;
        csumBeyond[6] = 90; // csum_start 90 + csum_offset 16 + 2 > 100
        csumBeyond[8] = 16;
        bad.add(csumBeyond);
        byte[] tso6 = good.clone();
        tso6[0] = VirtioNetHeader.F_NEEDS_CSUM;
        tso6[1] = VirtioNetHeader.GSO_TCPV6; // not negotiated
        tso6[4] = (byte) 200;
        bad.add(tso6);
        byte[] ufo = tso6.clone();
        ufo[1] = VirtioNetHeader.GSO_UDP; // never offered
        bad.add(ufo);
        byte[] tso4NoSize = tso6.clone();
        tso4NoSize[1] = VirtioNetHeader.GSO_TCPV4;
        tso4NoSize[4] = 0; // gso_size 0
        bad.add(tso4NoSize);
        byte[] tso4Ecn = tso6.clone();
        tso4Ecn[1] = (byte) (VirtioNetHeader.GSO_TCPV4 | VirtioNetHeader.GSO_ECN); // ECN not negotiated
        bad.add(tso4Ecn);
        byte[] tso4HdrLenBeyond = tso6.clone();
        tso4HdrLenBeyond[1] = VirtioNetHeader.GSO_TCPV4;
        tso4HdrLenBeyond[2] = 101; // hdr_len: headers longer than the 100-byte frame
        bad.add(tso4HdrLenBeyond);
        byte[] tso4NoCsum = tso6.clone();
        tso4NoCsum[0] = 0;
        tso4NoCsum[1] = VirtioNetHeader.GSO_TCPV4;
        bad.add(tso4NoCsum);
        for (byte[] f : bad) transmit(new DriverQueue.Buf[] {in(put(f), f.length)});
        // A transmit chain with a device-writable buffer.
        long p = put(good);
        transmit(new DriverQueue.Buf[] {in(p, good.length), out(ram.alloc(16, 16), 16)});
        // Now good frames, one of them a valid TSO4 frame with a partial checksum.
        byte[] tso4 = tso6.clone();
        tso4[1] = VirtioNetHeader.GSO_TCPV4;
        transmit(
                new DriverQueue.Buf[] {in(put(good), good.length)}, new DriverQueue.Buf[] {in(put(tso4), tso4.length)});
        assertEquals(bad.size() + 1, net.txMalformed());
        assertEquals(2, backend.sent.get(0).size(), "only the good frames were passed on");
        assertArrayEquals(good, backend.sent.get(0).get(0));
        assertArrayEquals(tso4, backend.sent.get(0).get(1));
        assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }

    @Test
    void aBusyBackendParksTheQueueWithoutSpinningAndResumesInOrder() throws Exception {
        start(Transport.MMIO, BASE);
        backend.busy = true;
        byte[][] frames = new byte[5][];
        for (int i = 0; i < frames.length; i++) {
            frames[i] = frame(OTHER, 80 + i, i);
            tx().add(in(put(frames[i]), frames[i].length));
        }
        drv.notifyQueue(1);
        Thread.sleep(200);
        drv.notifyQueue(1); // more notifications while parked change nothing
        Thread.sleep(100);
        assertEquals(0, tx().pendingUsed(), "nothing completed while the backend is full");
        assertTrue(
                backend.transmitCalls.get() <= 3,
                "the parked queue was retried " + backend.transmitCalls.get() + " times (a busy loop?)");
        backend.txReady();
        assertTrue(TestDriver.awaitUsed(tx(), 5, 5000), "all completed after txReady");
        List<byte[]> sent = backend.sent.get(0);
        assertEquals(5, sent.size());
        for (int i = 0; i < frames.length; i++) assertArrayEquals(frames[i], sent.get(i), "frame " + i + " in order");
    }

    // ---- receive ----

    @ParameterizedTest
    @EnumSource(Transport.class)
    void receiveWithoutMergeableBuffersUsesOneChainPerFrame(Transport t) throws Exception {
        start(t, BASE);
        long[] bufs = postRx(2, 1526);
        byte[] f = frame(MAC, 1514, 5);
        f[10] = 0x55; // num_buffers as the backend left it: the device sets 1
        assertTrue(backend.deliver(0, f));
        assertTrue(drv.awaitQueueInterrupt(0, 2000), "used-buffer interrupt");
        int[] e = rx().takeUsed();
        assertEquals(f.length, e[1]);
        byte[] got = read(bufs[0], f.length);
        assertEquals(1, got[10] | got[11] << 8, "num_buffers 1 without MRG_RXBUF");
        got[10] = 0x55;
        assertArrayEquals(f, got);
        // A frame bigger than the chain: dropped, and the chain stays for the next frame.
        assertTrue(backend.deliver(0, frame(MAC, 2000, 6)));
        assertEquals(1, net.rxDropped());
        assertEquals(0, rx().pendingUsed());
        byte[] small = frame(MAC, 64, 7);
        assertTrue(backend.deliver(0, small));
        assertEquals(1, rx().pendingUsed());
        assertEquals(small.length, rx().takeUsed()[1]);
        byte[] second = read(bufs[1], small.length);
        assertArrayEquals(
                Arrays.copyOfRange(small, HEADER, small.length), Arrays.copyOfRange(second, HEADER, small.length));
    }

    @Test
    void aFrameInPiecesSpansMergeableBuffersAsOneFrame() throws Exception {
        start(Transport.MMIO, BASE | bit(F_MRG_RXBUF));
        long[] a = postRx(4, 300);
        byte[] f = frame(MAC, 900, 12); // 912 bytes: four buffers, the last holding 12
        // Pieces that end inside buffers and across them: headers, then a payload in three unequal parts.
        byte[][] parts = {
            Arrays.copyOfRange(f, 0, 66),
            Arrays.copyOfRange(f, 66, 300),
            Arrays.copyOfRange(f, 300, 301),
            Arrays.copyOfRange(f, 301, f.length)
        };
        assertTrue(backend.deliver(0, parts));
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        for (int i = 0; i < 4; i++) {
            int[] e = rx().takeUsed();
            assertEquals(i == 3 ? 12 : 300, e[1], "used length of buffer " + i);
            got.write(read(a[i], e[1]));
        }
        byte[] g = got.toByteArray();
        assertEquals(4, g[10] | g[11] << 8, "num_buffers");
        g[10] = g[11] = 0;
        assertArrayEquals(f, g);
        assertTrue(
                backend.deliver(0, Arrays.copyOfRange(f, 0, HEADER + 4), Arrays.copyOfRange(f, HEADER + 4, 100)),
                "a first piece without the whole Ethernet header: dropped, not read past");
        assertEquals(1, net.rxDropped());
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void mergeableBuffersCarryOneFrameOverSeveralChains(Transport t) throws Exception {
        start(t, BASE | bit(F_MRG_RXBUF));
        // Ten chains of 100 bytes, each of two descriptors (40 + 60).
        long[] a = new long[10];
        for (int i = 0; i < a.length; i++) {
            a[i] = ram.alloc(100, 16);
            rx().add(out(a[i], 40), out(a[i] + 40, 60));
        }
        drv.notifyQueue(0);
        byte[] f = frame(MAC, 950, 11); // 962 bytes: ten buffers, the last holding 62
        assertTrue(backend.deliver(0, f));
        assertEquals(10, rx().pendingUsed());
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        for (int i = 0; i < 10; i++) {
            int[] e = rx().takeUsed();
            assertEquals(i == 9 ? 62 : 100, e[1], "used length of buffer " + i);
            got.write(read(a[i], e[1]));
        }
        byte[] g = got.toByteArray();
        assertEquals(10, g[10] | g[11] << 8, "num_buffers");
        g[10] = g[11] = 0;
        assertArrayEquals(f, g);
        assertEquals(1, net.rxFrames());
        assertEquals(f.length - HEADER, net.rxBytes());
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void framesDeliveredHeldInterruptTheGuestOncePerBurstOrWhenTheBuffersRunOut(Transport t) throws Exception {
        start(t, BASE | bit(F_MRG_RXBUF));
        postRx(3, 300);
        assertTrue(backend.deliverHeld(0, frame(MAC, 100, 1)));
        assertTrue(backend.deliverHeld(0, frame(MAC, 100, 2)));
        assertEquals(2, rx().pendingUsed(), "both frames are in the used ring");
        assertFalse(drv.awaitQueueInterrupt(0, 100), "no interrupt while the burst goes on");
        backend.interruptGuest(0);
        assertTrue(drv.awaitQueueInterrupt(0, 2000), "one interrupt at the burst's end");
        backend.interruptGuest(0);
        assertFalse(drv.awaitQueueInterrupt(0, 100), "nothing new since: no second interrupt");
        rx().takeUsed();
        rx().takeUsed();
        rx().setUsedEvent(2); // as a driver with EVENT_IDX: tell me of the next one
        assertTrue(backend.deliverHeld(0, frame(MAC, 100, 3)), "the last buffer");
        assertFalse(drv.awaitQueueInterrupt(0, 100));
        assertFalse(backend.deliverHeld(0, frame(MAC, 100, 4)), "no buffer left");
        assertTrue(drv.awaitQueueInterrupt(0, 2000), "refused: the guest hears of what it has, to post more");
        assertEquals(3, net.rxFrames());
    }

    @Test
    void aGuestWithoutBuffersPausesTheBackendAndBuffersNothing() throws Exception {
        start(Transport.MMIO, BASE | bit(F_MRG_RXBUF));
        byte[] f = frame(MAC, 1000, 12);
        assertFalse(backend.deliver(0, f), "no buffers: refused");
        assertFalse(backend.deliver(0, f), "still refused");
        // Two buffers are not enough for the frame: still refused, nothing used, the buffers are kept.
        postRx(2, 300);
        Thread.sleep(50);
        int ready = backend.rxReadyCalls.get();
        assertEquals(1, ready, "posting buffers told the waiting backend once");
        assertFalse(backend.deliver(0, f));
        assertEquals(0, rx().pendingUsed());
        long[] more = postRx(2, 600);
        long deadline = System.currentTimeMillis() + 2000;
        while (backend.rxReadyCalls.get() == ready && System.currentTimeMillis() < deadline) Thread.sleep(1);
        assertEquals(ready + 1, backend.rxReadyCalls.get());
        assertTrue(backend.deliver(0, f));
        assertEquals(3, rx().pendingUsed(), "the frame took the two kept buffers and one new one");
        int[] e1 = rx().takeUsed(), e2 = rx().takeUsed(), e3 = rx().takeUsed();
        assertEquals(300, e1[1]);
        assertEquals(300, e2[1]);
        assertEquals(f.length - 600, e3[1]);
        assertTrue(backend.deliver(0, frame(MAC, 100, 13)), "the fourth buffer takes the next frame");
        assertEquals(0, net.rxDropped());
        assertNotEquals(0, more[1]);
    }

    @Test
    void aFrameLargerThanTheWholeRingIsDroppedNotWaitedFor() throws Exception {
        backend = new FakeBackend(ALL);
        net = new VirtioNet(backend, new VirtioNet.Options(new MacAddress(MAC), 4, 1));
        drv = Transport.MMIO.attach(ram, net);
        q = new DriverQueue[] {new DriverQueue(ram, 4), new DriverQueue(ram, 4), new DriverQueue(ram, 4)};
        drv.init(BASE | bit(F_MRG_RXBUF), q);
        postRx(4, 100);
        assertTrue(backend.deliver(0, frame(MAC, 1000, 1)), "cannot ever fit in four 100-byte buffers: dropped");
        assertEquals(1, net.rxDropped());
        assertEquals(0, rx().pendingUsed());
        assertTrue(backend.deliver(0, frame(MAC, 300, 2)), "the buffers serve the next frame");
        assertEquals(4, rx().pendingUsed());
    }

    @Test
    void aFrameLargerThanARingSmallerThanTheDevicesMaximumIsDroppedToo() throws Exception {
        // The device offers 256 entries per queue; the driver uses 4: those 4 are all it can ever post.
        backend = new FakeBackend(ALL);
        net = new VirtioNet(backend, new VirtioNet.Options(new MacAddress(MAC), 256, 1));
        drv = Transport.MMIO.attach(ram, net);
        q = new DriverQueue[] {new DriverQueue(ram, 4), new DriverQueue(ram, 4), new DriverQueue(ram, 4)};
        drv.init(BASE | bit(F_MRG_RXBUF), q);
        postRx(4, 100);
        assertTrue(backend.deliver(0, frame(MAC, 1000, 1)), "cannot ever fit in the ring's four buffers: dropped");
        assertEquals(1, net.rxDropped());
        assertEquals(0, rx().pendingUsed());
        assertTrue(backend.deliver(0, frame(MAC, 300, 2)), "the buffers serve the next frame");
        assertEquals(4, rx().pendingUsed());
    }

    @Test
    void aMergeableBufferShorterThanTheHeaderBreaksTheDeviceNotTheBackend() throws Exception {
        start(Transport.MMIO, BASE | bit(F_MRG_RXBUF));
        rx().add(out(ram.alloc(8, 8), 8));
        drv.notifyQueue(0);
        assertFalse(backend.deliver(0, frame(MAC, 100, 1)));
        assertTrue(drv.awaitConfigInterrupt(2000));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        assertFalse(backend.deliver(0, frame(MAC, 100, 1)), "a broken queue takes nothing, throws nothing");
        // A reset brings it back.
        q = new DriverQueue[] {new DriverQueue(ram, 64), new DriverQueue(ram, 64), new DriverQueue(ram, 64)};
        drv.init(BASE | bit(F_MRG_RXBUF), q);
        postRx(1, 2048);
        assertTrue(backend.deliver(0, frame(MAC, 100, 1)));
        assertEquals(1, rx().pendingUsed());
    }

    @Test
    void aBackendThatFailsOnItsOwnThreadBreaksTheDeviceUntilReset() throws Exception {
        start(Transport.MMIO, BASE);
        backend.ports.get(0).backendFailed("the event loop", new OutOfMemoryError("test: direct memory"));
        assertTrue(drv.awaitConfigInterrupt(2000));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        drv.reset();
        q = new DriverQueue[] {new DriverQueue(ram, 64), new DriverQueue(ram, 64), new DriverQueue(ram, 64)};
        drv.init(BASE, q);
        assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        assertEquals(2, backend.activations.size(), "the reset activated the backend afresh");
    }

    @Test
    void hostileReceiveRingsFailTheDeviceCleanly() throws Exception {
        start(Transport.MMIO, BASE);
        // A descriptor chain that loops.
        rx().setDesc(0, ram.alloc(2048, 16), 2048, Virtqueue.DESC_F_WRITE | Virtqueue.DESC_F_NEXT, 0);
        rx().publish(0);
        drv.notifyQueue(0);
        assertFalse(backend.deliver(0, frame(MAC, 100, 1)));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        // An available index far ahead of the device.
        q = new DriverQueue[] {new DriverQueue(ram, 64), new DriverQueue(ram, 64), new DriverQueue(ram, 64)};
        drv.init(BASE, q);
        rx().setAvailIdx(1000);
        assertFalse(backend.deliver(0, frame(MAC, 100, 1)));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }

    // ---- control queue ----

    @ParameterizedTest
    @EnumSource(Transport.class)
    void receiveModesAndMacTablesFilterFrames(Transport t) throws Exception {
        start(t, BASE | bit(F_MRG_RXBUF));
        postRx(32, 2048);
        assertTrue(backend.deliver(0, frame(OTHER, 60, 1)), "promiscuous until the driver says otherwise");
        assertEquals(1, rx().pendingUsed());
        assertEquals(CTRL_OK, ctrlCommand(CTRL_RX, CTRL_RX_PROMISC, new byte[] {0}));
        int before = rx().pendingUsed();
        backend.deliver(0, frame(OTHER, 60, 2));
        backend.deliver(0, frame(MCAST, 60, 3));
        assertEquals(before, rx().pendingUsed(), "another host's unicast and an unlisted group are left out");
        assertEquals(2, net.rxFiltered());
        backend.deliver(0, frame(MAC, 60, 4));
        backend.deliver(0, frame(BCAST, 60, 5));
        assertEquals(before + 2, rx().pendingUsed(), "own address and broadcast pass");

        long extraUni = 0x02000000beefL;
        assertEquals(
                CTRL_OK,
                ctrlCommand(CTRL_MAC, CTRL_MAC_TABLE_SET, macTables(new long[] {extraUni}, new long[] {MCAST})));
        backend.deliver(0, frame(extraUni, 60, 6));
        backend.deliver(0, frame(MCAST, 60, 7));
        backend.deliver(0, frame(0x01005e000002L, 60, 8));
        assertEquals(before + 4, rx().pendingUsed(), "listed addresses pass, an unlisted group does not");

        assertEquals(CTRL_OK, ctrlCommand(CTRL_RX, CTRL_RX_ALLMULTI, new byte[] {1}));
        backend.deliver(0, frame(0x01005e000002L, 60, 9));
        assertEquals(before + 5, rx().pendingUsed());
        assertEquals(CTRL_OK, ctrlCommand(CTRL_RX, CTRL_RX_NOBCAST, new byte[] {1}));
        backend.deliver(0, frame(BCAST, 60, 10));
        assertEquals(before + 5, rx().pendingUsed(), "no broadcast");
        assertEquals(CTRL_OK, ctrlCommand(CTRL_RX, CTRL_RX_NOUNI, new byte[] {1}));
        backend.deliver(0, frame(MAC, 60, 11));
        assertEquals(before + 5, rx().pendingUsed(), "no unicast");
        assertEquals(CTRL_OK, ctrlCommand(CTRL_RX, CTRL_RX_PROMISC, new byte[] {1}));
        backend.deliver(0, frame(OTHER, 60, 12));
        assertEquals(before + 6, rx().pendingUsed(), "promiscuous again");
    }

    @Test
    void controlCommandsAreCheckedAndAnsweredWithErrors() throws Exception {
        start(Transport.MMIO, BASE);
        assertEquals(CTRL_ERR, ctrlCommand(9, 0, new byte[] {1}), "unknown class");
        assertEquals(CTRL_ERR, ctrlCommand(CTRL_RX, 7, new byte[] {1}), "unknown rx command");
        assertEquals(CTRL_ERR, ctrlCommand(CTRL_RX, CTRL_RX_PROMISC, new byte[] {1, 1}), "rx mode with two data bytes");
        assertEquals(CTRL_ERR, ctrlCommand(CTRL_RX, CTRL_RX_PROMISC, new byte[0]), "rx mode without data");
        byte[] table = macTables(new long[] {OTHER}, new long[0]);
        assertEquals(
                CTRL_ERR,
                ctrlCommand(CTRL_MAC, CTRL_MAC_TABLE_SET, Arrays.copyOf(table, table.length - 1)),
                "table one byte short");
        byte[] huge = macTables(new long[0], new long[0]);
        huge[0] = (byte) 0xff;
        huge[1] = (byte) 0xff;
        huge[2] = (byte) 0xff;
        huge[3] = (byte) 0x7f;
        assertEquals(CTRL_ERR, ctrlCommand(CTRL_MAC, CTRL_MAC_TABLE_SET, huge), "an entry count beyond the data");
        assertEquals(CTRL_ERR, ctrlCommand(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, new byte[] {2, 0}), "MQ not negotiated");
        assertEquals(
                CTRL_ERR,
                ctrlCommand(CTRL_MAC, CTRL_MAC_ADDR_SET, new byte[] {1, 0, 0x5e, 0, 0, 1}),
                "a multicast address for the NIC");
        assertEquals(CTRL_OK, ctrlCommand(CTRL_MAC, CTRL_MAC_ADDR_SET, new byte[] {0x52, 0x54, 0, 1, 2, 3}));
        assertEquals(0x01, drv.readConfig(3, 1));
        assertEquals(0x03, drv.readConfig(5, 1));
        assertEquals(new MacAddress(0x525400010203L), net.mac());
        // Over 64 entries: the table overflows to "accept all unicast".
        long[] many = new long[65];
        for (int i = 0; i < many.length; i++) many[i] = 0x020000000000L + i;
        assertEquals(CTRL_OK, ctrlCommand(CTRL_MAC, CTRL_MAC_TABLE_SET, macTables(many, new long[0])));
        assertEquals(CTRL_OK, ctrlCommand(CTRL_RX, CTRL_RX_PROMISC, new byte[] {0}));
        postRx(4, 2048);
        assertTrue(backend.deliver(0, frame(0x02000000ffffL, 60, 1)));
        assertEquals(1, rx().pendingUsed());
        assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }

    @Test
    void aControlCommandWithoutAnAckByteNeedsReset() throws Exception {
        start(Transport.MMIO, BASE);
        ctrl().add(in(put(new byte[] {0, 0, 1}), 3));
        drv.notifyQueue(2);
        assertTrue(drv.awaitConfigInterrupt(2000));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }

    // ---- multiqueue ----

    @ParameterizedTest
    @EnumSource(Transport.class)
    void queuePairsAreEnabledByTheControlQueue(Transport t) throws Exception {
        NetCapabilities four = new NetCapabilities(Set.of(), Set.of(), 4);
        start(t, four, BASE | bit(F_MQ), 9);
        assertTrue(has(drv.deviceFeatures(), F_MQ));
        assertEquals(4, drv.readConfig(8, 2));
        assertEquals(1, backend.ports.size(), "one pair until VQ_PAIRS_SET");
        DriverQueue control = q[8]; // with MQ the control queue comes after all pairs
        assertEquals(CTRL_ERR, ctrlCommandOn(control, 8, new byte[] {5, 0}), "more pairs than offered");
        assertEquals(CTRL_ERR, ctrlCommandOn(control, 8, new byte[] {0, 0}), "zero pairs");
        assertEquals(CTRL_OK, ctrlCommandOn(control, 8, new byte[] {3, 0}));
        assertEquals(3, backend.ports.size());
        assertEquals(3, net.queuePairsInUse());
        // Transmit on pair 2 (queue 5) reaches backend queue 2; receive on pair 1 lands in queue 2.
        byte[] f = frame(OTHER, 100, 1);
        q[5].add(in(put(f), f.length));
        drv.notifyQueue(5);
        assertTrue(TestDriver.awaitUsed(q[5], 1, 5000));
        assertArrayEquals(f, backend.sent.get(2).get(0));
        long buf = ram.alloc(2048, 16);
        q[2 * 1].add(out(buf, 2048));
        drv.notifyQueue(2);
        byte[] r = frame(MAC, 200, 2);
        assertTrue(backend.deliver(1, r));
        assertEquals(1, q[2].pendingUsed());
        // A pair beyond those in use: its frames are dropped, not left hanging.
        byte[] g = frame(OTHER, 100, 3);
        q[7].add(in(put(g), g.length));
        drv.notifyQueue(7);
        assertTrue(TestDriver.awaitUsed(q[7], 1, 5000));
        assertEquals(1, net.txDropped());
    }

    int ctrlCommandOn(DriverQueue control, int index, byte[] data) throws InterruptedException {
        long hdr = put(new byte[] {(byte) CTRL_MQ, (byte) CTRL_MQ_VQ_PAIRS_SET});
        long ack = ram.alloc(1, 1);
        control.add(in(hdr, 2), in(put(data), data.length), out(ack, 1));
        drv.notifyQueue(index);
        assertTrue(TestDriver.awaitUsed(control, 1, 5000));
        control.takeUsed();
        return ram.memory.readByte(ack);
    }

    @Test
    void resetStopsTheBackendAndTheDeviceComesBack() throws Exception {
        start(Transport.PCI_MSIX, BASE);
        assertEquals(CTRL_OK, ctrlCommand(CTRL_MAC, CTRL_MAC_ADDR_SET, new byte[] {0x52, 0x54, 0, 9, 9, 9}));
        drv.reset();
        assertEquals(1, backend.deactivations);
        assertEquals(new MacAddress(MAC), net.mac(), "the configured MAC is back after reset");
        q = new DriverQueue[] {new DriverQueue(ram, 64), new DriverQueue(ram, 64), new DriverQueue(ram, 64)};
        drv.init(BASE, q);
        byte[] f = frame(OTHER, 64, 1);
        transmit(new DriverQueue.Buf[] {in(put(f), f.length)});
        assertEquals(1, backend.sent.get(0).size());
    }

    @Test
    void linkDownDropsFramesBothWays() throws Exception {
        start(Transport.MMIO, BASE);
        postRx(2, 2048);
        net.setLinkUp(false);
        assertTrue(backend.deliver(0, frame(MAC, 60, 1)));
        assertEquals(0, rx().pendingUsed());
        byte[] f = frame(OTHER, 64, 1);
        transmit(new DriverQueue.Buf[] {in(put(f), f.length)});
        assertEquals(0, backend.sent.get(0).size());
        net.setLinkUp(true);
        assertTrue(backend.deliver(0, frame(MAC, 60, 1)));
        assertEquals(1, rx().pendingUsed());
    }

    /** Two frames per 400 ms each way. */
    static final RateLimiter.Config TWO_FRAMES =
            new RateLimiter.Config(Optional.empty(), Optional.of(new TokenBucket.Config(2, 0, 400)));

    void startLimited() {
        backend = new FakeBackend(ALL);
        net = new VirtioNet(
                backend, new VirtioNet.Options(new MacAddress(MAC), 256, 16).withRateLimits(TWO_FRAMES, TWO_FRAMES));
        drv = Transport.MMIO.attach(ram, net);
        q = new DriverQueue[] {new DriverQueue(ram, 64), new DriverQueue(ram, 64), new DriverQueue(ram, 64)};
        drv.init(BASE & drv.deviceFeatures(), q);
    }

    @Test
    void theTransmitLimiterHoldsFramesInTheQueueUntilTokensCome() throws Exception {
        startLimited();
        long t0 = System.nanoTime();
        DriverQueue.Buf[][] chains = new DriverQueue.Buf[6][];
        for (int i = 0; i < chains.length; i++) {
            byte[] f = frame(OTHER, 100, i);
            chains[i] = new DriverQueue.Buf[] {in(put(f), f.length)};
        }
        transmit(chains);
        long elapsedMs = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(6, backend.sent.get(0).size(), "every frame sent, once, in the end");
        for (int i = 0; i < 6; i++)
            assertArrayEquals(frame(OTHER, 100, i), backend.sent.get(0).get(i));
        assertTrue(elapsedMs >= 700, "six frames at two per 400 ms took only " + elapsedMs + " ms");
        assertTrue(net.txThrottled() > 0);
    }

    @Test
    void theReceiveLimiterMakesTheBackendWaitThenWakesIt() throws Exception {
        startLimited();
        postRx(8, 2048);
        assertTrue(backend.deliver(0, frame(MAC, 100, 1)));
        assertTrue(backend.deliver(0, frame(MAC, 100, 2)));
        int ready = backend.rxReadyCalls.get();
        long refused = System.nanoTime();
        assertFalse(backend.deliver(0, frame(MAC, 100, 3)), "out of tokens: the backend keeps the frame");
        assertEquals(2, rx().pendingUsed(), "nothing of the third frame reached the guest");
        // The backend retries when told it may (rxReady), as a real one does; the limiter tells it on refill.
        long deadline = System.currentTimeMillis() + 10_000;
        boolean delivered = false;
        while (!delivered && System.currentTimeMillis() < deadline) {
            while (backend.rxReadyCalls.get() == ready && System.currentTimeMillis() < deadline) Thread.sleep(5);
            ready = backend.rxReadyCalls.get();
            delivered = backend.deliver(0, frame(MAC, 100, 3));
        }
        long waitedMs = (System.nanoTime() - refused) / 1_000_000;
        assertTrue(delivered, "the refill woke the backend and the frame went in");
        assertTrue(waitedMs >= 150, "a token takes 200 ms to come back; the frame went in after " + waitedMs + " ms");
        assertEquals(3, rx().pendingUsed());
        assertEquals(0, net.rxDropped(), "throttling drops nothing");
        assertTrue(net.rxThrottled() > 0);
    }
}
