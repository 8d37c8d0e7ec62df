package dev.jvmm.bench;

import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.DiskImage;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * virtio-blk throughput: a driver over the real device ({@link BlkGuest}: VirtioBlock on virtio-mmio, its I/O threads,
 * the raw or qcow2 backend jvmm opens for {@code --disk}) against the floor, one thread doing pread(2)/pwrite(2) one
 * request at a time on the raw image ({@code blkfloor.c}; for the qcow2 rows too, whose file it would corrupt), and
 * against {@code qemu-img bench} (QEMU's block layer,
 * its thread pool, the same depth) on the same file. Rows: 4 KiB "random" and 64 KiB sequential, reads and writes,
 * raw and qcow2. qemu-img bench has no random pattern, so all three visit offsets (i * step) mod size: step 4 KiB
 * times a prime for the random rows (scattered over the whole image), the block size for the sequential ones.
 *
 * <p>All three run against the host's page cache (no O_DIRECT; the images are read once before the rounds, and
 * writes overwrite allocated data, so qcow2 allocates nothing): what is compared is the cost of each request's path,
 * syscalls, thread hand-offs and virtqueue work, not the disk. Each round runs jvmm at the benchmark's depth and at
 * depth 1, then blkfloor, then qemu-img bench at the same depth, back to back; ratios are of time per request
 * (lower is better; 1 = as fast as the reference) and taken per round.
 */
final class BlkBench {
    record Row(
            String format,
            String pattern,
            boolean write,
            int block,
            Stats jvmmKiops,
            Stats jvmmQd1Kiops,
            Stats floorKiops,
            Stats qemuKiops,
            Stats toFloor,
            Stats qd1ToFloor,
            Stats toQemu,
            String note) {
        String label() {
            return format + " " + pattern + " " + (write ? "write" : "read");
        }
    }

    static final long RANDOM_STEP = 4096L * 7919;
    private static final Pattern QEMU_TIME = Pattern.compile("Run completed in ([0-9.]+) seconds");

    private final Report.Config config;
    private final NativeTools tools;
    private final LaunchBench.Say say;
    private final Path work;

    BlkBench(Report.Config config, NativeTools tools, LaunchBench.Say say) {
        this.config = config;
        this.tools = tools;
        this.say = say;
        this.work = config.out().resolve("blk");
    }

    List<Row> run() throws IOException, InterruptedException {
        List<Row> rows = new ArrayList<>();
        if (config.blkMib() <= 0) return rows;
        Files.createDirectories(work);
        long size = (long) config.blkMib() << 20;
        Path raw = work.resolve("disk.raw"), qcow2 = work.resolve("disk.qcow2");
        Optional<Path> qemuImg = NativeTools.qemuImg();
        try {
            fill(raw, size);
            if (qemuImg.isPresent())
                exec(List.of(
                        qemuImg.get().toString(),
                        "convert",
                        "-f",
                        "raw",
                        "-O",
                        "qcow2",
                        raw.toString(),
                        qcow2.toString()));
            for (Path image : qemuImg.isPresent() ? List.of(raw, qcow2) : List.of(raw)) {
                String format = image == raw ? "raw" : "qcow2";
                for (boolean random : new boolean[] {true, false})
                    for (boolean write : new boolean[] {false, true}) {
                        int block = random ? 4096 : 65536;
                        String pattern = random ? "4 KiB random" : "64 KiB sequential";
                        say.say(
                                "[blk] %s %s %s: %d round(s) of jvmm (depth %d and 1), pread/pwrite, qemu-img bench",
                                format, pattern, write ? "write" : "read", config.rounds(), config.blkDepth());
                        try {
                            rows.add(measure(
                                    image, raw, format, pattern, write, block, random ? RANDOM_STEP : block, size));
                        } catch (IOException | RuntimeException e) {
                            say.say("    failed: %s", e);
                            Stats none = Stats.of(new double[0]);
                            rows.add(new Row(
                                    format,
                                    pattern,
                                    write,
                                    block,
                                    none,
                                    none,
                                    none,
                                    none,
                                    none,
                                    none,
                                    none,
                                    "failed: " + e.getMessage()));
                        }
                    }
            }
        } finally {
            Files.deleteIfExists(raw);
            Files.deleteIfExists(qcow2);
        }
        if (qemuImg.isEmpty()) say.say("[blk] qemu-img not installed: no qcow2 rows and no qemu-img bench column");
        return rows;
    }

