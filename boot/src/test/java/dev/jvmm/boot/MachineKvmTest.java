package dev.jvmm.boot;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.testing.RequiresKvm;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Multiboot test kernels on the assembled PC. */
@RequiresKvm
class MachineKvmTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} vCPUs")
    @ValueSource(ints = {1, 2, 4})
    void smpKernelFindsEveryVcpuInTheMpTableAndStartsThem(int cpus) throws Exception {
        ByteArrayOutputStream debug = new ByteArrayOutputStream();
        MachineConfig config = MachineConfig.builder(TestKernels.guest("smp.elf", dir)).memory(64 << 20).cpus(cpus)
                .debugcon(debug).debugExit(0xf4).cmdline("smp test").build();
        try (Machine m = Machine.create(config)) {
            m.start();
            ExitStatus s = m.awaitExit(Duration.ofMinutes(2)).orElseThrow(() -> new AssertionError("no exit; output: " + debug));
            String out = debug.toString();
            assertEquals(new ExitStatus.GuestExit(0), s, out);
            assertTrue(out.contains("mp table: " + cpus + " cpus"), out);
            assertTrue(out.contains("cpus=" + cpus), out);
            assertEquals(1, s.exitCode());
        }
    }
}
