package dev.jvmm.bench;

import dev.jvmm.core.ExitStatus;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The smallest jvmm launch: boots the benchmark guest with a command line and echoes its debugcon output
 * unbuffered to stdout, for the launch-time and memory benchmarks ({@link Footprint}) to time and measure.
 *
 * <p>Usage: {@code LaunchMain GUEST.bin MEMORY_MIB CMDLINE}; exits with the guest's debug-exit code.
 */
public final class LaunchMain {
    private LaunchMain() {}

    public static void main(String[] args) throws Exception {
        long t0 = Long.getLong("jvmm.launch.t0", 0L); // the parent's System.nanoTime() at spawn (CLOCK_MONOTONIC)
        long atMain = System.nanoTime();
        if (args.length != 3) {
            System.err.println("usage: LaunchMain GUEST.bin MEMORY_MIB CMDLINE");
            System.exit(2);
        }
        dev.jvmm.kvm.Libc.getpid(); // the first downcall: the JDK bootstraps its FFM linker here
        long linked = System.nanoTime();
        byte[] image = Files.readAllBytes(Path.of(args[0]));
        long memory = Long.parseLong(args[1]) << 20;
        ExitStatus status;
        long built;
        try (BenchMachine m = BenchMachine.builder(image, args[2])
                .memory(memory)
                .echo(new FileOutputStream(FileDescriptor.out))
                .build()) {
            built = System.nanoTime();
            m.start();
            status = m.awaitExit(Duration.ofMinutes(10)).orElse(new ExitStatus.Stopped());
        }
        if (t0 != 0) { // phases for the launch report, on stderr so stdout holds only guest output
            System.err.printf(
                    "launch-phases main_ms=%.1f ffm_ms=%.1f vm_built_ms=%.1f%n",
                    (atMain - t0) / 1e6, (linked - t0) / 1e6, (built - t0) / 1e6);
        }
        if (status instanceof ExitStatus.GuestExit g) System.exit(g.code());
        System.err.println("guest ended with " + status);
        System.exit(2);
    }
}
