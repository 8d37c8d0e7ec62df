package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.boot.MachineConfigException.Problem;
import dev.jvmm.core.Kvm;
import dev.jvmm.core.testing.RequiresKvm;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Machine.create reports a config this host cannot run as a typed problem with its values, in its own words. */
class MachineConfigExceptionTest {
    @TempDir
    Path dir;

    private MachineConfig config(long memory, int cpus) {
        return MachineConfig.builder(dir.resolve("kernel"))
                .memory(memory)
                .cpus(cpus)
                .build();
    }

    private static void assertProblem(MachineConfigException e, Problem problem, long requested, long limit) {
        assertEquals(BootException.Kind.MACHINE_CONFIG, e.kind());
        assertEquals(problem, e.problem());
        assertEquals(requested, e.requested());
        assertEquals(limit, e.limit());
        assertFalse(e.getMessage().contains("--"), "the library does not speak in CLI options: " + e.getMessage());
    }

    @Test
    void sizesAreCheckedBeforeAnyFileOrKvm() {
        // The kernel does not exist: the sizes are refused first, with or without /dev/kvm.
        var cpus = assertThrows(MachineConfigException.class, () -> Machine.create(config(64 << 20, 0)));
        assertProblem(cpus, Problem.TOO_FEW_VCPUS, 0, 1);
        var memory = assertThrows(MachineConfigException.class, () -> Machine.create(config(8 << 20, 1)));
        assertProblem(memory, Problem.MEMORY_TOO_SMALL, 8 << 20, Machine.MIN_MEMORY_BYTES);
        assertEquals("a machine needs at least 16 MiB of memory, not 8 MiB", memory.getMessage());
        var pages = assertThrows(MachineConfigException.class, () -> Machine.create(config((16 << 20) + 1024, 1)));
        assertProblem(pages, Problem.MEMORY_NOT_PAGE_ALIGNED, (16 << 20) + 1024, Machine.PAGE_BYTES);
    }

    @Test
    void memoryIsCheckedAgainstTheHostWhenKnown() {
        var e = assertThrows(MachineConfigException.class, () -> Machine.checkSizes(config(2L << 30, 1), 1L << 30));
        assertProblem(e, Problem.MEMORY_EXCEEDS_HOST, 2L << 30, 1L << 30);
        assertDoesNotThrow(() -> Machine.checkSizes(config(2L << 30, 1), -1), "unknown host memory refuses nothing");
    }

    @Test
    void vcpusAreCheckedAgainstKvmsLimit() {
        var e = assertThrows(MachineConfigException.class, () -> Machine.checkVcpuLimit(config(64 << 20, 9), 8));
        assertProblem(e, Problem.TOO_MANY_VCPUS, 9, 8);
        assertDoesNotThrow(() -> Machine.checkVcpuLimit(config(64 << 20, 8), 8));
    }

    @Test
    @RequiresKvm
    void tooManyVcpusCarriesThisHostsLimit() throws Exception {
        int max;
        try (Kvm kvm = Kvm.open()) {
            max = kvm.maxVcpus();
        }
        Path kernel = TestKernels.guest("smp.elf", dir); // a real kernel: files are checked before KVM's limit
        MachineConfig c =
                MachineConfig.builder(kernel).memory(64 << 20).cpus(max + 1).build();
        var e = assertThrows(MachineConfigException.class, () -> Machine.create(c));
        assertProblem(e, Problem.TOO_MANY_VCPUS, max + 1, max);
    }
}
