package dev.jvmm.devices.virtio.blk;

import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * A disk's request counters since it was made: operations and bytes by kind, requests refused as malformed or
 * unsupported, requests the backend failed, and the latency of reads, writes and flushes. Counted on the I/O threads
 * without locks or allocation; read at any time, and a reader never makes an I/O thread wait.
 */
public final class BlockStats {
    /** The request kinds whose latency is recorded. */
    public enum Op {
        READ,
        WRITE,
        FLUSH
    }

    /**
     * One kind's latency since the disk was made, in nanoseconds: how long jvmm took to serve a request, from taking it
     * off the queue to its completion (the backend's call, and the flush a write-through write adds). Time spent
     * waiting in the guest's queue, for the rate limiter among others, is not in it. Minimum, percentiles and maximum
     * are accurate to 1% (two significant digits) or half a microsecond, whichever is more, and rounded up; the sum is
     * exact. All zero when nothing was recorded.
     */
    public record Latency(
            long count, long sumNanos, long minNanos, long p50Nanos, long p90Nanos, long p99Nanos, long maxNanos) {
        public static final Latency NONE = new Latency(0, 0, 0, 0, 0, 0, 0);
    }

    private final LongSupplier clock;
    private final OpLatency[] latency = {new OpLatency(), new OpLatency(), new OpLatency()};
    private final LongAdder reads = new LongAdder(), readBytes = new LongAdder();
    private final LongAdder writes = new LongAdder(), writtenBytes = new LongAdder();
    private final LongAdder flushes = new LongAdder(), discards = new LongAdder(), writeZeroes = new LongAdder();
    private final LongAdder others = new LongAdder(), refused = new LongAdder(), errors = new LongAdder();

    /** The counters at one moment. */
    public record Snapshot(
            long reads,
            long readBytes,
            long writes,
            long writtenBytes,
            long flushes,
            long discards,
            long writeZeroes,
            long others,
            long refused,
            long errors) {
        /** Every request the device answered, those the backend failed included. */
        public long requests() {
            return reads + writes + flushes + discards + writeZeroes + others + refused + errors;
        }
    }

    /** Counters whose latencies use the host's monotonic clock. */
    public BlockStats() {
        this(System::nanoTime);
    }

    /** Counters whose latencies use {@code clock} (nanoseconds; tests give a fake one). */
    BlockStats(LongSupplier clock) {
        this.clock = clock;
    }

    /** The time now, on the clock latencies are measured with. */
    long now() {
        return clock.getAsLong();
    }

    /**
     * One request served, or refused (its kind's operation count and, for reads and writes, its bytes), {@code nanos}
     * after it was taken off the queue.
     */
    void served(BlockRequest r, long nanos) {
        switch (r) {
            case BlockRequest.Read x -> {
                reads.increment();
                readBytes.add(x.length());
                latency[Op.READ.ordinal()].record(nanos);
            }
            case BlockRequest.Write x -> {
                writes.increment();
                writtenBytes.add(x.length());
                latency[Op.WRITE.ordinal()].record(nanos);
            }
            case BlockRequest.Flush x -> {
                flushes.increment();
                latency[Op.FLUSH.ordinal()].record(nanos);
            }
            case BlockRequest.Discard x -> discards.increment();
            case BlockRequest.WriteZeroes x -> writeZeroes.increment();
            case BlockRequest.GetId x -> others.increment();
            case BlockRequest.Refused x -> refused.increment();
        }
    }

    /** One request the backend failed: counted only here. */
    void failed() {
        errors.increment();
    }

    /** Requests completed with S_IOERR because the backend failed. */
    public long errors() {
        return errors.sum();
    }

    public Snapshot snapshot() {
        return new Snapshot(
                reads.sum(),
                readBytes.sum(),
                writes.sum(),
                writtenBytes.sum(),
                flushes.sum(),
                discards.sum(),
                writeZeroes.sum(),
                others.sum(),
                refused.sum(),
                errors.sum());
    }

    /** The latency of {@code op}'s requests served since the disk was made. */
    public Latency latency(Op op) {
        return latency[op.ordinal()].summary();
    }

    /**
     * One kind's latencies: the I/O threads record into an HdrHistogram {@link Recorder} (wait-free, no allocation);
     * a reader swaps its interval histogram out and adds it to the running total, under this object's lock, which
     * only readers take.
     */
    private static final class OpLatency {
        /** Beyond a minute a request's time says "stuck", not how long: it is recorded as a minute. */
        static final long HIGHEST_NANOS = 60_000_000_000L;
        /** Below a microsecond the host's clock and the request's own cost are noise. */
        static final long LOWEST_NANOS = 1_000;

        private static final int DIGITS = 2;

        private final Recorder recorder = new Recorder(LOWEST_NANOS, HIGHEST_NANOS, DIGITS);
        private final LongAdder sum = new LongAdder();
        // Readers only, guarded by this.
        private final Histogram total = new Histogram(LOWEST_NANOS, HIGHEST_NANOS, DIGITS);
        private Histogram interval;

        void record(long nanos) {
            long n = Math.max(0, Math.min(nanos, HIGHEST_NANOS)); // a clock step backwards is not a negative time
            recorder.recordValue(n);
            sum.add(n);
        }

        synchronized Latency summary() {
            interval = recorder.getIntervalHistogram(interval);
            total.add(interval);
            if (total.getTotalCount() == 0) return Latency.NONE;
            return new Latency(
                    total.getTotalCount(),
                    sum.sum(),
                    total.getMinValue(),
                    total.getValueAtPercentile(50),
                    total.getValueAtPercentile(90),
                    total.getValueAtPercentile(99),
                    total.getMaxValue());
        }
    }
}
