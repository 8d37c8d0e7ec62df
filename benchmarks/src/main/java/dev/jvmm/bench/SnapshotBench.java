package dev.jvmm.bench;

import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.core.ExitStats;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Snapshot and restore time against the guest's RAM size, with the snapshot guest (snapbench.c), which dirties half
 * its RAM (one word per page, so half its pages are saved and the rest stay holes), says "ready" on the UART and
 * echoes what it receives there. Per round: boot it, wait for "ready", save it as {@code jvmm save} does (pause,
 * quiesce, write, fsync; stopped afterwards), then restore it in this JVM and time the restore call, the first exit
 * of the restored guest (its first instruction is a UART poll) and its echo of a byte sent to the console. The
 * reference for the save is dd copying the snapshot file as written (sparse, fsync) in the same round: the same
 * bytes to the same disk by a native tool. The file is in the page cache when it is restored, as when a test
 * restores what it saved a moment before.
 */
final class SnapshotBench {
    record Row(
            int ramMib,
            int touchedMib,
            Stats fileMib,
            Stats saveMs,
            Stats ddMs,
            Stats saveRatio,
            Stats restoreMs,
            Stats firstExitMs,
            Stats answerMs,
            String note) {}

    private static final long WAIT_NANOS = TimeUnit.MINUTES.toNanos(3);
    private final Report.Config config;
    private final NativeTools tools;
    private final LaunchBench.Say say;
    private final Path work;

    SnapshotBench(Report.Config config, NativeTools tools, LaunchBench.Say say) {
        this.config = config;
        this.tools = tools;
        this.say = say;
        this.work = config.out().resolve("snapshot");
    }

    List<Row> run() throws IOException {
        List<Row> rows = new ArrayList<>();
        if (config.snapshotMib().isEmpty()) return rows;
        Files.createDirectories(work);
        for (int mib : config.snapshotMib()) {
            say.say("[snapshot] %d MiB guest, %d round(s): save, dd, restore", mib, config.rounds());
            try {
                rows.add(measure(mib));
            } catch (IOException | RuntimeException e) {
                say.say("    failed: %s", e);
                Stats none = Stats.of(new double[0]);
                rows.add(new Row(mib, mib / 2, none, none, none, none, none, none, none, "failed: " + e.getMessage()));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted", e);
            }
        }
        return rows;
    }

    private Row measure(int mib) throws IOException, InterruptedException {
        List<Double> file = new ArrayList<>(),
                save = new ArrayList<>(),
                dd = new ArrayList<>(),
                ratio = new ArrayList<>(),
                restore = new ArrayList<>(),
                first = new ArrayList<>(),
                answer = new ArrayList<>();
        Path snap = work.resolve("guest-" + mib + ".snap"), copy = work.resolve("copy-" + mib + ".snap");
        for (int r = 0; r < config.rounds(); r++) {
            Console console = new Console();
            MachineConfig mc = MachineConfig.builder(tools.snapshotGuest())
                    .memory((long) mib << 20)
                    .cmdline("touch=" + mib / 2)
                    .console(console)
                    .noNetwork()
                    .build();
            long saveNs;
            try (Machine m = Machine.create(mc)) {
                m.start();
                console.await("ready\n", m);
                long t0 = System.nanoTime();
                m.snapshot(snap, false);
                saveNs = System.nanoTime() - t0;
                m.stop();
            }
            double ddMs = ddCopy(snap, copy);
            Files.deleteIfExists(copy);
            file.add(allocatedBytes(snap) / 1048576.0);
            save.add(saveNs / 1e6);
            dd.add(ddMs);
            ratio.add(saveNs / 1e6 / ddMs);

            Console after = new Console();
            long t0 = System.nanoTime();
            try (Machine m = Machine.restore(snap, Machine.RestoreOptions.DEFAULT.withConsole(after))) {
                long t1 = System.nanoTime();
                m.start();
                long deadline = t1 + WAIT_NANOS;
                while (exits(m.stats()) == 0) {
                    if (System.nanoTime() > deadline) throw new IllegalStateException("the restored guest never ran");
                    Thread.onSpinWait();
                }
                long t2 = System.nanoTime();
                m.consoleInput(new byte[] {'x'});
                after.await("x", m);
                long t3 = System.nanoTime();
                restore.add((t1 - t0) / 1e6);
                first.add((t2 - t0) / 1e6);
                answer.add((t3 - t0) / 1e6);
                m.stop();
            }
            Files.deleteIfExists(snap);
        }
        return new Row(
                mib,
                mib / 2,
                Stats.of(file),
                Stats.of(save),
                Stats.of(dd),
                Stats.of(ratio),
                Stats.of(restore),
                Stats.of(first),
                Stats.of(answer),
                "");
    }

    private static long exits(ExitStats stats) {
        long n = 0;
        for (ExitStats.Row row : stats.snapshot().values()) n += row.count();
        return n;
    }

    /** dd's copy of the snapshot as it lies on disk (holes kept: conv=sparse), synced, in ms. */
    private static double ddCopy(Path from, Path to) throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder("dd", "if=" + from, "of=" + to, "bs=1M", "conv=sparse,fsync", "status=none")
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) throw new IOException("dd failed: " + out.strip());
        return (System.nanoTime() - t0) / 1e6;
    }

    /** The file's blocks on disk (stat's %b × %B), not its length: zero pages are holes. */
    private static long allocatedBytes(Path file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("stat", "-c", "%b %B", file.toString()).start();
        String[] out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8)
                .trim()
                .split(" ");
        if (p.waitFor() != 0 || out.length != 2) throw new IOException("stat failed on " + file);
        return Long.parseLong(out[0]) * Long.parseLong(out[1]);
    }

    /** The guest's console output, to wait for a string in. */
    private static final class Console extends OutputStream {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        @Override
        public synchronized void write(int b) {
            bytes.write(b);
            notifyAll();
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            bytes.write(b, off, len);
            notifyAll();
        }

        synchronized void await(String text, Machine m) throws InterruptedException {
            long deadline = System.nanoTime() + WAIT_NANOS;
            while (!bytes.toString(StandardCharsets.ISO_8859_1).contains(text)) {
                if (m.awaitExit(java.time.Duration.ZERO).isPresent())
                    throw new IllegalStateException("the guest ended before printing " + text.strip() + ": "
                            + bytes.toString(StandardCharsets.ISO_8859_1));
                long left = deadline - System.nanoTime();
                if (left <= 0)
                    throw new IllegalStateException("no " + text.strip() + " from the guest in "
                            + TimeUnit.NANOSECONDS.toSeconds(WAIT_NANOS) + " s");
                wait(Math.min(TimeUnit.NANOSECONDS.toMillis(left) + 1, 100));
            }
        }
    }
}
