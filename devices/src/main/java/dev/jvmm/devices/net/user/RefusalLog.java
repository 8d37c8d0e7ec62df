package dev.jvmm.devices.net.user;

import java.util.HashSet;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The warnings for refused guest flows: one per destination, and none within {@link #INTERVAL_NANOS} of the last,
 * so a guest that scans cannot flood the log (a destination skipped that way is logged on a later try). Used on
 * the stack's thread only.
 */
final class RefusalLog {
    static final long INTERVAL_NANOS = 5_000_000_000L;
    /** Destinations remembered; beyond this the memory starts afresh (a repeat every 256 destinations is fine). */
    static final int REMEMBERED = 256;

    private final Consumer<String> sink;
    private final Set<Long> logged = new HashSet<>();
    private long lastAt;
    private boolean any;

    RefusalLog(Consumer<String> sink) {
        this.sink = sink;
    }

    /**
     * A refused flow to {@code destination} (any key naming protocol, address and port); {@code line} may be null:
     * nothing to say.
     */
    void refused(long destination, long now, Supplier<String> line) {
        if (logged.contains(destination) || (any && now - lastAt < INTERVAL_NANOS)) return;
        String text = line.get();
        if (text == null) return;
        if (logged.size() >= REMEMBERED) logged.clear();
        logged.add(destination);
        lastAt = now;
        any = true;
        sink.accept(text);
    }
}
