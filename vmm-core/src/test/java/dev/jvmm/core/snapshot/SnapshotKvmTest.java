package dev.jvmm.core.snapshot;

import static dev.jvmm.core.snapshot.CounterGuest.COUNTER;
import static dev.jvmm.core.snapshot.CounterGuest.STEP;
import static dev.jvmm.core.snapshot.CounterGuest.checkConsecutive;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A running guest paused, saved to a file, its VM closed, and restored: into new VMs in this JVM (twice from the same
 * file, side by side) and in a new JVM process. The counter32 guest must continue exactly where it stopped.
 */
@RequiresKvm
class SnapshotKvmTest {
    @TempDir
    Path dir;

    /** What the saved guest had done when it was paused. */
    private record Saved(long lastReport, long counter) {}

    /** Runs counter32 on 2 vCPUs until it reported a few times, pauses it, snapshots it to {@code file}, closes it. */
    private static Saved runAndSnapshot(Path file) throws Exception {
        try (CounterGuest g = CounterGuest.boot(2)) {
            g.vm.start();
            g.awaitReports(5);
            g.vm.pause();
            g.vm.snapshot(file);
            List<Long> before = g.reports();
            checkConsecutive(before, STEP);
            long counter = g.counter();
            long last = before.getLast();
            // The guest stores a ticket right after its IN, so at most one ticket is in a register, not yet in memory.
            long handedOut = g.tickets.next() - 1;
            assertTrue(handedOut == counter || handedOut == counter + 1, handedOut + " tickets, counter " + counter);
            assertTrue(counter >= last && counter < last + STEP, "counter " + counter + " after report " + last);
            g.vm.resume(); // a snapshot leaves the VM able to go on
            g.awaitReports(before.size() + 1);
            checkConsecutive(g.reports(), STEP);
            g.vm.stop();
            return new Saved(last, counter);
        }
    }

    @Test
    void restoredGuestContinuesWithoutResetGapOrRepeat() throws Exception {
        Path file = dir.resolve("counter.snap");
        Saved saved = runAndSnapshot(file);
        SnapshotFile snapshot = SnapshotFile.read(file);
        assertEquals(2, snapshot.state().vcpus().size());
        List<Long> reports;
        try (CounterGuest g = CounterGuest.restore(snapshot)) {
            assertEquals(saved.counter(), g.counter(), "RAM as saved");
            long handedOut = g.tickets.next() - 1;
            assertTrue(handedOut - saved.counter() <= 1, "the ticket device's state as saved: " + handedOut);
            g.vm.start();
            g.awaitReports(3);
            g.vm.stop();
            reports = g.reports();
        }
        checkConsecutive(reports, saved.lastReport() + STEP);
        KvmHost.checked("restoredGuestContinuesWithoutResetGapOrRepeat", "counter continued from " + saved.counter());
    }

    @Test
    void twoRestoresOfOneSnapshotRunIndependently() throws Exception {
        Path file = dir.resolve("counter.snap");
        Saved saved = runAndSnapshot(file);
        SnapshotFile snapshot = SnapshotFile.read(file);
        try (CounterGuest a = CounterGuest.restore(snapshot);
                CounterGuest b = CounterGuest.restore(snapshot)) {
            // A write to one clone's RAM is its own (copy-on-write), before and while both run.
            a.vm.memory().writeInt(0x30000, 0x5a5a5a5a);
            assertEquals(0, b.vm.memory().readInt(0x30000));
            a.vm.start();
            a.awaitReports(4);
            b.vm.start();
            b.awaitReports(2);
            a.vm.pause(); // B runs on alone
            int aCount = a.reports().size();
            b.awaitReports(b.reports().size() + 2);
            assertEquals(aCount, a.reports().size(), "A's reports while paused");
            a.vm.stop();
            b.vm.stop();
            assertNotEquals(a.counter(), b.counter());
            checkConsecutive(a.reports(), saved.lastReport() + STEP);
            checkConsecutive(b.reports(), saved.lastReport() + STEP);
        }
        // Neither clone wrote to the file: its RAM still holds the count at the snapshot, and no 0x5a5a5a5a.
        assertEquals(saved.counter(), fileRamInt(snapshot, COUNTER));
        assertEquals(0, fileRamInt(snapshot, 0x30000));
        KvmHost.checked("twoRestoresOfOneSnapshotRunIndependently", "two clones continued from " + saved.counter());
    }

