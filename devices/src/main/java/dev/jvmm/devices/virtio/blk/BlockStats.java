package dev.jvmm.devices.virtio.blk;

import java.util.concurrent.atomic.LongAdder;

/**
 * A disk's request counters since it was made: operations and bytes by kind, requests refused as malformed or
 * unsupported, and requests the backend failed. Counted on the I/O threads without locks; read at any time.
 */
public final class BlockStats {
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

    /** One request served, or refused (its kind's operation count and, for reads and writes, its bytes). */
    void served(BlockRequest r) {
        switch (r) {
            case BlockRequest.Read x -> {
                reads.increment();
                readBytes.add(x.length());
            }
            case BlockRequest.Write x -> {
                writes.increment();
                writtenBytes.add(x.length());
            }
            case BlockRequest.Flush x -> flushes.increment();
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
}
