package dev.jvmm.bench;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One exit kind through jvmm's own vCPU thread and exit loop: each operation lets the guest run a batch of
 * {@link #BATCH} exits (it asks the control port for the batch, then loops), and JMH divides by the batch,
 * so the score is the time of one exit, guest loop and VMM included. The two control exits that bracket a
 * batch and the thread hand-off add under 1% at this batch size.
 *
 * <p>Run it with {@code -p kind=pio_out -p cpl=3} (the Report does, one kind at a time; irq only at cpl 0).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-XX:+UseSerialGC"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class ExitBenchmark {
    public static final int BATCH = 1000;

    @Param({"pio_out"})
    public String kind;

    @Param({"3"})
    public int cpl;

    private BenchMachine machine;

    @Setup(Level.Trial)
    public void boot() {
        ExitKind k = ExitKind.byGuestName(kind);
        if (!k.cpls().contains(cpl)) throw new IllegalArgumentException(kind + " does not run at CPL " + cpl);
        machine = BenchMachine.forKind(NativeTools.locate().guestImage(), k, cpl, BATCH, 0, true)
                .build();
        machine.start();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long exits() {
        return machine.runBatch(BATCH);
    }

    @TearDown(Level.Trial)
    public void shutdown() throws InterruptedException {
        machine.finish();
        machine.awaitExit(Duration.ofSeconds(30));
        machine.close();
    }
}
