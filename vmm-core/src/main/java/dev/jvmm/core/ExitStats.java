package dev.jvmm.core;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Per exit reason counts and handling time, like kvm_stat. Updated by vCPU threads without locks
 * (one atomic add per exit); read at any time.
 */
public final class ExitStats {
    /** Reasons are small integers (KVM_EXIT_*); anything larger is counted in the last slot. */
    private static final int SLOTS = 64;

    private final AtomicLongArray counts = new AtomicLongArray(SLOTS);
    private final AtomicLongArray nanos = new AtomicLongArray(SLOTS);

    void record(int reason, long handlingNanos) {
        int slot = reason >= 0 && reason < SLOTS - 1 ? reason : SLOTS - 1;
        counts.incrementAndGet(slot);
        nanos.addAndGet(slot, handlingNanos);
    }

    /** One row per reason seen. */
    public record Row(String reason, long count, double meanNanos) {}

    public Map<String, Row> snapshot() {
        Map<String, Row> out = new LinkedHashMap<>();
        for (int i = 0; i < SLOTS; i++) {
            long c = counts.get(i);
            if (c == 0) continue;
            String name = ExitReason.name(i);
            out.put(name, new Row(name, c, (double) nanos.get(i) / c));
        }
        return out;
    }

    public long count(int reason) {
        return counts.get(reason >= 0 && reason < SLOTS - 1 ? reason : SLOTS - 1);
    }

    /** A kvm_stat-like table. */
    public String format() {
        StringBuilder sb = new StringBuilder(String.format("%-16s %12s %14s%n", "exit reason", "count", "mean (ns)"));
        for (Row r : snapshot().values())
            sb.append(String.format("%-16s %12d %14.0f%n", r.reason(), r.count(), r.meanNanos()));
        return sb.toString();
    }
}
