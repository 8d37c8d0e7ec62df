package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.jvmm.kvm.Libc;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** StdinInput on a FIFO of the test's own (fd 0 is the test runner's): data passes, and wake() ends a blocked read. */
class StdinInputTest {
    @TempDir
    Path dir;

    @Test
    void dataPassesAndWakeEndsABlockedReadAsEndOfInput() throws Exception {
        Path fifo = dir.resolve("in");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assertEquals(0, mkfifo.waitFor());
        int fd = Libc.open(fifo.toString(), Libc.O_RDWR, 0); // read-write: opening does not wait for a writer
        try (StdinInput in = new StdinInput(fd)) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment hi = arena.allocateFrom("hi", StandardCharsets.US_ASCII);
                assertEquals(2, Libc.writeRaw(fd, hi, 2));
            }
            byte[] buf = new byte[16];
            assertEquals(2, in.read(buf));
            assertArrayEquals("hi".getBytes(StandardCharsets.US_ASCII), Arrays.copyOf(buf, 2));

            CompletableFuture<Integer> blocked = new CompletableFuture<>();
            Thread reader = Thread.ofPlatform().daemon().start(() -> {
                try {
                    blocked.complete(in.read(buf));
                } catch (Exception e) {
                    blocked.completeExceptionally(e);
                }
            });
            Thread.sleep(200);
            assertFalse(blocked.isDone(), "with nothing to read and the FIFO open, the read waits");
            in.wake();
            assertEquals(-1, blocked.get(10, TimeUnit.SECONDS), "wake() ends it as end of input");
            reader.join();
            assertEquals(-1, in.read(buf), "and every later read");
        } finally {
            Libc.close(fd);
        }
    }
}
