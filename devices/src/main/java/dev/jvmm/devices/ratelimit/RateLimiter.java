package dev.jvmm.devices.ratelimit;

import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;

/**
 * Limits a device's bandwidth (bytes) and operations (requests, frames) with a {@link TokenBucket} each, as
 * Firecracker's rate limiters do for its drives and network interfaces. A device asks {@link #tryConsume} before
 * it serves a request; when that says no, it leaves the request where it is (in the guest's queue, or with the
 * network backend) and calls {@link #wakeAfterRefill} with what resumes it, so that a throttled guest waits
 * without a busy loop and without the device's thread blocking.
 */
public final class RateLimiter {
    /** A limiter's configuration: either bucket may be absent (that dimension is unlimited). */
    public record Config(Optional<TokenBucket.Config> bandwidth, Optional<TokenBucket.Config> ops) {
        public static final Config UNLIMITED = new Config(Optional.empty(), Optional.empty());

        public boolean unlimited() {
            return bandwidth.isEmpty() && ops.isEmpty();
        }
    }

    /** One daemon thread for every limiter's wake-ups: each is a kick of a device, quick to run. */
    private static final ScheduledExecutorService TIMER = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "jvmm-rate-limiter");
        t.setDaemon(true);
        return t;
    });

    private final LongSupplier clock;
    private final TokenBucket bandwidth, ops;
    private final LongAdder throttled = new LongAdder();

    private RateLimiter(Config config, LongSupplier clock) {
        this.clock = clock;
        long now = clock.getAsLong();
        this.bandwidth = config.bandwidth().map(c -> new TokenBucket(c, now)).orElse(null);
        this.ops = config.ops().map(c -> new TokenBucket(c, now)).orElse(null);
    }

    /** A limiter for {@code config}, or null when it limits nothing (the device then skips every check). */
    public static RateLimiter of(Config config) {
        return of(config, System::nanoTime);
    }

    static RateLimiter of(Config config, LongSupplier nanoClock) {
        return config.unlimited() ? null : new RateLimiter(config, nanoClock);
    }

    /** Takes one operation and {@code bytes} if both buckets allow them now; otherwise takes nothing. */
    public synchronized boolean tryConsume(long bytes) {
        long now = clock.getAsLong();
        boolean ok = (ops == null || ops.allows(1, now)) && (bandwidth == null || bandwidth.allows(bytes, now));
        if (!ok) {
            throttled.increment();
            return false;
        }
        if (ops != null) ops.take(1, now);
        if (bandwidth != null) bandwidth.take(bytes, now);
        return true;
    }

    /** Nanoseconds until one operation of {@code bytes} is allowed. */
    public synchronized long nanosUntil(long bytes) {
        long now = clock.getAsLong();
        return Math.max(
                ops == null ? 0 : ops.nanosUntil(1, now), bandwidth == null ? 0 : bandwidth.nanosUntil(bytes, now));
    }

    /** Runs {@code resume} on the limiter thread once an operation of {@code bytes} is allowed. */
    public void wakeAfterRefill(long bytes, Runnable resume) {
        // At least a millisecond: a wake-up per refilled token would be a busy loop by another name.
        long delay = Math.max(1_000_000L, nanosUntil(bytes));
        TIMER.schedule(resume, delay, TimeUnit.NANOSECONDS);
    }

    /** How many times a request was held back. */
    public long throttledCount() {
        return throttled.sum();
    }
}
