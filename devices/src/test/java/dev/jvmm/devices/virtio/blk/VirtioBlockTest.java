package dev.jvmm.devices.virtio.blk;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.MemoryBackend;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.DriverQueue.Buf;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioFeatures;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** virtio-blk driven through each transport by a mock guest driver. */
class VirtioBlockTest {
    static final long DISK = 1 << 20;
    static final long BASE_FEATURES = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
            | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX)
            | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC)
            | bit(VirtioBlock.F_FLUSH)
            | bit(VirtioBlock.F_BLK_SIZE)
            | bit(VirtioBlock.F_SEG_MAX);
    static final long ALL = BASE_FEATURES | bit(VirtioBlock.F_DISCARD) | bit(VirtioBlock.F_WRITE_ZEROES);

    GuestRam ram = new GuestRam();
    MemoryBackend disk;
    TestDriver drv;
    DriverQueue[] queues;

    static long bit(int f) {
        return 1L << f;
    }

    @AfterEach
    void tearDown() {
        if (drv != null) drv.close();
        if (disk != null) disk.close();
        ram.close();
    }

    void start(Transport t, VirtioBlock.Options options, boolean readOnlyBackend, long features) {
        disk = new MemoryBackend(DISK, readOnlyBackend);
        drv = t.attach(ram, new VirtioBlock(disk, options));
        queues = new DriverQueue[options.queues()];
        for (int i = 0; i < queues.length; i++) queues[i] = new DriverQueue(ram, 64);
        drv.init(features & drv.deviceFeatures(), queues);
    }

    void start(Transport t) {
        start(t, VirtioBlock.Options.DEFAULT.withSerial("jvmm-disk-0001"), false, ALL);
    }

    record Result(int status, int usedLen, long data, int head) {}

    long header(int type, long sector) {
        long h = ram.alloc(16, 8);
        ram.memory.writeInt(h, type);
        ram.memory.writeLong(h + 8, sector);
        return h;
    }

    Result submit(int queue, long statusGpa, Buf... bufs) throws InterruptedException {
        DriverQueue q = queues[queue];
        ram.memory.writeByte(statusGpa, (byte) 0x7f);
        int head = q.add(bufs);
        drv.notifyQueue(queue);
        assertTrue(TestDriver.awaitUsed(q, 1, 5000), "request completed");
        int[] e = q.takeUsed();
        assertEquals(head, e[0]);
        return new Result(ram.memory.readByte(statusGpa), e[1], 0, head);
    }

    Result read(long sector, long dataGpa, int len) throws InterruptedException {
        long s = ram.alloc(1, 1);
        return submit(0, s, in(header(VirtioBlock.T_IN, sector), 16), out(dataGpa, len), out(s, 1));
    }

    Result write(long sector, long dataGpa, int len) throws InterruptedException {
        long s = ram.alloc(1, 1);
        return submit(0, s, in(header(VirtioBlock.T_OUT, sector), 16), in(dataGpa, len), out(s, 1));
    }

    Result segments(int type, long[][] segs) throws InterruptedException {
        long data = ram.alloc(16L * segs.length, 8);
        for (int i = 0; i < segs.length; i++) {
            ram.memory.writeLong(data + 16L * i, segs[i][0]);
            ram.memory.writeInt(data + 16L * i + 8, (int) segs[i][1]);
            ram.memory.writeInt(data + 16L * i + 12, (int) segs[i][2]);
        }
        long s = ram.alloc(1, 1);
        return submit(0, s, in(header(type, 0), 16), in(data, 16 * segs.length), out(s, 1));
    }

    byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    byte[] diskBytes(long offset, int n) {
        byte[] b = new byte[n];
        java.lang.foreign.MemorySegment.copy(disk.data, ValueLayout.JAVA_BYTE, offset, b, 0, n);
        return b;
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void configSpace(Transport t) {
        start(t);
        assertEquals(2, drv.deviceId());
        assertEquals(DISK / 512, drv.readConfig(0, 8));
        assertEquals(254, drv.readConfig(12, 4), "seg_max: maximum queue size - 2");
        assertEquals(512, drv.readConfig(20, 4));
        assertEquals(1, drv.readConfig(34, 2));
        assertEquals(VirtioBlock.MAX_DISCARD_SECTORS, drv.readConfig(36, 4));
        assertEquals(VirtioBlock.MAX_DISCARD_SEG, drv.readConfig(40, 4));
        assertEquals(1, drv.readConfig(56, 1), "write_zeroes_may_unmap");
        long f = drv.deviceFeatures();
        assertTrue(VirtioFeatures.has(f, VirtioBlock.F_DISCARD));
        assertFalse(VirtioFeatures.has(f, VirtioBlock.F_RO));
        assertFalse(VirtioFeatures.has(f, VirtioBlock.F_MQ));
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void writeThenReadBackManySectors(Transport t) throws Exception {
        start(t);
        byte[] data = random(64 * 512, 1);
        long src = ram.alloc(data.length, 512);
        ram.memory.write(src, data);
        Result w = write(100, src, data.length);
        assertEquals(VirtioBlock.S_OK, w.status());
        assertEquals(1, w.usedLen(), "a write writes only the status byte");
        assertArrayEquals(data, diskBytes(100 * 512, data.length));

        long dst = ram.alloc(data.length, 512);
        Result r = read(100, dst, data.length);
        assertEquals(VirtioBlock.S_OK, r.status());
        assertEquals(data.length + 1, r.usedLen());
        byte[] back = new byte[data.length];
        ram.memory.read(dst, back, 0, back.length);
        assertArrayEquals(data, back);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void dataSpreadOverManyDescriptorsAndIndirectTables(Transport t) throws Exception {
        start(t);
        byte[] data = random(8 * 512, 2);
        // Header and data in one readable buffer, the data split in odd pieces: framing is free.
        long buf = ram.alloc(16 + data.length, 8);
        ram.memory.writeInt(buf, VirtioBlock.T_OUT);
        ram.memory.writeLong(buf + 8, 7);
        ram.memory.write(buf + 16, data);
        long s = ram.alloc(1, 1);
        assertEquals(
                VirtioBlock.S_OK,
                submit(0, s, in(buf, 100), in(buf + 100, 1000), in(buf + 1100, 16 + data.length - 1100), out(s, 1))
                        .status());
        assertArrayEquals(data, diskBytes(7 * 512, data.length));

        // Read back through an indirect table, into three pieces.
        long d1 = ram.alloc(1000, 8), d2 = ram.alloc(3000, 8), d3 = ram.alloc(96, 8);
        long table = ram.alloc(16 * 5, 16);
        DriverQueue q = queues[0];
        int head = q.indirectChain(
                table, in(header(VirtioBlock.T_IN, 7), 16), out(d1, 1000), out(d2, 3000), out(d3, 96), out(s, 1));
        q.publish(head);
        drv.notifyQueue(0);
        assertTrue(TestDriver.awaitUsed(q, 1, 5000));
        q.takeUsed();
        assertEquals(VirtioBlock.S_OK, ram.memory.readByte(s));
        byte[] back = new byte[data.length];
        ram.memory.read(d1, back, 0, 1000);
        ram.memory.read(d2, back, 1000, 3000);
        ram.memory.read(d3, back, 4000, 96);
        assertArrayEquals(data, back);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void interruptArrivesForCompletedRequest(Transport t) throws Exception {
        start(t);
        long src = ram.alloc(512, 512);
        write(0, src, 512);
        assertTrue(drv.awaitQueueInterrupt(0, 5000));
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void manyRequestsInFlightAtOnce(Transport t) throws Exception {
        start(t);
        DriverQueue q = queues[0];
        int n = 20;
        long[] status = new long[n];
        for (int i = 0; i < n; i++) {
            long src = ram.alloc(512, 512);
            ram.memory.fill(src, 512, (byte) i);
            status[i] = ram.alloc(1, 1);
            ram.memory.writeByte(status[i], (byte) 0x7f);
            q.add(in(header(VirtioBlock.T_OUT, i), 16), in(src, 512), out(status[i], 1));
        }
        drv.notifyQueue(0);
        assertTrue(TestDriver.awaitUsed(q, n, 5000));
        for (int i = 0; i < n; i++) {
            assertEquals(VirtioBlock.S_OK, ram.memory.readByte(status[i]));
            assertEquals((byte) i, diskBytes(i * 512L + 511, 1)[0]);
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void flushReachesTheBackend(Transport t) throws Exception {
        start(t);
        long s = ram.alloc(1, 1);
        assertEquals(
                VirtioBlock.S_OK,
                submit(0, s, in(header(VirtioBlock.T_FLUSH, 0), 16), out(s, 1)).status());
        assertEquals(1, disk.flushes.get());
        long src = ram.alloc(512, 512);
        write(0, src, 512);
        assertEquals(1, disk.flushes.get(), "with F_FLUSH negotiated a write is not flushed by itself");
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void withoutNegotiatedFlushEveryWriteIsStableOnCompletion(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT, false, ALL & ~bit(VirtioBlock.F_FLUSH));
        long src = ram.alloc(512, 512);
        assertEquals(VirtioBlock.S_OK, write(3, src, 512).status());
        assertEquals(1, disk.flushes.get());
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void getIdReturnsTheSerial(Transport t) throws Exception {
        start(t);
        long id = ram.alloc(20, 8), s = ram.alloc(1, 1);
        ram.memory.fill(id, 20, (byte) 0x55);
        Result r = submit(0, s, in(header(VirtioBlock.T_GET_ID, 0), 16), out(id, 20), out(s, 1));
        assertEquals(VirtioBlock.S_OK, r.status());
        assertEquals(21, r.usedLen());
        byte[] got = new byte[20];
        ram.memory.read(id, got, 0, 20);
        byte[] want = Arrays.copyOf("jvmm-disk-0001".getBytes(StandardCharsets.US_ASCII), 20);
        assertArrayEquals(want, got, "NUL-padded to 20 bytes");
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void discardAndWriteZeroes(Transport t) throws Exception {
        start(t);
        disk.data.fill((byte) 0xaa);
        assertEquals(
                VirtioBlock.S_OK,
                segments(VirtioBlock.T_DISCARD, new long[][] {{10, 2, 0}, {20, 1, 0}})
                        .status());
        assertEquals(2, disk.discards.get());
        assertArrayEquals(new byte[1024], diskBytes(10 * 512, 1024));
        assertEquals((byte) 0xaa, diskBytes(12 * 512, 1)[0]);
        assertArrayEquals(new byte[512], diskBytes(20 * 512, 512));

        assertEquals(
                VirtioBlock.S_OK,
                segments(VirtioBlock.T_WRITE_ZEROES, new long[][] {{30, 4, 1}}).status());
        assertTrue(disk.lastZeroUnmap);
        assertArrayEquals(new byte[2048], diskBytes(30 * 512, 2048));
        assertEquals(
                VirtioBlock.S_OK,
                segments(VirtioBlock.T_WRITE_ZEROES, new long[][] {{40, 1, 0}}).status());
        assertFalse(disk.lastZeroUnmap);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void badDiscardsAreRefusedWithoutTouchingTheDisk(Transport t) throws Exception {
        start(t);
        long cap = DISK / 512;
        assertEquals(
                VirtioBlock.S_UNSUPP,
                segments(VirtioBlock.T_DISCARD, new long[][] {{1, 1, 1}}).status(),
                "unmap on discard");
        assertEquals(
                VirtioBlock.S_UNSUPP,
                segments(VirtioBlock.T_WRITE_ZEROES, new long[][] {{1, 1, 2}}).status(),
                "unknown flag");
        assertEquals(
                VirtioBlock.S_IOERR,
                segments(VirtioBlock.T_DISCARD, new long[][] {{1, 1, 0}, {cap - 1, 2, 0}})
                        .status(),
                "beyond capacity");
        assertEquals(
                VirtioBlock.S_IOERR,
                segments(VirtioBlock.T_DISCARD, new long[][] {{-1L, 1, 0}}).status(),
                "sector 2^64-1");
        long[][] tooMany = new long[VirtioBlock.MAX_DISCARD_SEG + 1][];
        Arrays.fill(tooMany, new long[] {0, 1, 0});
        assertEquals(
                VirtioBlock.S_IOERR, segments(VirtioBlock.T_DISCARD, tooMany).status(), "more than max_discard_seg");
        long s = ram.alloc(1, 1), odd = ram.alloc(8, 8);
        assertEquals(
                VirtioBlock.S_IOERR,
                submit(0, s, in(header(VirtioBlock.T_DISCARD, 0), 16), in(odd, 8), out(s, 1))
                        .status(),
                "partial segment");
        assertEquals(0, disk.discards.get());
        assertEquals(0, disk.zeroes.get());
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void discardWithoutTheFeatureIsUnsupported(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT, false, BASE_FEATURES);
        assertEquals(
                VirtioBlock.S_UNSUPP,
                segments(VirtioBlock.T_DISCARD, new long[][] {{1, 1, 0}}).status());
        assertEquals(0, disk.discards.get());
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void readOnlyDiskRefusesWrites(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT.withReadOnly(true), false, ALL | bit(VirtioBlock.F_RO));
        long f = drv.deviceFeatures();
        assertTrue(VirtioFeatures.has(f, VirtioBlock.F_RO));
        assertFalse(VirtioFeatures.has(f, VirtioBlock.F_DISCARD), "no discard offered on a read-only disk");
        disk.data.fill((byte) 0x11);
        long src = ram.alloc(512, 512);
        assertEquals(VirtioBlock.S_IOERR, write(0, src, 512).status());
        assertEquals(0, disk.writes.get());
        assertEquals((byte) 0x11, diskBytes(0, 1)[0]);
        assertEquals(
                VirtioBlock.S_UNSUPP,
                segments(VirtioBlock.T_WRITE_ZEROES, new long[][] {{0, 1, 0}}).status());
        long dst = ram.alloc(512, 512);
        assertEquals(VirtioBlock.S_OK, read(0, dst, 512).status(), "reads still work");
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void readOnlyBackendMakesAReadOnlyDevice(Transport t) {
        start(t, VirtioBlock.Options.DEFAULT, true, ALL | bit(VirtioBlock.F_RO));
        assertTrue(VirtioFeatures.has(drv.deviceFeatures(), VirtioBlock.F_RO));
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void outOfRangeAndMisshapenRequestsGetIoErr(Transport t) throws Exception {
        start(t);
        long cap = DISK / 512;
        long buf = ram.alloc(1024, 512);
        assertEquals(VirtioBlock.S_IOERR, read(cap, buf, 512).status(), "read at capacity");
        assertEquals(VirtioBlock.S_IOERR, read(cap - 1, buf, 1024).status(), "read across the end");
        assertEquals(VirtioBlock.S_IOERR, write(cap - 1, buf, 1024).status(), "write across the end");
        assertEquals(VirtioBlock.S_IOERR, read(-1L, buf, 512).status(), "sector 2^64-1");
        assertEquals(VirtioBlock.S_IOERR, read(Long.MAX_VALUE / 256, buf, 512).status(), "sector*512 overflows");
        assertEquals(VirtioBlock.S_IOERR, read(0, buf, 100).status(), "not whole sectors");
        assertEquals(VirtioBlock.S_IOERR, write(0, buf, 513).status(), "not whole sectors");
        assertEquals(0, disk.writes.get());
        assertEquals(VirtioBlock.S_OK, read(cap - 1, buf, 512).status(), "the last sector is fine");
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void unknownRequestTypesAreUnsupported(Transport t) throws Exception {
        start(t);
        for (int type : new int[] {VirtioBlock.T_GET_LIFETIME, VirtioBlock.T_SECURE_ERASE, 2, 99, -1}) {
            long s = ram.alloc(1, 1), d = ram.alloc(16, 8);
            assertEquals(
                    VirtioBlock.S_UNSUPP,
                    submit(0, s, in(header(type, 0), 16), out(d, 16), out(s, 1)).status(),
                    "type " + type);
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void backendErrorsBecomeIoErrAndTheDeviceKeepsRunning(Transport t) throws Exception {
        start(t);
        long buf = ram.alloc(512, 512);
        disk.failWrites = true;
        assertEquals(VirtioBlock.S_IOERR, write(0, buf, 512).status());
        disk.failWrites = false;
        disk.failReads = true;
        assertEquals(VirtioBlock.S_IOERR, read(0, buf, 512).status());
        disk.failReads = false;
        disk.failFlush = true;
        long s = ram.alloc(1, 1);
        assertEquals(
                VirtioBlock.S_IOERR,
                submit(0, s, in(header(VirtioBlock.T_FLUSH, 0), 16), out(s, 1)).status());
        disk.failFlush = false;
        assertEquals(VirtioBlock.S_OK, write(0, buf, 512).status());
        assertEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void requestWithoutStatusByteOrHeaderNeedsReset(Transport t) throws Exception {
        start(t);
        DriverQueue q = queues[0];
        q.add(in(header(VirtioBlock.T_IN, 0), 16), in(ram.alloc(512, 8), 512)); // nothing device-writable
        drv.notifyQueue(0);
        assertTrue(drv.awaitConfigInterrupt(5000));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);

        start(t);
        q = queues[0];
        long s = ram.alloc(1, 1);
        q.add(in(header(VirtioBlock.T_IN, 0), 8), out(s, 1)); // a short header
        drv.notifyQueue(0);
        assertTrue(drv.awaitConfigInterrupt(5000));
        assertNotEquals(0, drv.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void severalQueuesServeIndependently(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT.withQueues(4), false, ALL | bit(VirtioBlock.F_MQ));
        assertTrue(VirtioFeatures.has(drv.deviceFeatures(), VirtioBlock.F_MQ));
        assertEquals(4, drv.readConfig(34, 2));
        List<long[]> pending = new ArrayList<>();
        for (int qi = 0; qi < 4; qi++) {
            long src = ram.alloc(512, 512), s = ram.alloc(1, 1);
            ram.memory.fill(src, 512, (byte) (qi + 1));
            queues[qi].add(in(header(VirtioBlock.T_OUT, 50 + qi), 16), in(src, 512), out(s, 1));
            drv.notifyQueue(qi);
            pending.add(new long[] {qi, s});
        }
        for (long[] p : pending) {
            assertTrue(TestDriver.awaitUsed(queues[(int) p[0]], 1, 5000), "queue " + p[0]);
            assertEquals(VirtioBlock.S_OK, ram.memory.readByte(p[1]));
            assertEquals((byte) (p[0] + 1), diskBytes((50 + p[0]) * 512, 1)[0]);
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void rateLimitedRequestsWaitInTheQueueForTokens(Transport t) throws InterruptedException {
        // Two requests per 400 ms: six take at least two refills after the first two.
        var limit = new RateLimiter.Config(Optional.empty(), Optional.of(new TokenBucket.Config(2, 0, 400)));
        VirtioBlock device =
                new VirtioBlock(new MemoryBackend(DISK, false), VirtioBlock.Options.DEFAULT.withRateLimit(limit));
        drv = t.attach(ram, device);
        queues = new DriverQueue[] {new DriverQueue(ram, 64)};
        drv.init(ALL & drv.deviceFeatures(), queues);
        long[] status = new long[6];
        long t0 = System.nanoTime();
        for (int i = 0; i < status.length; i++) {
            status[i] = ram.alloc(1, 1);
            ram.memory.writeByte(status[i], (byte) 0x7f);
            queues[0].add(in(header(VirtioBlock.T_IN, i), 16), out(ram.alloc(4096, 8), 4096), out(status[i], 1));
        }
        drv.notifyQueue(0);
        assertTrue(TestDriver.awaitUsed(queues[0], 6, 10_000), "every request completes in the end");
        long elapsedMs = (System.nanoTime() - t0) / 1_000_000;
        for (long s : status) assertEquals(VirtioBlock.S_OK, ram.memory.readByte(s));
        assertTrue(elapsedMs >= 700, "six requests at two per 400 ms took only " + elapsedMs + " ms");
        assertTrue(device.throttledCount() > 0);
        assertEquals(6, device.stats().snapshot().reads(), "each request ran once");
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void aGuestKeepingOneQueueFullCannotStarveAnother(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT.withQueues(2), false, ALL | bit(VirtioBlock.F_MQ));
        // Queue 0: one read chain, published again as soon as the ring has room, from another thread; reads take
        // 0.2 ms, so that the queue never runs empty.
        disk.readDelayNanos = 200_000;
        DriverQueue flooded = queues[0];
        long st = ram.alloc(1, 1);
        int head = flooded.chain(in(header(VirtioBlock.T_IN, 0), 16), out(ram.alloc(512, 8), 512), out(st, 1));
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong published = new java.util.concurrent.atomic.AtomicLong();
        Thread flood = Thread.ofPlatform().daemon().start(() -> {
            int avail = 0;
            while (!stop.get()) {
                if (((avail - flooded.usedIdx()) & 0xffff) < 48) {
                    flooded.publish(head);
                    avail = (avail + 1) & 0xffff;
                    published.incrementAndGet();
                    drv.notifyQueue(0);
                } else Thread.onSpinWait();
            }
        });
        try {
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (published.get() < 10_000 && System.nanoTime() < deadline) Thread.sleep(1);
            // Queue 1 is served while queue 0 stays full.
            long data = ram.alloc(512, 8);
            long s = ram.alloc(1, 1);
            ram.memory.writeByte(s, (byte) 0x7f);
            queues[1].add(in(header(VirtioBlock.T_IN, 1), 16), out(data, 512), out(s, 1));
            drv.notifyQueue(1);
            assertTrue(TestDriver.awaitUsed(queues[1], 1, 10_000), "queue 1 served while queue 0 is flooded");
            assertEquals(VirtioBlock.S_OK, ram.memory.readByte(s));
        } finally {
            stop.set(true);
            flood.join();
        }
    }
}
