package dev.jvmm.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Launch time and resident memory of a VMM process, measured from outside the same way for jvmm, refvmm and
 * QEMU: the time from spawning the process to the guest's first debugcon byte on its stdout and to the
 * process's exit, and the process's resident set once the guest has said "ready" (read from /proc).
 */
public final class Footprint {
    private Footprint() {}

    /**
     * Milliseconds from spawn; mainMs (main() entered), ffmMs (its first downcall returned: the FFM linker is up) and
     * vmBuiltMs only where the VMM reports them (jvmm's LaunchMain).
     */
    public record Launch(double firstOutputMs, double exitMs, double mainMs, double ffmMs, double vmBuiltMs) {}

    /** An argument Footprint replaces with its System.nanoTime() at spawn (CLOCK_MONOTONIC, shared with the child). */
    public static final String T0_ARGUMENT = "-Djvmm.launch.t0=NOW";

    private static final java.util.regex.Pattern PHASES =
            java.util.regex.Pattern.compile("launch-phases main_ms=([0-9.]+) ffm_ms=([0-9.]+) vm_built_ms=([0-9.]+)");

    /**
     * Memory of a process running an idle guest: VmRSS and its parts, and how much of the guest-RAM mapping
     * (the one of the guest's size) is resident, so the VMM's own share is rssKb - guestRamRssKb.
     */
    public record Memory(long rssKb, long rssAnonKb, long rssFileKb, long rssShmemKb, long pssKb, long guestRamRssKb) {
        /** RSS minus the resident guest RAM; all of RSS (an upper bound) when the mapping was not found. */
        public long beyondGuestKb() {
            return guestRamRssKb < 0 ? rssKb : rssKb - guestRamRssKb;
        }
    }

    /** Spawns the command and times it; the guest must print first and end by itself. */
    public static Launch launch(List<String> command) {
        return withChild(() -> {
            Path err = Files.createTempFile("launch", ".err");
            try {
                long t0 = System.nanoTime();
                List<String> cmd = command.stream()
                        .map(a -> a.equals(T0_ARGUMENT) ? "-Djvmm.launch.t0=" + t0 : a)
                        .toList();
                Process p = new ProcessBuilder(cmd).redirectError(err.toFile()).start();
                long first = -1;
                try (InputStream in = p.getInputStream()) {
                    if (in.read() >= 0) first = System.nanoTime();
                    in.transferTo(OutputStreamNull.INSTANCE);
                }
                if (!p.waitFor(2, TimeUnit.MINUTES)) {
                    p.destroyForcibly();
                    throw new IllegalStateException("did not exit within 2 minutes: " + command);
                }
                long end = System.nanoTime();
                String errText = Files.readString(err);
                if (first < 0 || p.exitValue() != exitStatusOf(command))
                    throw new IllegalStateException("the guest printed nothing or failed (status " + p.exitValue()
                            + "): " + command + "\n" + errText);
                java.util.regex.Matcher m = PHASES.matcher(errText);
                boolean phases = m.find();
                return new Launch(
                        (first - t0) / 1e6,
                        (end - t0) / 1e6,
                        phases ? Double.parseDouble(m.group(1)) : Double.NaN,
                        phases ? Double.parseDouble(m.group(2)) : Double.NaN,
                        phases ? Double.parseDouble(m.group(3)) : Double.NaN);
            } finally {
                try {
                    Files.deleteIfExists(err);
                } catch (IOException ignored) {
                    // a temp file left behind
                }
            }
        });
    }

    /**
     * QEMU's isa-debug-exit turns the guest's 0 into status 1, and so does the jvmm CLI's --debug-exit, which
     * follows it; LaunchMain and refvmm exit with 0.
     */
    private static int exitStatusOf(List<String> command) {
        return command.get(0).contains("qemu") || command.contains("--debug-exit") ? 1 : 0;
    }

    /** Spawns the command (an idle guest), waits for "ready" on its stdout, reads its /proc files, kills it. */
    public static Memory memory(List<String> command, long guestRamBytes) {
        return withChild(() -> {
            Process p = new ProcessBuilder(command)
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            try {
                InputStream in = p.getInputStream();
                StringBuilder seen = new StringBuilder();
                long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
                while (seen.indexOf("ready") < 0) {
                    int c = in.read();
                    if (c < 0 || System.nanoTime() > deadline)
                        throw new IllegalStateException("the idle guest never said ready: " + command + "\n" + seen);
                    seen.append((char) c);
                }
                Thread.sleep(200); // let the VMM settle (JIT threads, lazily touched pages)
                Path proc = Path.of("/proc", Long.toString(p.pid()));
                String status = Files.readString(proc.resolve("status"));
                String rollup = Files.readString(proc.resolve("smaps_rollup"));
                long guestRss = guestMappingRss(Files.readAllLines(proc.resolve("smaps")), guestRamBytes);
                return new Memory(
                        kb(status, "VmRSS"),
                        kb(status, "RssAnon"),
                        kb(status, "RssFile"),
                        kb(status, "RssShmem"),
                        kb(rollup, "Pss"),
                        guestRss);
            } finally {
                p.destroyForcibly();
                try {
                    p.waitFor(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
    }

    /** Work with a child process, which may fail on I/O or be interrupted while it waits for the child. */
    private interface ChildWork<T> {
        T run() throws IOException, InterruptedException;
    }

    /**
     * Runs {@code work}, its I/O failures unchecked and an interruption an IllegalStateException (the thread stays
     * interrupted): a measurement either has its number or fails.
     */
    private static <T> T withChild(ChildWork<T> work) {
        try {
            return work.run();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static long kb(String procText, String field) {
        for (String line : procText.split("\n")) {
            if (line.startsWith(field + ":"))
                return Long.parseLong(line.substring(field.length() + 1).trim().split("\\s+")[0]);
        }
        return -1;
    }

    /**
     * The resident kB of the guest-RAM mapping: the mapping of the guest's size (a VMM may add up to 4 MiB
     * of alignment) with the most resident pages; -1 if there is none (the kernel may have merged it with a
     * neighbouring anonymous mapping of the same flags, as happens next to the JVM's reservations).
     */
    static long guestMappingRss(List<String> smaps, long guestRamBytes) {
        long best = -1, size = -1;
        long lo = guestRamBytes >> 10, hi = (guestRamBytes + (4L << 20)) >> 10;
        for (String line : smaps) {
            if (line.startsWith("Size:"))
                size = Long.parseLong(line.substring(5).trim().split("\\s+")[0]);
            else if (line.startsWith("Rss:") && size >= lo && size <= hi)
                best = Math.max(best, Long.parseLong(line.substring(4).trim().split("\\s+")[0]));
        }
        return best;
    }

    private static final class OutputStreamNull extends java.io.OutputStream {
        static final OutputStreamNull INSTANCE = new OutputStreamNull();

        @Override
        public void write(int b) {}

        @Override
        public void write(byte[] b, int off, int len) {}
    }
}
