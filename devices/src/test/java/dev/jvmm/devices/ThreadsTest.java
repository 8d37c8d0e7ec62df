package dev.jvmm.devices;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ThreadsTest {
    @Test
    void joinWaitsThroughAnInterruptAndRestoresIt() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        Thread worker = Thread.ofPlatform().start(() -> {
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                // not interrupted by the test
            }
        });
        Thread releaser = Thread.ofPlatform().start(() -> {
            try {
                Thread.sleep(100);
            } catch (InterruptedException ignored) {
                // released early
            }
            release.countDown();
        });
        Thread.currentThread().interrupt(); // the first join attempt throws at once
        Threads.joinUninterruptibly(worker);
        assertFalse(worker.isAlive(), "returned before the thread ended");
        assertTrue(Thread.interrupted(), "the caller's interrupt was swallowed");
        releaser.join();
    }
}
