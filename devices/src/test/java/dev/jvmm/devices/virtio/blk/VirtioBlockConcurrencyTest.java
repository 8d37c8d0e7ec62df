package dev.jvmm.devices.virtio.blk;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.MemoryBackend;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioTransport;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongUnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Several requests in flight on one queue: what runs concurrently gives the disk (and the reads) that applying the
 * requests one by one in the order the driver made them available gives; flushes wait for earlier writes; requests
 * complete out of order; reset, quiesce and close wait for what is in flight; a queue never has more than its cap.
 */
class VirtioBlockConcurrencyTest {
    static final long DISK = 1 << 20;
    static final int SECTORS = 64; // the region the random requests hit, so that they overlap often

    GuestRam ram = new GuestRam();
    MemoryBackend memory;
    SlowBackend disk;
    TestDriver drv;
    DriverQueue q;

    @AfterEach
    void tearDown() {
        if (drv != null) drv.close();
        if (memory != null) memory.close();
        ram.close();
    }

    /** A disk whose operations take a while each (the delay, given the byte offset; flushes get offset -1). */
    static final class SlowBackend implements BlockBackend {
        final MemoryBackend d;
        volatile LongUnaryOperator delayNanos = off -> 0;
        final ConcurrentLinkedQueue<String> log = new ConcurrentLinkedQueue<>();
        final AtomicInteger running = new AtomicInteger();
        final AtomicInteger maxRunning = new AtomicInteger();

        SlowBackend(MemoryBackend d) {
            this.d = d;
        }

        private void enter(String what, long offset) {
            maxRunning.accumulateAndGet(running.incrementAndGet(), Math::max);
            log.add("start " + what + " " + offset);
            long n = delayNanos.applyAsLong(offset);
            if (n > 0) LockSupport.parkNanos(n);
        }

        private void leave(String what, long offset) {
            log.add("end " + what + " " + offset);
            running.decrementAndGet();
        }

        @Override
        public long size() {
            return d.size();
        }

        @Override
        public boolean readOnly() {
            return false;
        }

        @Override
        public void read(long offset, MemorySegment dst) throws IOException {
            enter("read", offset);
            try {
                d.read(offset, dst);
            } finally {
                leave("read", offset);
            }
        }

        @Override
        public void readv(long offset, List<MemorySegment> dst) throws IOException {
            enter("read", offset);
            try {
                for (MemorySegment s : dst) {
                    d.read(offset, s);
                    offset += s.byteSize();
                }
            } finally {
                leave("read", offset);
            }
        }

        @Override
        public void write(long offset, MemorySegment src) throws IOException {
            enter("write", offset);
            try {
                d.write(offset, src);
            } finally {
                leave("write", offset);
            }
        }

        @Override
        public void writev(long offset, List<MemorySegment> src) throws IOException {
            long at = offset;
            enter("write", at);
            try {
                for (MemorySegment s : src) {
                    d.write(offset, s);
                    offset += s.byteSize();
                }
            } finally {
                leave("write", at);
            }
        }

        @Override
        public void flush() throws IOException {
            enter("flush", -1);
            try {
                d.flush();
            } finally {
                leave("flush", -1);
            }
        }

        @Override
        public void discard(long offset, long length) throws IOException {
            d.discard(offset, length);
        }

        @Override
        public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
            d.writeZeroes(offset, length, mayUnmap);
        }

