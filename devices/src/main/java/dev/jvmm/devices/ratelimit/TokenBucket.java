package dev.jvmm.devices.ratelimit;

/**
 * A token bucket as Firecracker's rate limiter has it: {@code size} tokens that refill completely in
 * {@code refillTimeMillis}, linearly, and a {@code oneTimeBurst} of extra tokens spent first and never refilled.
 * The bucket starts full. Not thread-safe: its {@link RateLimiter} locks.
 */
public final class TokenBucket {
    /** What a bucket is configured with; Firecracker's {@code TokenBucket} JSON, field for field. */
    public record Config(long size, long oneTimeBurst, long refillTimeMillis) {
        public Config {
            if (size <= 0) throw new IllegalArgumentException("token bucket size " + size + " must be positive");
            if (oneTimeBurst < 0)
                throw new IllegalArgumentException("token bucket one_time_burst " + oneTimeBurst + " is negative");
            if (refillTimeMillis <= 0)
                throw new IllegalArgumentException(
                        "token bucket refill_time " + refillTimeMillis + " ms must be positive");
        }

        /** {@code perSecond} tokens a second, {@code burst} more once. */
        public static Config perSecond(long perSecond, long burst) {
            return new Config(perSecond, burst, 1000);
        }
    }

    private final long size;
    private final long refillNanos;
    /** Tokens now; negative after a request larger than the bucket (a debt that the refill pays first). */
    private double budget;

    private long burst;
    private long lastRefill;

    TokenBucket(Config c, long now) {
        this.size = c.size();
        this.refillNanos = c.refillTimeMillis() * 1_000_000L;
        this.budget = size;
        this.burst = c.oneTimeBurst();
        this.lastRefill = now;
    }

    private void refill(long now) {
        long elapsed = now - lastRefill;
        if (elapsed <= 0) return;
        lastRefill = now;
        budget = Math.min(size, budget + (double) elapsed * size / refillNanos);
    }

    /**
     * Whether {@code n} tokens can be taken now. A request larger than the bucket can be taken when the bucket is
     * full: it leaves a debt, so that the average rate holds and such a request is never refused forever.
     */
    boolean allows(long n, long now) {
        refill(now);
        long fromBudget = n - Math.min(burst, n);
        return fromBudget <= 0 || budget >= Math.min(fromBudget, size);
    }

    /** Takes {@code n} tokens (after {@link #allows}); the one-time burst first. */
    void take(long n, long now) {
        refill(now);
        long fromBurst = Math.min(burst, n);
        burst -= fromBurst;
        budget -= n - fromBurst;
    }

    /** Nanoseconds until {@code n} tokens are allowed (0 if they are now). */
    long nanosUntil(long n, long now) {
        refill(now);
        long fromBudget = n - Math.min(burst, n);
        double missing = Math.min(fromBudget, size) - budget;
        if (fromBudget <= 0 || missing <= 0) return 0;
        return (long) Math.ceil(missing * refillNanos / size);
    }
}
