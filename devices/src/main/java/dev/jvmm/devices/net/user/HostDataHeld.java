package dev.jvmm.devices.net.user;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * What the stack holds from host sockets until the guest acknowledges it (TCP bytes read from host channels),
 * against one limit per network: the other direction of {@link GuestDataBudget}. Each connection stops reading its
 * host socket at 4 MiB of its own, but a guest that opens many connections to fast hosts and never acknowledges
 * would otherwise pin 4 MiB times every connection (gigabytes at the stack's 4096); at the limit every connection
 * stops reading (one read's bytes past it at most) and waits here until half of it is free. Used on the stack's
 * thread only.
 */
final class HostDataHeld {
    private final long limit;
    private long held;
    private final Set<TcpConnection> waiting = new LinkedHashSet<>();

    HostDataHeld(long limit) {
        if (limit <= 0) throw new IllegalArgumentException("limit " + limit);
        this.limit = limit;
    }

    long held() {
        return held;
    }

    /** Bytes read from a host socket, held until the guest acknowledges them. */
    void add(long bytes) {
        held += bytes;
    }

    /** Whether a connection must stop reading its host socket now. */
    boolean full() {
        return held >= limit;
    }

    /** A connection stopped reading because of {@link #full()}: it is resumed once half the limit is free. */
    void waitForRoom(TcpConnection c) {
        waiting.add(c);
    }

    /** A connection ends: it no longer waits. */
    void forget(TcpConnection c) {
        waiting.remove(c);
    }

    /** Bytes acknowledged (or dropped with their connection); wakes the waiting connections once there is room. */
    void release(long bytes) {
        held -= bytes;
        if (held > limit / 2 || waiting.isEmpty()) return;
        List<TcpConnection> resume = List.copyOf(waiting);
        waiting.clear();
        for (TcpConnection c : resume) c.resumeHostReading();
    }
}
