package dev.jvmm.microvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class ConsoleLogTest {
    @Test
    void awaitSeesOutputThatArrivesLaterAndCopiesIt() throws Exception {
        ByteArrayOutputStream copy = new ByteArrayOutputStream();
        ConsoleLog log = new ConsoleLog(copy);
        log.write("booting\n".getBytes(StandardCharsets.US_ASCII));
        Thread.ofVirtual().start(() -> {
            try {
                Thread.sleep(50);
                log.write("jvmm-agent: listening on vsock port ".getBytes(StandardCharsets.US_ASCII));
                log.write("1024\n".getBytes(StandardCharsets.US_ASCII));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        MatchResult m = log.await(Pattern.compile("vsock port (\\d+)\n"), Duration.ofSeconds(30))
                .orElseThrow();
        assertEquals("1024", m.group(1));
        assertEquals(log.text(), copy.toString(StandardCharsets.US_ASCII));
        assertTrue(log.await(Pattern.compile("never"), Duration.ofMillis(20)).isEmpty());
    }

    @Test
    void keepsTheLastPartOfALongLog() {
        ConsoleLog log = new ConsoleLog(java.io.OutputStream.nullOutputStream());
        byte[] line = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < ConsoleLog.LIMIT / line.length + 10; i++) log.write(line, 0, line.length);
        log.write("end".getBytes(StandardCharsets.US_ASCII), 0, 3);
        assertEquals(ConsoleLog.LIMIT, log.text().length());
        assertTrue(log.text().endsWith("end"));
    }
}
