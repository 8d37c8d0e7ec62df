package dev.jvmm.microvm;

import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.regex.MatchResult;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The serial console's output as text, kept for {@link MicroVm#awaitConsole} and for a failing test's report
 * (the last {@link #LIMIT} characters), optionally copied to another stream as it arrives.
 */
final class ConsoleLog extends OutputStream {
    static final int LIMIT = 4 << 20;

    private final StringBuilder text = new StringBuilder();
    private final OutputStream tee;

    ConsoleLog(OutputStream tee) {
        this.tee = tee;
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b) {
        write(b, 0, b.length);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) {
        // the copy is written before waiters wake, so whatever await() has seen is already in the copy too
        try {
            tee.write(b, off, len);
        } catch (java.io.IOException e) {
            // the copy is a convenience; the log itself is kept
        }
        text.append(new String(b, off, len, StandardCharsets.ISO_8859_1));
        if (text.length() > LIMIT) {
            int cut = text.length() - LIMIT;
            text.delete(0, cut);
        }
        notifyAll();
    }

    synchronized String text() {
        return text.toString();
    }

    /** The first match in the log (from its start), waiting for it up to the timeout. */
    synchronized Optional<MatchResult> await(Pattern pattern, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Matcher m = pattern.matcher(text);
            if (m.find()) return Optional.of(m.toMatchResult());
            long left = deadline - System.nanoTime();
            if (left <= 0) return Optional.empty();
            wait(Math.max(1, left / 1_000_000));
        }
    }
}
