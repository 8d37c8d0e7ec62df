package dev.jvmm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.testing.Guests;
import dev.jvmm.core.testing.RecordingDevice;
import dev.jvmm.core.testing.RecordingDevice.Access;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.core.x86.EntryState;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Hand-made guests in each CPU mode on the real /dev/kvm. */
@RequiresKvm
class VirtualMachineKvmTest {
    private static final Duration EXIT_TIMEOUT = Duration.ofSeconds(60);

    private static ExitStatus runToExit(VirtualMachine vm) throws InterruptedException {
        vm.start();
        ExitStatus s = vm.awaitExit(EXIT_TIMEOUT).orElseThrow(() -> new AssertionError("guest did not finish"));
        vm.stop();
        return s;
    }

    @Test
    void realModeGuestDoesPortIoAndMmioThenHalts() throws Exception {
        try (VirtualMachine vm = VirtualMachine.builder()
                .irqchip(false)
                .memoryLayout(List.of(new GuestMemory.Layout(0, 0x80000)))
                .build()) {
            RecordingDevice port = new RecordingDevice(() -> 'A');
            RecordingDevice port2 = new RecordingDevice(() -> 0);
            RecordingDevice mmio = new RecordingDevice(() -> 0xcafe);
            vm.ioBus().register("test-port", 0xf0, 1, port);
            vm.ioBus().register("test-port2", 0xf2, 2, port2);
            vm.mmioBus().register("test-mmio", 0x90000, 0x10, mmio);
            vm.memory().write(0x1000, Guests.load("real16.bin"));
            vm.setEntry(0, EntryState.realMode(0, 0x1000));

            assertEquals(new ExitStatus.PowerOff(), runToExit(vm));
            assertEquals(
                    List.of(new Access(true, 0, 1, 'R'), new Access(false, 0, 1, 'A'), new Access(true, 0, 1, 'B')),
                    port.accesses());
            assertEquals(List.of(new Access(true, 0, 2, 0xbeef), new Access(false, 4, 2, 0xcafe)), mmio.accesses());
            assertEquals(List.of(new Access(true, 0, 2, 0xcafe)), port2.accesses());
        }
    }