        @Override
        public void close() {}
    }

    void start(Transport t, VirtioBlock.Options options, int queueSize) {
        memory = new MemoryBackend(DISK, false);
        disk = new SlowBackend(memory);
        drv = t.attach(ram, new VirtioBlock(disk, options));
        q = new DriverQueue(ram, queueSize);
        drv.init(VirtioBlockTest.ALL & drv.deviceFeatures(), q);
    }

    /** One request as the driver laid it out: its head, data buffer and status byte. */
    record Posted(int head, int type, long sector, int sectors, long data, long status) {}

    Posted post(int type, long sector, int sectors, byte[] payload) {
        long h = ram.alloc(16, 8);
        ram.memory.writeInt(h, type);
        ram.memory.writeLong(h + 8, sector);
        long status = ram.alloc(1, 1);
        ram.memory.writeByte(status, (byte) 0x7f);
        int head;
        long data = 0;
        if (type == VirtioBlock.T_FLUSH) head = q.add(in(h, 16), out(status, 1));
        else {
            data = ram.alloc(sectors * 512L, 8);
            if (payload != null) ram.memory.write(data, payload);
            head = q.add(
                    in(h, 16),
                    type == VirtioBlock.T_IN ? out(data, sectors * 512) : in(data, sectors * 512),
                    out(status, 1));
        }
        return new Posted(head, type, sector, sectors, data, status);
    }

    /** Waits for {@code n} used elements and returns their heads in the order the device used them. */
    List<Integer> awaitUsed(int n) throws InterruptedException {
        assertTrue(TestDriver.awaitUsed(q, n, 10_000), n + " requests completed");
        List<Integer> heads = new ArrayList<>();
        for (int i = 0; i < n; i++) heads.add(q.takeUsed()[0]);
        return heads;
    }

    byte[] bytesAt(long gpa, int n) {
        byte[] b = new byte[n];
        ram.memory.read(gpa, b, 0, n);
        return b;
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void concurrentRequestsLeaveWhatSequentialApplicationLeaves(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT, 256);
        Random rnd = new Random(17);
        disk.delayNanos = off -> TimeUnit.MICROSECONDS.toNanos(ThreadLocalRandomHolder.next(200));
        byte[] model = new byte[(int) DISK];
        // Many batches: a race between taking a request and a worker finishing what it waits on (a request run
        // twice) showed up about once in 150 runs of 8.
        for (int batch = 0; batch < 40; batch++) {
            List<Posted> posted = new ArrayList<>();
            Map<Integer, byte[]> expectRead = new HashMap<>();
            for (int i = 0; i < 40; i++) {
                long sector = rnd.nextInt(SECTORS - 8);
                int sectors = 1 + rnd.nextInt(8);
                if (rnd.nextInt(3) == 0) {
                    Posted p = post(VirtioBlock.T_IN, sector, sectors, null);
                    posted.add(p);
                    expectRead.put(
                            posted.size() - 1,
                            Arrays.copyOfRange(model, (int) sector * 512, (int) (sector + sectors) * 512));
                } else if (rnd.nextInt(10) == 0) {
                    posted.add(post(VirtioBlock.T_FLUSH, 0, 0, null));
                } else {
                    byte[] payload = new byte[sectors * 512];
                    rnd.nextBytes(payload);
                    posted.add(post(VirtioBlock.T_OUT, sector, sectors, payload));
                    System.arraycopy(payload, 0, model, (int) sector * 512, payload.length);
                }
            }
            drv.notifyQueue(0);
            List<Integer> used = awaitUsed(posted.size());
            assertEquals(
                    posted.stream().map(Posted::head).sorted().toList(),
                    used.stream().sorted().toList(),
                    "every request used once");
            for (int i = 0; i < posted.size(); i++) {
                Posted p = posted.get(i);
                assertEquals(VirtioBlock.S_OK, ram.memory.readByte(p.status()), "status of request " + i);
                if (expectRead.containsKey(i))
                    assertArrayEquals(expectRead.get(i), bytesAt(p.data(), p.sectors() * 512), "read " + i);
            }
        }
        byte[] now = new byte[(int) DISK];
        MemorySegment.copy(memory.data, ValueLayout.JAVA_BYTE, 0, now, 0, now.length);
        assertArrayEquals(model, now, "the disk as the requests applied in order leave it");
        assertTrue(disk.maxRunning.get() > 1, "requests ran concurrently (at most " + disk.maxRunning + " at a time)");
    }

    /** Random delays from any thread (the backend is called on the device's I/O threads). */
    static final class ThreadLocalRandomHolder {
        static long next(int bound) {
            return java.util.concurrent.ThreadLocalRandom.current().nextInt(bound);
        }
    }

    @Test
    void aFastRequestCompletesBeforeASlowOneTakenEarlier() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT, 64);
        disk.delayNanos = off -> off == 0 ? TimeUnit.MILLISECONDS.toNanos(300) : 0;
        Posted slow = post(VirtioBlock.T_IN, 0, 1, null);
        Posted fast = post(VirtioBlock.T_IN, 8, 1, null);
        drv.notifyQueue(0);
        List<Integer> used = awaitUsed(2);
        assertEquals(List.of(fast.head(), slow.head()), used, "the fast read is used first");
    }

    @Test
    void aFlushWaitsForTheWritesMadeAvailableBeforeIt() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT, 64);
        disk.delayNanos = off -> off >= 0 ? TimeUnit.MILLISECONDS.toNanos(100) : 0;
        post(VirtioBlock.T_OUT, 0, 1, new byte[512]);
        post(VirtioBlock.T_OUT, 16, 1, new byte[512]);
        post(VirtioBlock.T_FLUSH, 0, 0, null);
        drv.notifyQueue(0);
        awaitUsed(3);
        List<String> log = List.copyOf(disk.log);
        int flush = log.indexOf("start flush -1");
        assertTrue(
                flush > log.indexOf("end write 0") && flush > log.indexOf("end write 8192"),
                "flush after the writes: " + log);
    }

    @Test
    void aReadWaitsForAnEarlierOverlappingWriteButNotForOthers() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT, 64);
        disk.delayNanos = off -> off == 0 ? TimeUnit.MILLISECONDS.toNanos(200) : 0;
        byte[] payload = new byte[1024];
        new Random(3).nextBytes(payload);
        Posted write = post(VirtioBlock.T_OUT, 0, 2, payload);
        Posted other = post(VirtioBlock.T_IN, 32, 1, null);
        Posted read = post(VirtioBlock.T_IN, 1, 1, null);
        drv.notifyQueue(0);
        List<Integer> used = awaitUsed(3);
        assertEquals(other.head(), used.getFirst(), "the unrelated read did not wait");
        assertTrue(used.indexOf(read.head()) > used.indexOf(write.head()), "the overlapping read came after the write");
        assertArrayEquals(
                Arrays.copyOfRange(payload, 512, 1024), bytesAt(read.data(), 512), "it read what was written");
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void resetWaitsForTheRequestsInFlight(Transport t) throws Exception {
        start(t, VirtioBlock.Options.DEFAULT, 64);
        disk.delayNanos = off -> TimeUnit.MILLISECONDS.toNanos(150);
        for (int i = 0; i < 6; i++) post(VirtioBlock.T_IN, 8L * i, 8, null);
        drv.notifyQueue(0);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (disk.running.get() == 0 && System.nanoTime() < deadline) Thread.sleep(1);
        assertTrue(disk.running.get() > 0, "requests in flight");
        drv.reset();
        assertEquals(0, disk.running.get(), "nothing runs once the reset is done");
        byte[] usedRing = bytesAt(q.used, 6 + 8 * 64);
        Thread.sleep(200);
        assertArrayEquals(usedRing, bytesAt(q.used, 6 + 8 * 64), "the used ring is left alone after the reset");

        // The device starts afresh and serves again.
        q = new DriverQueue(ram, 64);
        disk.delayNanos = off -> 0;
        drv.init(VirtioBlockTest.ALL & drv.deviceFeatures(), q);
        Posted p = post(VirtioBlock.T_IN, 0, 1, null);
        drv.notifyQueue(0);
        assertEquals(List.of(p.head()), awaitUsed(1));
    }

    @Test
    void quiesceWaitsForTheRequestsInFlightAndTheirCompletions() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT, 64);
        disk.delayNanos = off -> off >= 0 ? TimeUnit.MILLISECONDS.toNanos(150) : 0;
        for (int i = 0; i < 4; i++) post(VirtioBlock.T_OUT, 8L * i, 1, new byte[512]);
        drv.notifyQueue(0);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (disk.running.get() == 0 && System.nanoTime() < deadline) Thread.sleep(1);
        VirtioTransport transport = (VirtioTransport) drv.owner();
        transport.quiesce();
        try {
            assertEquals(0, disk.running.get(), "nothing runs while quiesced");
            assertEquals(4, q.pendingUsed(), "every request taken is used");
            assertTrue(memory.flushes.get() > 0, "what was written is flushed");
        } finally {
            transport.resumeAfterSnapshot();
        }
    }

    @Test
    void aGuestRepublishingItsChainsCannotPushMoreThanTheCapInFlight() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT.withIoThreads(64), 16);
        disk.delayNanos = off -> TimeUnit.MILLISECONDS.toNanos(50);
        List<Integer> heads = new ArrayList<>();
        for (int i = 0; i < 16; i++) { // one descriptor each (an indirect table), so 16 fill the ring
            long h = ram.alloc(16, 8), data = ram.alloc(512, 8), status = ram.alloc(1, 1), table = ram.alloc(48, 16);
            ram.memory.writeInt(h, VirtioBlock.T_IN);
            ram.memory.writeLong(h + 8, i);
            heads.add(q.indirectChain(table, in(h, 16), out(data, 512), out(status, 1)));
            q.publish(heads.getLast());
        }
        drv.notifyQueue(0);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (disk.running.get() < 16 && System.nanoTime() < deadline) Thread.sleep(1);
        // The device took all 16, so the ring has room again: the same chains, made available a second time.
        for (int head : heads) q.publish(head);
        drv.notifyQueue(0);
        awaitUsed(32);
        assertEquals(16, disk.maxRunning.get(), "at most the queue's 16 at a time, and all 16 at once");
    }

    @Test
    void withoutIoThreadsRequestsRunOneAtATimeInOrder() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT.withIoThreads(0), 64);
        disk.delayNanos = off -> off == 0 ? TimeUnit.MILLISECONDS.toNanos(50) : 0;
        Posted slow = post(VirtioBlock.T_IN, 0, 1, null);
        Posted fast = post(VirtioBlock.T_IN, 8, 1, null);
        drv.notifyQueue(0);
        assertEquals(List.of(slow.head(), fast.head()), awaitUsed(2));
        assertEquals(1, disk.maxRunning.get());
    }

    @Test
    void closeWaitsForTheRequestsInFlight() throws Exception {
        start(Transport.MMIO, VirtioBlock.Options.DEFAULT, 64);
        disk.delayNanos = off -> TimeUnit.MILLISECONDS.toNanos(150);
        for (int i = 0; i < 4; i++) post(VirtioBlock.T_IN, 8L * i, 1, null);
        drv.notifyQueue(0);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (disk.running.get() == 0 && System.nanoTime() < deadline) Thread.sleep(1);
        drv.close();
        drv = null;
        assertEquals(0, disk.running.get(), "nothing runs once the device is closed");
    }
}
