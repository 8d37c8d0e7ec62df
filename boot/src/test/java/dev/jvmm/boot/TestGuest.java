package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.ExitStatus;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;

/**
 * One run of a test guest (src/test/guest) on the assembled PC: a 64 MiB machine whose debugcon output is kept
 * and whose debug-exit port is 0xf4, started and waited for.
 */
final class TestGuest {
    private final ByteArrayOutputStream debugcon = new ByteArrayOutputStream();
    /** The machine so far; a test adds its command line, vCPUs and devices. */
    final MachineConfig.Builder config;

    TestGuest(String name, Path dir) throws IOException {
        config = MachineConfig.builder(TestKernels.guest(name, dir))
                .memory(64 << 20)
                .debugcon(debugcon)
                .debugExit(0xf4);
    }

    /** Starts m and waits up to two minutes for it to stop; fails with the guest's output if it does not. */
    ExitStatus run(Machine m) throws InterruptedException {
        m.start();
        return m.awaitExit(Duration.ofMinutes(2)).orElseThrow(() -> new AssertionError("no exit; output: " + output()));
    }

    /** What the guest wrote to debugcon so far. */
    String output() {
        return debugcon.toString();
    }

    /** A guest test suite's verdict: it exited 0, counted no failure and printed no FAIL line. */
    void assertSuitePassed(ExitStatus s) {
        String out = output();
        assertEquals(new ExitStatus.GuestExit(0), s, out);
        assertTrue(out.contains(", 0 failed"), out);
        assertFalse(out.contains("FAIL"), out);
    }
}
