package dev.jvmm.devices.block.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reads of allocated clusters and overwrites in place share the lock; only mapping changes take it alone. */
class Qcow2ConcurrencyTest {
    @TempDir
    Path dir;

    @Test
    void readsAndInPlaceWritesRunWhileAnotherReaderHoldsTheLock() throws Exception {
        Path p = dir.resolve("c.qcow2");
        Qcow2Creator.create(p, Qcow2Creator.Options.of(4 << 20));
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            byte[] data = new byte[65536];
            Arrays.fill(data, (byte) 7);
            q.write(0, MemorySegment.ofArray(data));
            // Another request is in the middle of a read (it holds the shared lock).
            q.lock().readLock().lock();
            try {
                CompletableFuture<byte[]> read = CompletableFuture.supplyAsync(() -> {
                    byte[] b = new byte[4096];
                    try {
                        q.read(4096, MemorySegment.ofArray(b));
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                    return b;
                });
                assertEquals(7, read.get(10, TimeUnit.SECONDS)[0], "a read must not wait for another read");
                CompletableFuture<Void> overwrite = CompletableFuture.runAsync(() -> {
                    try {
                        q.write(8192, MemorySegment.ofArray(new byte[4096]));
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                overwrite.get(10, TimeUnit.SECONDS);
                // Allocating a new cluster changes the mapping: it waits until the reader is done.
                CompletableFuture<Void> allocating = CompletableFuture.runAsync(() -> {
                    try {
                        q.write(2 << 20, MemorySegment.ofArray(new byte[4096]));
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                assertThrows(TimeoutException.class, () -> allocating.get(300, TimeUnit.MILLISECONDS));
                q.lock().readLock().unlock();
                allocating.get(10, TimeUnit.SECONDS);
            } finally {
                if (q.lock().getReadHoldCount() > 0) q.lock().readLock().unlock();
            }
        }
    }
}
