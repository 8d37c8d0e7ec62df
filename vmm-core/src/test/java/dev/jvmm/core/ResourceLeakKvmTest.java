package dev.jvmm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.irq.Trigger;
import dev.jvmm.core.testing.Guests;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.core.x86.EntryState;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Creating, running and closing many VMs leaves no fd, mapping or thread behind. */
@RequiresKvm
class ResourceLeakKvmTest {
    private static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    private static long mappings() throws IOException {
        try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.count();
        }
    }

    private static void oneVm() throws Exception {
        try (VirtualMachine vm =
                VirtualMachine.builder().memory(2 << 20).cpus(2).build()) {
            vm.memory().write(0x10000, Guests.load("halt32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            vm.interrupts().msiRoute().update(0xfee00000L, 0x30); // an irqfd + route, closed with the VM
            vm.interrupts().event(5, Trigger.EDGE, null); // an irqfd on a pin
            vm.interrupts().event(6, Trigger.LEVEL, () -> false); // a resampling irqfd and its thread
            vm.start();
            vm.stop();
            assertEquals(
                    new ExitStatus.Stopped(),
                    vm.awaitExit(Duration.ofSeconds(5)).orElseThrow());
        }
    }

    @Test
    void fiveHundredVmsLeaveNoFdsOrMappingsBehind() throws Exception {
        for (int i = 0; i < 20; i++) oneVm(); // warm up: class loading and JIT make their own mappings
        System.gc();
        long fds = openFds();
        long maps = mappings();
        int threads = Thread.activeCount();
        for (int i = 0; i < 500; i++) oneVm();
        System.gc();
        long fdsAfter = openFds();
        long mapsAfter = mappings();
        assertEquals(fds, fdsAfter, "open file descriptors");
        // The JVM itself maps and unmaps now and then (code cache, GC); a VM leaks at least 3 mappings
        // (guest RAM and two kvm_run areas), so 500 leaking VMs would add 1500.
        assertTrue(mapsAfter - maps < 50, "mappings grew from " + maps + " to " + mapsAfter);
        assertTrue(Thread.activeCount() <= threads + 2, "threads grew from " + threads + " to " + Thread.activeCount());
    }
}
