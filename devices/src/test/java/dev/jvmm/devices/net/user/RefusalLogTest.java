package dev.jvmm.devices.net.user;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class RefusalLogTest {
    static final long SECOND = 1_000_000_000L;
    final List<String> lines = new ArrayList<>();
    final RefusalLog log = new RefusalLog(lines::add);

    @Test
    void oneLinePerDestination() {
        for (int i = 0; i < 100; i++) log.refused(1, i * 10 * SECOND, () -> "to 1");
        assertEquals(List.of("to 1"), lines);
    }

    @Test
    void atMostOneLinePerIntervalWhateverTheGuestTries() {
        for (int port = 0; port < 1000; port++) log.refused(port, port * 1000L, () -> "scan");
        assertEquals(1, lines.size(), "a scan within the interval is one line");
        log.refused(2, RefusalLog.INTERVAL_NANOS - 1, () -> "too soon");
        log.refused(2, RefusalLog.INTERVAL_NANOS, () -> "to 2");
        assertEquals(List.of("scan", "to 2"), lines, "a destination skipped for the interval is logged on a later try");
    }

    @Test
    void refusalsWithNothingToSayAreNotRemembered() {
        log.refused(3, 0, () -> null);
        log.refused(3, SECOND, () -> "to 3");
        assertEquals(List.of("to 3"), lines);
    }

    @Test
    void memoryIsBounded() {
        long t = 0;
        for (int d = 0; d <= RefusalLog.REMEMBERED; d++, t += RefusalLog.INTERVAL_NANOS) log.refused(d, t, () -> "x");
        assertEquals(RefusalLog.REMEMBERED + 1, lines.size());
        log.refused(0, t, () -> "again");
        assertEquals("again", lines.getLast(), "forgotten after the memory started afresh");
    }
}
