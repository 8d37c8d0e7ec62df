package dev.jvmm.devices.ratelimit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Token buckets and the limiter over them, on a clock the test moves. */
class RateLimiterTest {
    private static final long MS = 1_000_000L;
    private long now = 5_000 * MS;

    private RateLimiter limiter(TokenBucket.Config bandwidth, TokenBucket.Config ops) {
        return RateLimiter.of(
                new RateLimiter.Config(Optional.ofNullable(bandwidth), Optional.ofNullable(ops)), () -> now);
    }

    @Test
    void aFullBucketServesItsSizeThenRefillsLinearly() {
        RateLimiter l = limiter(new TokenBucket.Config(1000, 0, 100), null); // 1000 bytes per 100 ms
        assertTrue(l.tryConsume(600));
        assertTrue(l.tryConsume(400));
        assertFalse(l.tryConsume(1), "empty");
        assertEquals(MS / 10, l.nanosUntil(1), 1, "one byte refills in a tenth of a millisecond");
        now += 50 * MS;
        assertTrue(l.tryConsume(500));
        assertFalse(l.tryConsume(1));
        now += 1000 * MS;
        assertTrue(l.tryConsume(1000), "refilled to its size, no more");
        assertFalse(l.tryConsume(1));
        assertEquals(3, l.throttledCount(), "each refusal counted");
    }

    @Test
    void theOneTimeBurstIsSpentFirstAndNeverRefilled() {
        RateLimiter l = limiter(new TokenBucket.Config(100, 250, 1000), null);
        assertTrue(l.tryConsume(300)); // 250 from the burst, 50 from the bucket
        assertTrue(l.tryConsume(50));
        assertFalse(l.tryConsume(1));
        now += 10_000 * MS;
        assertTrue(l.tryConsume(100));
        assertFalse(l.tryConsume(1), "the burst does not come back");
    }

    @Test
    void aRequestLargerThanTheBucketPassesWhenFullAndLeavesADebt() {
        RateLimiter l = limiter(new TokenBucket.Config(1000, 0, 1000), null);
        assertTrue(l.tryConsume(3000), "refused forever otherwise");
        assertFalse(l.tryConsume(1));
        assertEquals(2001 * MS, l.nanosUntil(1), MS, "the debt of 2000 and a byte are paid at 1 per ms");
        now += 2000 * MS;
        assertFalse(l.tryConsume(1), "the debt is paid, nothing more yet");
        now += 1000 * MS;
        assertTrue(l.tryConsume(1000));
    }

    @Test
    void opsAndBandwidthAreTakenTogetherOrNotAtAll() {
        RateLimiter l = limiter(new TokenBucket.Config(1000, 0, 1000), new TokenBucket.Config(2, 0, 1000));
        assertTrue(l.tryConsume(100));
        assertFalse(l.tryConsume(950), "bandwidth short");
        assertTrue(l.tryConsume(900), "the refused request took no operation");
        assertFalse(l.tryConsume(0), "two operations spent");
        now += 500 * MS;
        assertTrue(l.tryConsume(0));
    }

    @Test
    void nothingConfiguredIsNoLimiterAndBadBucketsAreRefused() {
        assertNull(RateLimiter.of(RateLimiter.Config.UNLIMITED));
        assertThrows(IllegalArgumentException.class, () -> new TokenBucket.Config(0, 0, 1000));
        assertThrows(IllegalArgumentException.class, () -> new TokenBucket.Config(10, -1, 1000));
        assertThrows(IllegalArgumentException.class, () -> new TokenBucket.Config(10, 0, 0));
    }

    @Test
    void theWakeUpComesOnceTokensAreThere() throws InterruptedException {
        RateLimiter l = RateLimiter.of(new RateLimiter.Config(
                Optional.empty(), Optional.of(new TokenBucket.Config(1, 0, 50)))); // the real clock
        assertTrue(l.tryConsume(0));
        assertFalse(l.tryConsume(0));
        CountDownLatch woke = new CountDownLatch(1);
        l.wakeAfterRefill(0, woke::countDown);
        assertTrue(woke.await(10, TimeUnit.SECONDS));
        assertTrue(l.tryConsume(0), "woken when an operation is allowed");
    }
}
