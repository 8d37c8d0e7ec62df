package dev.jvmm.kvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class OwnedFdTest {
    private static OwnedFd eventfd(String owner) {
        return new OwnedFd(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), owner);
    }

    private static long write(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            return Libc.writeRaw(fd, arena.allocateFrom(ValueLayout.JAVA_LONG, 1L), 8);
        }
    }

    @Test
    void givesItsNumberWhileOpen() {
        try (OwnedFd fd = eventfd("test eventfd")) {
            assertFalse(fd.isClosed());
            assertEquals(8, write(fd.get()));
            assertEquals("test eventfd", fd.owner());
            assertTrue(fd.toString().startsWith("test eventfd (fd "), fd.toString());
        }
    }

    @Test
    void useAfterCloseThrowsNamingTheOwner() {
        OwnedFd fd = eventfd("Vcpu 3");
        fd.close();
        assertTrue(fd.isClosed());
        ClosedFdException e = assertThrows(ClosedFdException.class, fd::get);
        assertEquals("Vcpu 3", e.owner());
        assertEquals("Vcpu 3 is closed; it cannot be used after close()", e.getMessage());
        assertTrue(fd.toString().endsWith(", closed)"), fd.toString());
    }

    @Test
    void aSecondCloseLeavesARecycledNumberAlone() {
        OwnedFd fd = eventfd("first");
        int number = fd.get();
        fd.close();
        // The kernel hands out the lowest free number, so the next fd very likely reuses this one.
        try (OwnedFd next = eventfd("second")) {
            fd.close();
            assertThrows(ClosedFdException.class, fd::get);
            assertEquals(8, write(next.get()), "the second close must not have closed fd " + number + "'s successor");
        }
    }

    @Test
    void concurrentClosesCloseOnce() throws Exception {
        for (int round = 0; round < 50; round++) {
            OwnedFd fd = eventfd("shared");
            CountDownLatch go = new CountDownLatch(1);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                threads.add(Thread.ofPlatform().start(() -> {
                    try {
                        go.await();
                        fd.close(); // a real second close(2) would fail with EBADF and throw
                    } catch (Throwable t) {
                        failure.compareAndSet(null, t);
                    }
                }));
            }
            go.countDown();
            for (Thread t : threads) t.join();
            assertNull(failure.get());
            assertTrue(fd.isClosed());
        }
    }

    @Test
    void rejectsANegativeNumber() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new OwnedFd(-1, "Vm"));
        assertTrue(e.getMessage().contains("Vm"), e.getMessage());
    }
}
