package dev.jvmm.devices.block.qcow2;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * L2 tables by host offset, shared by concurrent readers without a lock; least-recently-used eviction by a
 * scan on insert (the cache holds a few hundred tables at most). Tables are written through by the image, so
 * eviction never loses data.
 */
final class L2Cache {
    private static final class Slot {
        final long[] table;
        volatile long lastUse;

        Slot(long[] table, long now) {
            this.table = table;
            this.lastUse = now;
        }
    }

    private final ConcurrentHashMap<Long, Slot> map = new ConcurrentHashMap<>();
    private final AtomicLong clock = new AtomicLong();
    private final int capacity;

    L2Cache(int capacity) {
        this.capacity = capacity;
    }

    long[] get(long offset) {
        Slot s = map.get(offset);
        if (s == null) return null;
        s.lastUse = clock.getAndIncrement();
        return s.table;
    }

    long[] put(long offset, long[] table) {
        Slot s = map.putIfAbsent(offset, new Slot(table, clock.getAndIncrement()));
        if (s != null) return s.table;
        if (map.size() > capacity) {
            Long victim = null;
            long oldest = Long.MAX_VALUE;
            for (var e : map.entrySet()) {
                if (e.getKey() != offset && e.getValue().lastUse < oldest) {
                    oldest = e.getValue().lastUse;
                    victim = e.getKey();
                }
            }
            if (victim != null) map.remove(victim);
        }
        return table;
    }

    void remove(long offset) {
        map.remove(offset);
    }

    void clear() {
        map.clear();
    }
}
