package dev.jvmm.devices.virtio.blk;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.MemoryBackend;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The executor on hand-made requests: no ring, no parser, only the backend and the status byte. */
class BlockRequestExecutorTest {
    final MemoryBackend disk = new MemoryBackend(1 << 20, false);
    final BlockStats stats = new BlockStats();
    final MemorySegment status = MemorySegment.ofArray(new byte[] {0x7f});
    final MemorySegment id =
            MemorySegment.ofArray(java.util.Arrays.copyOf("serial-1".getBytes(StandardCharsets.US_ASCII), 20));

    @AfterEach
    void tearDown() {
        disk.close();
    }

    BlockRequestExecutor executor(boolean writeThrough) {
        return new BlockRequestExecutor(disk, id, writeThrough, stats);
    }

    static MemorySegment bytes(int n, int value) {
        return MemorySegment.ofArray(new byte[n]).fill((byte) value);
    }

    @Test
    void readsScatterIntoTheBuffersAndCountTheirBytes() {
        disk.data.asSlice(512, 1024).fill((byte) 3);
        MemorySegment a = bytes(512, 0), b = bytes(512, 0);
        assertEquals(1025, executor(false).execute(new BlockRequest.Read(1, List.of(a, b), status)));
        assertEquals(VirtioBlock.S_OK, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(3, b.get(ValueLayout.JAVA_BYTE, 511));
    }

    @Test
    void writeThroughFlushesEveryChange() {
        BlockRequestExecutor ex = executor(true);
        assertEquals(1, ex.execute(new BlockRequest.Write(0, List.of(bytes(512, 1)), status)));
        ex.execute(new BlockRequest.WriteZeroes(List.of(new BlockRequest.Range(0, 1, false)), status));
        ex.execute(new BlockRequest.Discard(List.of(new BlockRequest.Range(2, 0, false)), status));
        assertEquals(3, disk.flushes.get());
        assertEquals(0, disk.discards.get(), "an empty range reaches no backend");
        executor(false).execute(new BlockRequest.Write(0, List.of(bytes(512, 1)), status));
        assertEquals(3, disk.flushes.get());
    }

    @Test
    void getIdFillsWhatFits() {
        MemorySegment small = bytes(6, 0x55);
        assertEquals(7, executor(false).execute(new BlockRequest.GetId(List.of(small), status)));
        assertEquals("serial", new String(small.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII));
    }

    @Test
    void refusedRequestsOnlyAnswer() {
        assertEquals(1, executor(false).execute(new BlockRequest.Refused(Rejection.UNSUPPORTED_TYPE, status)));
        assertEquals(VirtioBlock.S_UNSUPP, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(1, executor(false).execute(new BlockRequest.Refused(Rejection.OUT_OF_RANGE, status)));
        assertEquals(VirtioBlock.S_IOERR, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(0, disk.writes.get());
        assertThrows(
                IllegalArgumentException.class,
                () -> executor(false).execute(new BlockRequest.Refused(Rejection.NO_STATUS, null)));
        assertThrows(IllegalArgumentException.class, () -> new BlockRequest.Refused(Rejection.OUT_OF_RANGE, null));
    }

    @Test
    void backendFailuresAreIoErrWithNothingWritten() {
        disk.failReads = true;
        assertEquals(1, executor(false).execute(new BlockRequest.Read(0, List.of(bytes(512, 0)), status)));
        assertEquals(VirtioBlock.S_IOERR, status.get(ValueLayout.JAVA_BYTE, 0));
        disk.failFlush = true;
        executor(false).execute(new BlockRequest.Flush(status));
        assertEquals(VirtioBlock.S_IOERR, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(2, stats.errors());
        assertEquals(
                new BlockStats.Snapshot(0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
                stats.snapshot(),
                "failures count only as errors");
    }

    @Test
    void requestsAndTheirBytesAreCountedByKind() {
        BlockRequestExecutor ex = executor(false);
        ex.execute(new BlockRequest.Read(0, List.of(bytes(512, 0), bytes(1024, 0)), status));
        ex.execute(new BlockRequest.Write(2, List.of(bytes(4096, 1)), status));
        ex.execute(new BlockRequest.Write(10, List.of(bytes(512, 1)), status));
        ex.execute(new BlockRequest.Flush(status));
        ex.execute(new BlockRequest.GetId(List.of(bytes(20, 0)), status));
        ex.execute(new BlockRequest.Refused(Rejection.UNSUPPORTED_TYPE, status));
        BlockStats.Snapshot s = stats.snapshot();
        assertEquals(new BlockStats.Snapshot(1, 1536, 2, 4608, 1, 0, 0, 1, 1, 0), s);
        assertEquals(6, s.requests());
    }

    @Test
    void latenciesOfReadsWritesAndFlushesOnTheRequestsClock() {
        // Each request reads the clock as it starts and as it ends: read i takes i µs, the write 5 ms.
        long[] ticks = new long[2 * 100 + 2 + 1 + 2 + 2];
        int k = 0;
        long t = 1_000_000;
        for (int i = 1; i <= 100; i++) {
            ticks[k++] = t;
            ticks[k++] = t += i * 1_000L;
        }
        ticks[k++] = t;
        ticks[k++] = t += 5_000_000; // the write
        ticks[k++] = t; // a read the backend fails: an error, no latency (no second reading)
        ticks[k++] = t;
        ticks[k++] = t += 7_000_000; // a refused request: no latency
        ticks[k++] = t;
        ticks[k] = t - 1; // a clock that stepped back: the flush counts as 0, not as a negative time
        int[] next = {0};
        BlockStats clocked = new BlockStats(() -> ticks[next[0]++]);
        BlockRequestExecutor ex = new BlockRequestExecutor(disk, id, false, clocked);
        for (int i = 0; i < 100; i++) ex.execute(new BlockRequest.Read(0, List.of(bytes(512, 0)), status));
        ex.execute(new BlockRequest.Write(0, List.of(bytes(512, 1)), status));
        disk.failReads = true;
        ex.execute(new BlockRequest.Read(0, List.of(bytes(512, 0)), status));
        ex.execute(new BlockRequest.Refused(Rejection.UNSUPPORTED_TYPE, status));
        ex.execute(new BlockRequest.Flush(status));
        assertEquals(ticks.length, next[0], "two clock readings a request served");

        BlockStats.Latency reads = clocked.latency(BlockStats.Op.READ);
        assertEquals(100, reads.count());
        assertEquals(5050 * 1_000L, reads.sumNanos(), "the sum is exact");
        assertWithin(1_000, reads.minNanos());
        assertWithin(50_000, reads.p50Nanos());
        assertWithin(90_000, reads.p90Nanos());
        assertWithin(99_000, reads.p99Nanos());
        assertWithin(100_000, reads.maxNanos());
        BlockStats.Latency writes = clocked.latency(BlockStats.Op.WRITE);
        assertEquals(1, writes.count());
        assertWithin(5_000_000, writes.p50Nanos());
        assertWithin(5_000_000, writes.maxNanos());
        BlockStats.Latency flushes = clocked.latency(BlockStats.Op.FLUSH);
        assertEquals(1, flushes.count());
        assertEquals(0, flushes.sumNanos());
        assertTrue(flushes.maxNanos() < 1_000, "a backwards clock is no time: " + flushes);

        // A second reading adds what came since to the first: cumulative, as the other counters are.
        ticks[0] = 0;
        ticks[1] = 2_000_000;
        next[0] = 0;
        disk.failReads = false;
        ex.execute(new BlockRequest.Read(0, List.of(bytes(512, 0)), status));
        BlockStats.Latency again = clocked.latency(BlockStats.Op.READ);
        assertEquals(101, again.count());
        assertWithin(2_000_000, again.maxNanos());
        assertWithin(51_000, again.p50Nanos());
    }

    @Test
    void noRequestsNoLatencyAndAMinuteAtMost() {
        BlockStats clocked = new BlockStats(new java.util.function.LongSupplier() {
            long t;

            @Override
            public long getAsLong() {
                return t += 3_600_000_000_000L; // each request "takes" an hour
            }
        });
        assertEquals(BlockStats.Latency.NONE, clocked.latency(BlockStats.Op.READ));
        new BlockRequestExecutor(disk, id, false, clocked).execute(new BlockRequest.Flush(status));
        BlockStats.Latency f = clocked.latency(BlockStats.Op.FLUSH);
        assertWithin(60_000_000_000L, f.maxNanos());
        assertEquals(60_000_000_000L, f.sumNanos(), "recorded as the histogram's highest value");
    }

    /** HdrHistogram at two significant digits: within 1% (or 512 ns), rounded up. */
    static void assertWithin(long expected, long actual) {
        long slack = Math.max(expected / 100, 512);
        assertTrue(
                actual >= expected - slack && actual <= expected + slack,
                actual + " ns is not within " + slack + " ns of " + expected);
    }
}
