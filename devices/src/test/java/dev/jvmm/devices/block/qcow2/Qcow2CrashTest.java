package dev.jvmm.devices.block.qcow2;

import static dev.jvmm.devices.block.qcow2.QemuTools.*;
import static org.junit.jupiter.api.Assertions.*;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kills a writing child JVM at random moments; every image must pass `qemu-img check` (clean or leaks only)
 * and hold every acknowledged write; sectors touched after the last acknowledgement may hold the old or any
 * newer content, nothing else.
 */
@Tag("slow")
class Qcow2CrashTest {
    @TempDir
    Path dir;

    static final long SIZE = 8L << 20;
    static final int RUNS = 24;

    @Test
    void killedWriterLeavesConsistentImages() throws Exception {
        requireQemu();
        Random master = new Random(20261123);
        byte[] baseData = new byte[(int) SIZE];
        new Random(1).nextBytes(baseData);
        Path base = dir.resolve("base.raw");
        Files.write(base, baseData);
        int leakyRuns = 0;
        for (int run = 0; run < RUNS; run++) {
            Path img = dir.resolve("crash" + run + ".qcow2");
            Qcow2Creator.Options o = switch (run % 4) {
                case 0 -> Qcow2Creator.Options.of(SIZE).withClusterSize(4096);
                case 1 -> Qcow2Creator.Options.of(SIZE).withClusterSize(512).withRefcountBits(64);
                case 2 -> Qcow2Creator.Options.of(SIZE).withExtendedL2(true).withClusterSize(16384);
                default -> Qcow2Creator.Options.of(SIZE).withVersion(2).withClusterSize(8192);
            };
            boolean withBacking = run % 2 == 0;
            if (withBacking) o = o.withBacking("base.raw", "raw");
            Qcow2Creator.create(img, o);
            long seed = master.nextLong();
            long killAfterMs = 150 + master.nextInt(1200);
            long acked = runAndKill(img, seed, killAfterMs);
            Result check = run("qemu-img", "check", img.toString());
            assertTrue(
                    check.exit() == 0 || check.exit() == 3,
                    "run " + run + " (" + o + "): qemu-img check exit " + check.exit() + ":\n" + check.out());
            if (check.exit() == 3) {
                assertFalse(check.out().contains("ERROR"), check.out());
                leakyRuns++;
            }
            verifyContent(img, withBacking ? baseData : new byte[(int) SIZE], seed, acked, run);
        }
        System.out.println("crash runs: " + RUNS + ", with leaked clusters: " + leakyRuns);
    }

    private long runAndKill(Path img, long seed, long killAfterMs) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(
                        java,
                        "-cp",
                        System.getProperty("java.class.path"),
                        CrashWriter.class.getName(),
                        img.toString(),
                        Long.toString(seed))
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        AtomicLong acked = new AtomicLong();
        Thread reader = new Thread(() -> {
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
                for (String line; (line = br.readLine()) != null; ) {
                    if (line.startsWith("ACK ")) acked.set(Long.parseLong(line.substring(4)));
                }
            } catch (Exception ignored) {
                // the pipe closes when the child dies
            }
        });
        reader.start();
        // Wait for the first acknowledgement so the kill lands during writing, not during JVM start-up.
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (acked.get() == 0 && p.isAlive() && System.nanoTime() < deadline) Thread.sleep(5);
        Thread.sleep(killAfterMs);
        assertTrue(p.isAlive(), "the writer died on its own");
        p.destroyForcibly();
        p.waitFor();
        reader.join();
        return acked.get();
    }

    /** Every sector holds its content as of the last acknowledged op, or that of a later op that touched it. */
    private void verifyContent(Path img, byte[] initial, long seed, long acked, int run) throws Exception {
        byte[] actual = qemuRaw(img, dir);
        byte[] state = initial.clone();
        Random r = new Random(seed);
        long sizeSectors = SIZE / 512;
        byte[] sector = new byte[512];
        for (long i = 1; i <= acked; i++) apply(state, CrashWriter.op(r, sizeSectors), i, sector);
        // Ops after the acknowledgement (at most two flush intervals ran before the kill was noticed... bound
        // generously).
        List<CrashWriter.Op> later = new ArrayList<>();
        for (int j = 0; j < 64 * CrashWriter.FLUSH_EVERY; j++) later.add(CrashWriter.op(r, sizeSectors));
        for (long s = 0; s < sizeSectors; s++) {
            int at = (int) (s * 512);
            if (Arrays.equals(actual, at, at + 512, state, at, at + 512)) continue;
            boolean explained = false;
            for (int j = 0; j < later.size() && !explained; j++) {
                CrashWriter.Op op = later.get(j);
                if (s < op.sector() || s >= op.sector() + op.sectors()) continue;
                if (op.kind() == 0) {
                    CrashWriter.fillSector(sector, 0, acked + 1 + j, s);
                } else {
                    Arrays.fill(sector, (byte) 0);
                }
                explained = Arrays.equals(actual, at, at + 512, sector, 0, 512);
            }
            assertTrue(
                    explained,
                    "run " + run + ": sector " + s + " holds content that is neither the acknowledged" + " state (ack "
                            + acked + ") nor a later write");
        }
    }

    private static void apply(byte[] state, CrashWriter.Op op, long index, byte[] sector) {
        for (int s = 0; s < op.sectors(); s++) {
            int at = (int) ((op.sector() + s) * 512);
            if (op.kind() == 0) {
                CrashWriter.fillSector(state, at, index, op.sector() + s);
            } else {
                Arrays.fill(state, at, at + 512, (byte) 0);
            }
        }
    }
}
