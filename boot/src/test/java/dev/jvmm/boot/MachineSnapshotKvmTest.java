package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.ByteArrayOutputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A whole machine saved mid-run and restored, with the snapshot guest (src/test/guest/snapshot.c): its UART
 * interrupt-driven, a virtio-pci disk with MSI-X written and read every round, a counter in memory. The machine is
 * saved while requests are going and stopped, as {@code jvmm save} does; the restored one runs the guest to its end.
 */
@RequiresKvm
class MachineSnapshotKvmTest {
    static final int ROUNDS = 300;
    private static final Pattern ROUND = Pattern.compile("round (\\d+)\n");

    @TempDir
    Path dir;

    private Path disk() throws Exception {
        Path disk = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(4 << 20);
        }
        return disk;
    }

    private MachineConfig config(Path disk, WatchedOutput serial, ByteArrayOutputStream debugcon) throws Exception {
        return MachineConfig.builder(TestKernels.guest("snapshot.elf", dir))
                .memory(32 << 20)
                .console(serial)
                .debugcon(debugcon)
                .debugExit(0xf4)
                .disk(new MachineConfig.DiskConfig(
                        disk, false, Optional.of("snap"), MachineConfig.DiskConfig.Transport.PCI))
                .build();
    }

    /** The rounds the guest reported on its UART, in order. */
    static List<Integer> rounds(String serial) {
        List<Integer> out = new ArrayList<>();
        Matcher m = ROUND.matcher(serial);
        while (m.find()) out.add(Integer.parseInt(m.group(1)));
        return out;
    }

    /** Every round once, in order, from 1 to ROUNDS: nothing lost or repeated across the snapshot. */
    static void assertNoGap(String serial) {
        List<Integer> r = rounds(serial);
        List<Integer> want = new ArrayList<>();
        for (int i = 1; i <= ROUNDS; i++) want.add(i);
        assertEquals(want, r, serial);
    }

    static void assertDiskHoldsEveryRound(Path disk) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(disk)).order(ByteOrder.LITTLE_ENDIAN);
        for (int s = 1; s <= ROUNDS; s++)
            for (int w = 0; w < 128; w++) {
                int want = (int) ((s * 2654435761L) ^ (w * 40503L) ^ 0x5a5a0000L);
                assertEquals(want, b.getInt(s * 512 + 4 * w), "sector " + s + " word " + w);
            }
    }

    /** Runs the first machine until the guest is well into its rounds, saves it and stops it. */
    private String saveMidRun(Machine m, WatchedOutput serial, Path snapshot) throws Exception {
        m.start();
        assertTrue(
                serial.await(s -> s.contains("round 40\n"), Duration.ofMinutes(2)),
                "the guest did not get to round 40: " + serial.text());
        m.snapshot(snapshot, false);
        assertTrue(m.vm().paused(), "not resumed");
        m.stop();
        return serial.text();
    }

    @Test
    void restoredInThisJvmTheGuestGoesOnWithoutAGap() throws Exception {
        Path disk = disk(), snapshot = dir.resolve("vm.snap");
        WatchedOutput serialA = new WatchedOutput();
        ByteArrayOutputStream debugconA = new ByteArrayOutputStream();
        String before;
        try (Machine a = Machine.create(config(disk, serialA, debugconA))) {
            before = saveMidRun(a, serialA, snapshot);
        }
        assertTrue(rounds(before).size() >= 40 && rounds(before).size() < ROUNDS, before);

        WatchedOutput serialB = new WatchedOutput();
        ByteArrayOutputStream debugconB = new ByteArrayOutputStream();
        try (Machine b = Machine.restore(
                snapshot, Machine.RestoreOptions.DEFAULT.withConsole(serialB).withDebugcon(debugconB))) {
            assertTrue(b.vm().restored());
            assertTrue(b.kernel().isEmpty(), "the kernel is not loaded again");
            b.start();
            ExitStatus s = b.awaitExit(Duration.ofMinutes(3))
                    .orElseThrow(() -> new AssertionError("no exit: " + serialB.text() + debugconB));
            assertEquals(new ExitStatus.GuestExit(0), s, debugconA + "\n--- restored:\n" + debugconB);
        }
        String after = serialB.text();
        assertTrue(after.endsWith("snapshot guest: done\n"), after);
        assertNoGap(before + after);
        assertDiskHoldsEveryRound(disk);
    }

    @Test
    void aRawDiskWrittenAfterTheSnapshotIsRefusedUnlessTrusted() throws Exception {
        Path disk = disk(), snapshot = dir.resolve("vm.snap");
        WatchedOutput serialA = new WatchedOutput();
        try (Machine a = Machine.create(config(disk, serialA, new ByteArrayOutputStream()))) {
            saveMidRun(a, serialA, snapshot);
        }
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.seek(4096);
            f.write(1); // as a VM kept running after the snapshot would
        }
        SnapshotException e =
                assertThrows(SnapshotException.class, () -> Machine.restore(snapshot, Machine.RestoreOptions.DEFAULT));
        assertEquals(SnapshotException.Kind.MACHINE_MISMATCH, e.kind());
        assertTrue(
                e.getMessage().contains("vda") && e.getMessage().contains("modified after the snapshot"),
                e.getMessage());

        Path moved = dir.resolve("elsewhere.raw");
        Files.move(disk, moved);
        SnapshotException gone =
                assertThrows(SnapshotException.class, () -> Machine.restore(snapshot, Machine.RestoreOptions.DEFAULT));
        assertTrue(gone.getMessage().contains("does not exist"), gone.getMessage());
        try (Machine b = Machine.restore(
                snapshot,
                Machine.RestoreOptions.DEFAULT.withDiskPath("vda", moved).withTrustDisks(true))) {
            assertEquals(moved, b.config().disks().getFirst().path());
        }
    }

    @Test
    void aMachineKeptRunningAfterItsSnapshotFinishes() throws Exception {
        Path disk = disk(), snapshot = dir.resolve("vm.snap");
        WatchedOutput serial = new WatchedOutput();
        ByteArrayOutputStream debugcon = new ByteArrayOutputStream();
        try (Machine a = Machine.create(config(disk, serial, debugcon))) {
            a.start();
            assertTrue(serial.await(s -> s.contains("round 20\n"), Duration.ofMinutes(2)), serial.text());
            a.snapshot(snapshot, true);
            ExitStatus s = a.awaitExit(Duration.ofMinutes(3)).orElseThrow();
            assertEquals(new ExitStatus.GuestExit(0), s, debugcon.toString());
        }
        assertNoGap(serial.text());
        assertTrue(Files.size(snapshot) > 0);
    }
}
