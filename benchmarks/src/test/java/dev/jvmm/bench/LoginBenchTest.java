package dev.jvmm.bench;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The login timer on stand-in "VMMs" (shell commands printing a console), without a guest or /dev/kvm. */
class LoginBenchTest {
    @Test
    void timesSpawnToThePromptAndKillsTheVmm(@TempDir Path work) throws Exception {
        long t0 = System.nanoTime();
        double s = LoginBench.secondsToLogin(
                List.of(
                        "sh",
                        "-c",
                        "echo booting; sleep 0.5; printf 'Debian GNU/Linux 12 jvmm-debian "
                                + "ttyS0\\n\\njvmm-debian login: '; sleep 60"),
                work,
                "fake",
                Duration.ofSeconds(30));
        double wall = (System.nanoTime() - t0) / 1e9;
        assertTrue(s >= 0.5 && s < 10, "seconds to the prompt: " + s);
        assertTrue(wall < 30, "the VMM was killed at the prompt, not waited for: " + wall + " s");
        assertTrue(Files.readString(work.resolve("fake.log")).contains("booting"), "the console is kept in the log");
    }

    @Test
    void aConsoleThatEndsWithoutAPromptIsAFailureThatSaysSo(@TempDir Path work) {
        var e = assertThrows(
                IllegalStateException.class,
                () -> LoginBench.secondsToLogin(
                        List.of("sh", "-c", "echo Kernel panic"), work, "dies", Duration.ofSeconds(30)));
        assertTrue(e.getMessage().contains("dies: the console ended before a login prompt"), e.getMessage());
    }

    @Test
    void aBootThatNeverReachesThePromptTimesOut(@TempDir Path work) {
        var e = assertThrows(
                IllegalStateException.class,
                () -> LoginBench.secondsToLogin(
                        List.of("sh", "-c", "echo starting; sleep 60"), work, "slow", Duration.ofMillis(500)));
        assertTrue(e.getMessage().contains("slow: no login prompt within PT0.5S"), e.getMessage());
    }
}
