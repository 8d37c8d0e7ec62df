package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * The user network's internal limits, as a value so that tests can shrink them (a small budget, short idle times,
 * an allocator of their own to measure): not user options.
 *
 * @param alloc       where guest frames and the stack's own packets are allocated
 * @param transport   Netty's channel classes for host sockets
 * @param budgetBytes what the stack may hold for host sockets on the guest's behalf ({@link GuestDataBudget})
 * @param tcpIdle     how long an established TCP connection may see no segment either way before both sides get a
 *                    reset, as a NAT forgets it (RFC 5382 REQ-5: not less than 2 h 4 min)
 * @param udpIdle     how long a UDP flow may pass no datagram before its host socket closes
 * @param clock       the stack's time in nanoseconds, {@code System::nanoTime} (tests: a clock they advance, to run
 *                    timers without waiting for them)
 */
record Tuning(
        ByteBufAllocator alloc,
        Transport transport,
        long budgetBytes,
        Duration tcpIdle,
        Duration udpIdle,
        LongSupplier clock) {
    /**
     * 64 MiB: sixteen connections' worth of a host socket's high water mark (4 MiB), far above what one guest's
     * traffic keeps queued on a healthy host, and far below what a hostile guest could pin without it (4096
     * connections of 4 MiB each).
     */
    static final long DEFAULT_BUDGET_BYTES = 64L << 20;

    static Tuning defaults() {
        return new Tuning(
                PooledByteBufAllocator.DEFAULT,
                Transport.best(),
                DEFAULT_BUDGET_BYTES,
                Duration.ofMinutes(124),
                Duration.ofSeconds(60),
                System::nanoTime);
    }

    Tuning withAlloc(ByteBufAllocator a) {
        return new Tuning(a, transport, budgetBytes, tcpIdle, udpIdle, clock);
    }

    Tuning withTransport(Transport t) {
        return new Tuning(alloc, t, budgetBytes, tcpIdle, udpIdle, clock);
    }

    Tuning withBudget(long bytes) {
        return new Tuning(alloc, transport, bytes, tcpIdle, udpIdle, clock);
    }

    Tuning withIdle(Duration tcp, Duration udp) {
        return new Tuning(alloc, transport, budgetBytes, tcp, udp, clock);
    }

    Tuning withClock(LongSupplier c) {
        return new Tuning(alloc, transport, budgetBytes, tcpIdle, udpIdle, c);
    }
}