    /** {@code floorFile}: the raw image (pwrite at guest offsets into a qcow2 file would overwrite its metadata). */
    private Row measure(
            Path image, Path floorFile, String format, String pattern, boolean write, int block, long step, long size)
            throws IOException, InterruptedException {
        long count = block == 4096 ? config.blkOps4k() : config.blkOps64k();
        int depth = config.blkDepth();
        List<Double> jvmm = new ArrayList<>(), qd1 = new ArrayList<>(), floor = new ArrayList<>();
        List<Double> qemu = new ArrayList<>(), toFloor = new ArrayList<>(), qd1ToFloor = new ArrayList<>();
        List<Double> toQemu = new ArrayList<>();
        Optional<Path> qemuImg = NativeTools.qemuImg();
        exec(List.of("cat", image.toString(), floorFile.toString())); // into the page cache, for all three alike
        for (int r = 0; r < config.rounds(); r++) {
            double jNs, j1Ns;
            try (BlockBackend backend = DiskImage.open(image, DiskImage.Options.DEFAULT);
                    BlkGuest guest = new BlkGuest(backend, block)) {
                if (r == 0) guest.run(write, depth, step, size, count); // JIT warm-up, not counted
                jNs = (double) guest.run(write, depth, step, size, count) / count;
                j1Ns = (double) guest.run(write, 1, step, size, count / 4) / (count / 4);
            }
            String out = exec(List.of(
                    tools.blkFloor().toString(),
                    floorFile.toString(),
                    write ? "write" : "read",
                    "" + block,
                    "" + step,
                    "" + size,
                    "" + count));
            double fNs = Double.parseDouble(out.trim()) / count;
            jvmm.add(1e6 / jNs);
            qd1.add(1e6 / j1Ns);
            floor.add(1e6 / fNs);
            toFloor.add(jNs / fNs);
            qd1ToFloor.add(j1Ns / fNs);
            String q = "";
            if (qemuImg.isPresent()) {
                List<String> cmd = new ArrayList<>(List.of(
                        qemuImg.get().toString(),
                        "bench",
                        "-f",
                        format,
                        "-t",
                        "writeback",
                        "-i",
                        "threads",
                        "-d",
                        "" + depth,
                        "-c",
                        "" + count,
                        "-s",
                        "" + block,
                        "-S",
                        "" + step));
                if (write) cmd.add("-w");
                cmd.add(image.toString());
                Matcher m = QEMU_TIME.matcher(exec(cmd));
                if (!m.find()) throw new IOException("qemu-img bench printed no time");
                double qNs = Double.parseDouble(m.group(1)) * 1e9 / count;
                qemu.add(1e6 / qNs);
                toQemu.add(jNs / qNs);
                q = String.format(", qemu-img %.1f µs (jvmm/qemu-img %.2f)", qNs / 1000, jNs / qNs);
            }
            say.say(
                    "    round %d: jvmm %.1f µs (depth 1: %.1f), pread/pwrite %.1f µs (jvmm/floor %.2f)%s",
                    r + 1, jNs / 1000, j1Ns / 1000, fNs / 1000, jNs / fNs, q);
        }
        return new Row(
                format,
                pattern,
                write,
                block,
                Stats.of(jvmm),
                Stats.of(qd1),
                Stats.of(floor),
                Stats.of(qemu),
                Stats.of(toFloor),
                Stats.of(qd1ToFloor),
                Stats.of(toQemu),
                qemuImg.isPresent() ? "" : "qemu-img not installed");
    }

    /** An image of {@code size} bytes of pseudo-random data, every block allocated. */
    private static void fill(Path file, long size) throws IOException {
        byte[] chunk = new byte[1 << 20];
        new Random(42).nextBytes(chunk);
        try (OutputStream out = Files.newOutputStream(file)) {
            for (long done = 0; done < size; done += chunk.length)
                out.write(chunk, 0, (int) Math.min(chunk.length, size - done));
        }
    }

    private static String exec(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out;
        if (cmd.getFirst().equals("cat")) {
            p.getInputStream().transferTo(OutputStream.nullOutputStream());
            out = new byte[0];
        } else {
            out = p.getInputStream().readAllBytes();
        }
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IOException(cmd.getFirst() + " did not finish");
        }
        String text = new String(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) throw new IOException(String.join(" ", cmd) + " failed: " + text.trim());
        return text;
    }
}
