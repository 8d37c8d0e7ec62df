package dev.jvmm.bench;

import dev.jvmm.core.Vcpu;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.gen.kvm_run;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * KVM_RUN with kvm_run.immediate_exit set: the ioctl returns EINTR without entering the guest, so this is
 * the bare price of jvmm's downcall and the syscall, host-side only (refvmm's --empty-runs is the C twin).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-XX:+UseSerialGC"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class EmptyRunBenchmark {
    private VirtualMachine vm;
    private Vcpu vcpu;

    @Setup(Level.Trial)
    public void create() {
        vm = VirtualMachine.builder().memory(2 << 20).build();
        vcpu = vm.vcpus().get(0);
        vcpu.runArea().set(ValueLayout.JAVA_BYTE, kvm_run.immediate_exit$offset(), (byte) 1);
    }

    @Benchmark
    public int emptyRun() {
        int r = vcpu.run();
        if (r != -Errno.EINTR) throw new IllegalStateException("KVM_RUN with immediate_exit returned " + r);
        return r;
    }

    @TearDown(Level.Trial)
    public void close() {
        vm.close();
    }
}
