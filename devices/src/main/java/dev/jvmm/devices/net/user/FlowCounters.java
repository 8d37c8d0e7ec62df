package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.FlowStats;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The stack's {@link FlowStats} as it counts them: written on the stack's one thread only, so an increment is a
 * plain read and a release write (no lock, no atomic instruction, no allocation); read from any thread. A reading
 * takes each counter at its own moment: closed ones are read (acquire) before opened ones, and a flow is counted
 * opened before it is counted closed, so "current" is never negative.
 */
final class FlowCounters {
    enum Counter {
        TCP_OPENED,
        TCP_CLOSED,
        TCP_REFUSED,
        UDP_OPENED,
        UDP_CLOSED,
        NAT_REFUSED,
        TCP_TX_BYTES,
        TCP_RX_BYTES,
        UDP_TX_BYTES,
        UDP_RX_BYTES
    }

    private static final VarHandle COUNT = MethodHandles.arrayElementVarHandle(long[].class);
    private final long[] counts = new long[Counter.values().length];

    /** Adds {@code n}; on the stack's thread only. */
    void add(Counter c, long n) {
        int i = c.ordinal();
        COUNT.setRelease(counts, i, (long) COUNT.getOpaque(counts, i) + n);
    }

    void increment(Counter c) {
        add(c, 1);
    }

    long get(Counter c) {
        return (long) COUNT.getAcquire(counts, c.ordinal());
    }

    FlowStats snapshot() {
        long tcpClosed = get(Counter.TCP_CLOSED), udpClosed = get(Counter.UDP_CLOSED);
        return new FlowStats(
                get(Counter.TCP_OPENED),
                tcpClosed,
                get(Counter.TCP_REFUSED),
                get(Counter.UDP_OPENED),
                udpClosed,
                get(Counter.NAT_REFUSED),
                get(Counter.TCP_TX_BYTES),
                get(Counter.TCP_RX_BYTES),
                get(Counter.UDP_TX_BYTES),
                get(Counter.UDP_RX_BYTES));
    }
}