    @Test
    void restoredInANewJvmProcess() throws Exception {
        Path file = dir.resolve("counter.snap");
        Saved saved = runAndSnapshot(file);
        String java = ProcessHandle.current().info().command().orElseThrow();
        List<String> cmd = List.of(
                java,
                "--enable-native-access=ALL-UNNAMED",
                "-cp",
                System.getProperty("java.class.path"),
                CounterGuest.class.getName(),
                file.toString(),
                "3");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(2, TimeUnit.MINUTES), "child JVM finished");
        assertEquals(0, p.exitValue(), "child JVM:\n" + out);
        List<Long> reports = new ArrayList<>();
        for (String line : out.split("\n"))
            if (line.startsWith("report "))
                reports.add(Long.parseLong(line.substring(7).trim()));
        assertTrue(reports.size() >= 3, out);
        checkConsecutive(reports, saved.lastReport() + STEP);
        KvmHost.checked("restoredInANewJvmProcess", "counter continued from " + saved.counter() + " in a new JVM");
    }

    @Test
    void restoredStateReadsBackAsSaved() throws Exception {
        Path file = dir.resolve("counter.snap");
        MachineState saved;
        try (CounterGuest g = CounterGuest.boot(2)) {
            g.vm.start();
            g.awaitReports(2);
            g.vm.pause();
            saved = g.vm.captureState();
            g.vm.snapshot(file);
            g.vm.stop();
        }
        try (CounterGuest g = CounterGuest.restore(SnapshotFile.read(file))) {
            MachineState back = g.vm.captureState();
            for (int i = 0; i < saved.vcpus().size(); i++) {
                VcpuState s = saved.vcpus().get(i), b = back.vcpus().get(i);
                assertEquals(s.regs(), b.regs(), "vCPU " + i + " registers");
                assertEquals(s.sregs(), b.sregs(), "vCPU " + i + " special registers");
                assertEquals(s.fpu(), b.fpu(), "vCPU " + i + " FPU/XSAVE");
                assertEquals(s.xcrs(), b.xcrs(), "vCPU " + i + " XCRs");
                assertEquals(s.lapic(), b.lapic(), "vCPU " + i + " local APIC");
                assertEquals(s.events(), b.events(), "vCPU " + i + " events");
                assertEquals(s.mpState(), b.mpState(), "vCPU " + i + " MP state");
                assertEquals(s.debugRegs(), b.debugRegs(), "vCPU " + i + " debug registers");
                assertEquals(s.cpuid(), b.cpuid(), "vCPU " + i + " CPUID");
                assertEquals(s.unreadableMsrs(), b.unreadableMsrs(), "vCPU " + i + " unreadable MSRs");
                assertEquals(withoutClocks(s.msrs()), withoutClocks(b.msrs()), "vCPU " + i + " MSRs but the clocks");
                long tsc = msr(s.msrs(), VcpuState.MSR_IA32_TSC), tscBack = msr(b.msrs(), VcpuState.MSR_IA32_TSC);
                // The TSC runs on from the saved value: not reset, not far ahead (a minute at 10 GHz)
                assertTrue(tscBack >= tsc && tscBack - tsc < 600_000_000_000L, tsc + " -> " + tscBack);
                // So do Hyper-V's time counters where KVM lists them (AMD-V/VT-x hosts; kvm_pvm does not), in 100 ns
                for (int counter : HYPERV_TIME_COUNTERS) {
                    if (s.msrs().stream().noneMatch(m -> m.index() == counter)) continue;
                    long v = msr(s.msrs(), counter), vBack = msr(b.msrs(), counter);
                    assertTrue(
                            vBack >= v && vBack - v < 600_000_000L,
                            String.format("MSR 0x%x: %d -> %d", counter, v, vBack));
                }
            }
            assertEquals(saved.vm().irqchips(), back.vm().irqchips(), "PICs and IOAPIC");
            assertEquals(saved.devices(), back.devices(), "the ticket device");
            assertEquals(saved.vm().pit().isPresent(), back.vm().pit().isPresent(), "PIT");
            long clock = saved.vm().clockNs().orElseThrow(),
                    clockBack = back.vm().clockNs().orElseThrow();
            assertTrue(clockBack >= clock && clockBack - clock < 60_000_000_000L, clock + " -> " + clockBack);
            System.out.println("restoredStateReadsBackAsSaved: "
                    + saved.vcpus().get(0).msrs().size() + " MSRs, "
                    + saved.vcpus().get(0).unreadableMsrs().size() + " unreadable, FPU as "
                    + saved.vcpus().get(0).fpu().getClass().getSimpleName());
        }
    }

    @Test
    void restoreRefusesAStateTheHostCannotTakeAndLeavesNothingOpen() throws Exception {
        Path file = dir.resolve("counter.snap");
        runAndSnapshot(file);
        SnapshotFile snapshot = SnapshotFile.read(file);
        VcpuState v = snapshot.state().vcpus().get(0);
        List<VcpuState.Msr> msrs = new ArrayList<>(v.msrs());
        msrs.add(new VcpuState.Msr(0x4b564dff, 1)); // in KVM's own range, but not an MSR any KVM saves
        VcpuState bad = new VcpuState(
                v.id(),
                v.cpuid(),
                v.tscKhz(),
                v.regs(),
                v.sregs(),
                v.fpu(),
                v.xcrs(),
                msrs,
                v.unreadableMsrs(),
                v.lapic(),
                v.events(),
                v.mpState(),
                v.debugRegs());
        List<VcpuState> cpus = new ArrayList<>(snapshot.state().vcpus());
        cpus.set(0, bad);
        Path badFile = dir.resolve("bad.snap");
        try (var memory = snapshot.mapMemory()) {
            SnapshotFile.write(
                    badFile,
                    new MachineState(
                            snapshot.state().vm(), cpus, snapshot.state().devices()),
                    memory,
                    "test");
        }
        long fds = openFds();
        SnapshotException e =
                assertThrows(SnapshotException.class, () -> VirtualMachine.restore(SnapshotFile.read(badFile)));
        assertEquals(SnapshotException.Kind.HOST_INCOMPATIBLE, e.kind());
        assertTrue(e.getMessage().contains("MSR 0x4b564dff"), e.getMessage());
        assertEquals(fds, openFds(), "fds after a refused restore");
    }

    private static long openFds() throws IOException {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    /** HV_X64_MSR_VP_RUNTIME and HV_X64_MSR_TIME_REF_COUNT: they count time, as the TSC does. */
    private static final List<Integer> HYPERV_TIME_COUNTERS = List.of(0x40000010, 0x40000020);

    /** The MSRs without those that count time (the TSC, Hyper-V's time counters). */
    private static List<VcpuState.Msr> withoutClocks(List<VcpuState.Msr> msrs) {
        return msrs.stream()
                .filter(m -> m.index() != VcpuState.MSR_IA32_TSC && !HYPERV_TIME_COUNTERS.contains(m.index()))
                .toList();
    }

    private static long msr(List<VcpuState.Msr> msrs, int index) {
        return msrs.stream()
                .filter(m -> m.index() == index)
                .findFirst()
                .orElseThrow()
                .value();
    }

    /** A 32-bit value of the guest RAM as it lies in the snapshot file (not as a restored VM sees it). */
    private static long fileRamInt(SnapshotFile snapshot, long gpa) throws IOException {
        for (SnapshotFile.MemoryImage m : snapshot.memory()) {
            if (gpa >= m.guestBase() && gpa + 4 <= m.guestBase() + m.size()) {
                try (FileChannel ch = FileChannel.open(snapshot.path())) {
                    ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
                    ch.read(b, m.fileOffset() + gpa - m.guestBase());
                    return Integer.toUnsignedLong(b.getInt(0));
                }
            }
        }
        throw new AssertionError("0x" + Long.toHexString(gpa) + " is in no region");
    }

    @Test
    void restoresLeaveNoFdsOrMappingsBehind() throws Exception {
        Path file = dir.resolve("counter.snap");
        runAndSnapshot(file);
        SnapshotFile snapshot = SnapshotFile.read(file);
        for (int i = 0; i < 10; i++) restoreRunAndClose(snapshot); // warm up: class loading and JIT map their own
        System.gc();
        long fds = openFds(), maps = mappings();
        for (int i = 0; i < 100; i++) restoreRunAndClose(snapshot);
        System.gc();
        assertEquals(fds, openFds(), "open file descriptors");
        // A leaking restore leaves at least 3 mappings (RAM from the file, two kvm_run areas): 100 would add 300.
        long mapsAfter = mappings();
        assertTrue(mapsAfter - maps < 50, "mappings grew from " + maps + " to " + mapsAfter);
    }

    private static void restoreRunAndClose(SnapshotFile snapshot) throws Exception {
        try (CounterGuest g = CounterGuest.restore(snapshot)) {
            g.vm.start();
            g.awaitReports(1);
            g.vm.stop();
        }
    }

    private static long mappings() throws IOException {
        try (var s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.count();
        }
    }

    @Test
    void snapshotFileIsSparse() throws Exception {
        Path file = dir.resolve("counter.snap");
        runAndSnapshot(file);
        SnapshotFile snapshot = SnapshotFile.read(file);
        long memory = snapshot.memory().stream()
                .mapToLong(SnapshotFile.MemoryImage::size)
                .sum();
        assertEquals(64L << 20, memory);
        long data =
                SnapshotFileTest.dataBytes(file, snapshot.memory().getFirst().fileOffset());
        // The guest touched its code page, its counter page and the setup pages (GDT): a few pages, not 64 MiB.
        assertTrue(data <= 64 * 4096, "memory data in the file: " + data + " bytes");
        assertTrue(data >= 2 * 4096, "memory data in the file: " + data + " bytes");
    }
}
