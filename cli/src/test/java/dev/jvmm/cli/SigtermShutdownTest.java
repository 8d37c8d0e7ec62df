package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

class SigtermShutdownTest {
    private final List<String> calls = new CopyOnWriteArrayList<>();
    private final StringWriter messages = new StringWriter();
    private final SigtermShutdown.Target target = new SigtermShutdown.Target() {
        public void pressPowerButton() {
            calls.add("button");
        }

        public void stop() {
            calls.add("stop");
        }
    };

    @Test
    void firstSigtermPressesThePowerButtonAndTheSecondStops() {
        try (SigtermShutdown s =
                SigtermShutdown.forTest(target, Duration.ofHours(1), new PrintWriter(messages, true))) {
            s.terminate();
            assertEquals(List.of("button"), calls);
            assertTrue(messages.toString().contains("pressed the guest's power button"), messages.toString());
            s.terminate();
            assertEquals(List.of("button", "stop"), calls);
            assertTrue(messages.toString().contains("second SIGTERM: stopping the guest"), messages.toString());
            s.terminate();
            assertEquals(List.of("button", "stop"), calls, "a third changes nothing");
        }
    }

    @Test
    void aGuestThatDoesNotPowerOffIsStoppedAfterTheGracePeriodAndSaidSo() throws InterruptedException {
        try (SigtermShutdown s =
                SigtermShutdown.forTest(target, Duration.ofMillis(50), new PrintWriter(messages, true))) {
            s.terminate();
            for (int i = 0; i < 200 && calls.size() < 2; i++) Thread.sleep(10);
            assertEquals(List.of("button", "stop"), calls);
            assertTrue(
                    messages.toString().contains("did not power off within 0 s of SIGTERM: stopping it"),
                    messages.toString());
        }
    }

    @Test
    void aRunThatEndsWithinTheGracePeriodIsNotStoppedLater() throws InterruptedException {
        SigtermShutdown s = SigtermShutdown.forTest(target, Duration.ofMillis(100), new PrintWriter(messages, true));
        s.terminate();
        s.close(); // the guest powered off
        Thread.sleep(300);
        assertEquals(List.of("button"), calls);
        s.terminate();
        assertEquals(List.of("button"), calls, "after the run, SIGTERM is not ours");
    }
}
