package dev.jvmm.bench;

import dev.jvmm.devices.block.qcow2.Qcow2Creator;
import dev.jvmm.devices.block.qcow2.Qcow2Image;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * qcow2 I/O of jvmm's engine next to `qemu-img bench` on the same image, in one run: sequential and random
 * 4 KiB / 64 KiB reads and writes at queue depth 1 through the page cache, on a fully allocated image
 * (default 1 GiB, 64 KiB clusters). qemu-img bench has no random pattern, so random results are jvmm's alone.
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp <benchmarks classpath>
 * dev.jvmm.bench.Qcow2Benchmark [sizeMiB]}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
public class Qcow2Benchmark {
    @Param({"4096", "65536"})
    public int blockSize;

    @Param({"1024"})
    public int imageMiB;

    @Param("")
    public String imagePath;

    private Qcow2Image image;
    private MemorySegment buffer;
    private Arena arena;
    private long size, seqOffset;
    private final SplittableRandom random = new SplittableRandom(1);

    @Setup(Level.Trial)
    public void open() throws Exception {
        Path p = imagePath.isEmpty() ? prepare(imageMiB) : Path.of(imagePath);
        image = Qcow2Image.open(p, false);
        size = image.size();
        arena = Arena.ofShared();
        buffer = arena.allocate(blockSize, 4096);
        buffer.fill((byte) 0x5a);
    }

    @TearDown(Level.Trial)
    public void close() throws Exception {
        image.close();
        arena.close();
    }

    private long nextSequential() {
        long off = seqOffset;
        seqOffset = (seqOffset + blockSize) % (size - size % blockSize);
        return off;
    }

    private long nextRandom() {
        return random.nextLong(size / blockSize) * blockSize;
    }

    @Benchmark
    public void sequentialRead() throws Exception {
        image.read(nextSequential(), buffer);
    }

    @Benchmark
    public void randomRead() throws Exception {
        image.read(nextRandom(), buffer);
    }

    @Benchmark
    public void sequentialWrite() throws Exception {
        image.write(nextSequential(), buffer);
    }

    @Benchmark
    public void randomWrite() throws Exception {
        image.write(nextRandom(), buffer);
    }

    /** A fully allocated image of the given size (so reads and overwrites hit allocated clusters). */
    static Path prepare(int mib) throws Exception {
        Path p = Path.of(System.getProperty("java.io.tmpdir"), "jvmm-bench-" + mib + "m.qcow2");
        if (Files.exists(p)) return p;
        Path tmp = Path.of(p + ".tmp");
        Qcow2Creator.create(tmp, Qcow2Creator.Options.of((long) mib << 20));
        try (Qcow2Image img = Qcow2Image.open(tmp, false);
                Arena a = Arena.ofConfined()) {
            MemorySegment chunk = a.allocate(1 << 20);
            for (long off = 0; off < (long) mib << 20; off += 1 << 20) {
                chunk.fill((byte) (off >>> 20 | 1));
                img.write(off, chunk);
            }
            img.flush();
        }
        Files.move(tmp, p);
        return p;
    }

    /** ops/s of `qemu-img bench` for a sequential pattern. */
    static double qemuBench(Path image, int blockSize, boolean write, int count) throws Exception {
        Process pr = new ProcessBuilder(
                        "qemu-img",
                        "bench",
                        "-f",
                        "qcow2",
                        "-t",
                        "writeback",
                        "-d",
                        "1",
                        "-s",
                        String.valueOf(blockSize),
                        "-c",
                        String.valueOf(count),
                        write ? "-w" : "-q",
                        image.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(pr.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (pr.waitFor() != 0) throw new IllegalStateException("qemu-img bench failed: " + out);
        Matcher m = Pattern.compile("Run completed in ([0-9.]+) seconds").matcher(out);
        if (!m.find()) throw new IllegalStateException("unexpected qemu-img bench output: " + out);
        return count / Double.parseDouble(m.group(1));
    }

    public static void main(String[] args) throws Exception {
        int mib = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        Path image = prepare(mib);
        Collection<RunResult> results = new Runner(new OptionsBuilder()
                        .include(Qcow2Benchmark.class.getSimpleName())
                        .param("imageMiB", String.valueOf(mib))
                        .param("imagePath", image.toString())
                        .build())
                .run();
        System.out.println();
        System.out.println("pattern               block   jvmm ops/s   qemu-img bench ops/s   jvmm/qemu");
        for (RunResult r : results) {
            String name = r.getParams().getBenchmark().replaceAll(".*\\.", "");
            int bs = Integer.parseInt(r.getParams().getParam("blockSize"));
            double ours = r.getPrimaryResult().getScore();
            String theirs = "-", ratio = "-";
            if (name.startsWith("sequential")) {
                int count = (int) Math.max(1000, Math.min(200_000, ((long) mib << 20) / bs));
                double q = qemuBench(image, bs, name.endsWith("Write"), count);
                theirs = String.format(Locale.ROOT, "%.0f", q);
                ratio = String.format(Locale.ROOT, "%.2f", ours / q);
            }
            System.out.println(String.format(Locale.ROOT, "%-20s %7d %12.0f %22s %11s", name, bs, ours, theirs, ratio));
        }
    }
}
