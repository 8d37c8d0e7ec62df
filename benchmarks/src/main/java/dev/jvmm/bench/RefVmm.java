package dev.jvmm.bench;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs the C reference VMM (src/main/c/refvmm.c) and reads its machine-readable output. */
public final class RefVmm {
    private static final Pattern RECORD = Pattern.compile("(tsc_khz|batch|empty_run|exit) (\\d+)(?: (\\d+))?");
    private static final Pattern CYCLES = Pattern.compile("cycles=([0-9a-f]+)");

    public record Result(
            List<Long> batchNanos,
            List<Long> guestCycles,
            int tscKhz,
            long emptyRunNanos,
            long emptyRuns,
            int exitCode,
            String output) {}

    private RefVmm() {}

    public static Result run(NativeTools tools, String cmdline, Path samples, long emptyRuns) {
        List<String> cmd = new ArrayList<>(
                List.of(tools.refvmm().toString(), tools.guestBinary().toString(), cmdline));
        if (samples != null) cmd.addAll(List.of("--samples", samples.toString()));
        if (emptyRuns > 0) cmd.addAll(List.of("--empty-runs", Long.toString(emptyRuns)));
        String out;
        int rc;
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            out = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("refvmm did not finish: " + cmd);
            }
            rc = p.exitValue();
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + tools.refvmm() + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        List<Long> batches = new ArrayList<>();
        List<Long> cycles = new ArrayList<>();
        int tscKhz = 0, exit = -1;
        long emptyNs = 0, empty = 0;
        for (String line : out.split("\n")) {
            Matcher m = RECORD.matcher(line);
            if (m.find()) {
                long v = Long.parseLong(m.group(2));
                switch (m.group(1)) {
                    case "tsc_khz" -> tscKhz = (int) v;
                    case "batch" -> batches.add(v);
                    case "empty_run" -> {
                        emptyNs = v;
                        empty = Long.parseLong(m.group(3));
                    }
                    case "exit" -> exit = (int) v;
                    default -> {}
                }
            }
            Matcher c = CYCLES.matcher(line);
            if (line.contains("R kind=") && c.find()) cycles.add(Long.parseUnsignedLong(c.group(1), 16));
        }
        if (rc != 0 || exit != 0)
            throw new IllegalStateException(
                    "refvmm failed (status " + rc + ", guest exit " + exit + ") for '" + cmdline + "':\n" + out);
        return new Result(batches, cycles, tscKhz, emptyNs, empty, exit, out);
    }
}