    @Test
    void protectedModeGuestDoesStringIoAndMmio() throws Exception {
        try (VirtualMachine vm =
                VirtualMachine.builder().irqchip(false).memory(2 << 20).build()) {
            RecordingDevice text = new RecordingDevice(() -> 0);
            RecordingDevice word = new RecordingDevice(() -> 0);
            RecordingDevice mmio = new RecordingDevice(() -> 0x9abcdef0L);
            vm.ioBus().register("text", 0xf0, 1, text);
            vm.ioBus().register("word", 0xf4, 4, word);
            vm.mmioBus().register("mmio", 0xd000_0000L, 0x1000, mmio);
            vm.memory().write(0x10000, Guests.load("prot32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));

            assertEquals(new ExitStatus.PowerOff(), runToExit(vm));
            assertEquals("hello", text.writtenText());
            assertEquals(
                    List.of(new Access(true, 0, 4, 0x12345678), new Access(false, 4, 4, 0x9abcdef0L)), mmio.accesses());
            assertEquals(List.of(new Access(true, 0, 4, 0x9abcdef0L)), word.accesses());
        }
    }

    @Test
    void longModeGuestDoes64BitMmio() throws Exception {
        try (VirtualMachine vm =
                VirtualMachine.builder().irqchip(false).memory(2 << 20).build()) {
            RecordingDevice text = new RecordingDevice(() -> 0);
            RecordingDevice word = new RecordingDevice(() -> 0);
            RecordingDevice mmio = new RecordingDevice(() -> 0x0123456789abcdefL);
            vm.ioBus().register("text", 0xf0, 1, text);
            vm.ioBus().register("word", 0xf4, 4, word);
            vm.mmioBus().register("mmio", 0xd000_0000L, 0x1000, mmio);
            vm.memory().write(0x10000, Guests.load("long64.bin"));
            vm.setEntry(0, EntryState.longMode(0x10000));

            assertEquals(new ExitStatus.PowerOff(), runToExit(vm));
            assertEquals("L", text.writtenText());
            assertEquals(
                    List.of(new Access(true, 0, 8, 0x1122334455667788L), new Access(false, 8, 8, 0x0123456789abcdefL)),
                    mmio.accesses());
            assertEquals(
                    List.of(new Access(true, 0, 4, 0x89abcdefL), new Access(true, 0, 4, 0x01234567L)), word.accesses());
            assertTrue(vm.stats().count(2) >= 3, "port I/O exits counted");
        }
    }

    @Test
    void eachVcpuReportsItsOwnApicId() throws Exception {
        try (VirtualMachine vm =
                VirtualMachine.builder().cpus(2).memory(2 << 20).build()) {
            RecordingDevice ids = new RecordingDevice(() -> 0);
            vm.ioBus().register("apic-ids", 0xf0, 1, ids);
            vm.memory().write(0x10000, Guests.load("apicid32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            vm.setEntry(1, EntryState.protectedMode(0x10000));
            vm.start();
            assertTrue(ids.awaitWrites(2, EXIT_TIMEOUT.toMillis()), "both vCPUs report");
            vm.stop();
            Set<Long> seen = new TreeSet<>();
            for (Access a : ids.accesses()) seen.add(a.value());
            assertEquals(Set.of(0L, 1L), seen);
            assertEquals(new ExitStatus.Stopped(), vm.exitStatus().orElseThrow());
        }
    }

    @Test
    void tripleFaultIsReportedAsACrashAndTheJvmCarriesOn() throws Exception {
        try (VirtualMachine vm = VirtualMachine.builder().memory(2 << 20).build()) {
            vm.memory().write(0x10000, Guests.load("triplefault32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            ExitStatus s = runToExit(vm);
            ExitStatus.Crash crash = assertInstanceOf(ExitStatus.Crash.class, s);
            assertTrue(crash.reason().contains("triple fault"), crash.reason());
            assertTrue(crash.report().contains("rip="), crash.report());
            assertEquals(2, s.exitCode());
        }
    }

    @Test
    void anInstructionKvmCannotRunIsReportedWithRegistersAndCodeBytes() throws Exception {
        try (VirtualMachine vm = VirtualMachine.builder().memory(2 << 20).build()) {
            vm.memory().write(0x10000, Guests.load("jmpmmio32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            ExitStatus s = runToExit(vm);
            ExitStatus.Crash crash = assertInstanceOf(ExitStatus.Crash.class, s);
            assertTrue(crash.reason().contains("KVM_EXIT_INTERNAL_ERROR"), crash.reason());
            assertTrue(crash.report().contains("rip=00000000d0000000"), crash.report());
            assertTrue(crash.report().contains("code at rip: not in guest RAM"), crash.report());
        }
    }

    @Test
    void stopTakesASpinningGuestOutOfKvmRun() throws Exception {
        assertStopsPromptly("spin32.bin", 'S');
    }

    @Test
    void stopWakesAHaltedGuest() throws Exception {
        assertStopsPromptly("halt32.bin", 'H');
    }

    private static void assertStopsPromptly(String guest, char hello) throws Exception {
        try (VirtualMachine vm = VirtualMachine.builder().memory(2 << 20).build()) {
            RecordingDevice port = new RecordingDevice(() -> 0);
            vm.ioBus().register("hello", 0xf0, 1, port);
            vm.memory().write(0x10000, Guests.load(guest));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            vm.start();
            assertTrue(port.awaitWrites(1, EXIT_TIMEOUT.toMillis()));
            assertEquals(String.valueOf(hello), port.writtenText());
            Thread.sleep(50); // let it settle into its loop or halt
            long t0 = System.nanoTime();
            vm.stop();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            // 10 ms is the goal on VT-x hosts; this host's emulator checks for signals only between batches
            // (see HOST.md), so the bound here only catches a stop that does not work at all.
            System.out.println(guest + ": stop took " + ms + " ms");
            assertTrue(ms < 2000, "stop took " + ms + " ms");
            assertEquals(new ExitStatus.Stopped(), vm.exitStatus().orElseThrow());
        }
    }

    @Test
    void pauseAndResumeHoldAndReleaseTheVcpus() throws Exception {
        try (VirtualMachine vm = VirtualMachine.builder().memory(2 << 20).build()) {
            RecordingDevice port = new RecordingDevice(() -> 0);
            vm.ioBus().register("hello", 0xf0, 1, port);
            vm.memory().write(0x10000, Guests.load("spin32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            vm.start();
            assertTrue(port.awaitWrites(1, EXIT_TIMEOUT.toMillis()));
            vm.pause();
            assertTrue(vm.exitStatus().isEmpty());
            vm.resume();
            vm.pause();
            vm.resume();
            vm.stop();
            assertEquals(new ExitStatus.Stopped(), vm.exitStatus().orElseThrow());
        }
    }

    @Test
    void aPauseWithATimeoutGivesUpOnAVcpuHeldByADeviceAndLeavesTheVmRunning() throws Exception {
        try (VirtualMachine vm = VirtualMachine.builder().memory(2 << 20).build()) {
            java.util.concurrent.CountDownLatch entered = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            vm.ioBus().register("slow", 0xf0, 1, new dev.jvmm.core.bus.BusDevice() {
                public long read(long offset, int size) {
                    return 0;
                }

                public void write(long offset, int size, long value) {
                    entered.countDown();
                    try {
                        release.await(); // a device waiting on its backend: the vCPU cannot be held meanwhile
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            });
            vm.memory().write(0x10000, Guests.load("spin32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            vm.start();
            assertTrue(entered.await(EXIT_TIMEOUT.toSeconds(), java.util.concurrent.TimeUnit.SECONDS));
            long t0 = System.nanoTime();
            assertEquals(false, vm.pause(Duration.ofMillis(200)));
            assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(5).toNanos(), "the timeout bounds the wait");
            release.countDown();
            assertTrue(vm.exitStatus().isEmpty(), "the VM runs on");
            assertTrue(vm.pause(EXIT_TIMEOUT), "once the device returns, the vCPU can be held");
            vm.resume();
            vm.stop();
            assertEquals(new ExitStatus.Stopped(), vm.exitStatus().orElseThrow());
        }
    }

    @Test
    void aDeviceThatThrowsEndsTheVmWithAnErrorNotTheJvm() throws Exception {
        try (VirtualMachine vm =
                VirtualMachine.builder().irqchip(false).memory(2 << 20).build()) {
            AtomicInteger calls = new AtomicInteger();
            vm.ioBus().register("broken", 0xf0, 1, new dev.jvmm.core.bus.BusDevice() {
                public long read(long offset, int size) {
                    return 0;
                }

                public void write(long offset, int size, long value) {
                    calls.incrementAndGet();
                    throw new IllegalStateException("device bug");
                }
            });
            vm.memory().write(0x10000, Guests.load("prot32.bin"));
            vm.setEntry(0, EntryState.protectedMode(0x10000));
            ExitStatus s = runToExit(vm);
            ExitStatus.Error err = assertInstanceOf(ExitStatus.Error.class, s);
            assertTrue(err.reason().contains("device bug"), err.reason());
            assertEquals(1, calls.get());
        }
    }
}
