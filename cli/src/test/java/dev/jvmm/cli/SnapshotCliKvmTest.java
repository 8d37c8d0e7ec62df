package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.TestKernels;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jvmm save} and {@code jvmm restore} as a user runs them, with the snapshot guest (src/test/guest/snapshot.c,
 * see MachineSnapshotKvmTest): a named VM in a process of its own is saved mid-run and stopped, and {@code jvmm
 * restore --name --detach} runs it in a new process to its end. The commands run in this JVM (Main.execute), the VMs
 * in processes of their own.
 */
@RequiresKvm
class SnapshotCliKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(180);
    private static final int ROUNDS = 300;
    private static final Pattern ROUND = Pattern.compile("round (\\d+)\n");

    @TempDir
    Path dir;

    RuntimeDir runtime;
    Verbs verbs;

    @AfterEach
    void killLeftovers() {
        for (String n : List.of("snap1", "snap2"))
            if (runtime != null && runtime.running(n))
                runtime.pid(n).ifPresent(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    private String log(String name) {
        try {
            return Files.readString(runtime.log(name));
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * The rounds the guest sent on its console, in order. A log holds jvmm's own lines too, the JVM's warnings and
     * "jvmm: stopped by the host" (which may follow a round cut short by the save), taken out first.
     */
    private static List<Integer> rounds(String text) {
        List<Integer> out = new ArrayList<>();
        Matcher m = ROUND.matcher(text.replaceAll("(WARNING|jvmm): [^\n]*\n", ""));
        while (m.find()) out.add(Integer.parseInt(m.group(1)));
        return out;
    }

    @Test
    void saveStopsTheVmAndRestoreRunsItOnInANewProcess() throws Exception {
        runtime = new RuntimeDir(dir.resolve("run"));
        verbs = new Verbs(runtime.path());
        Path kernel = TestKernels.guest("snapshot.elf", dir), disk = dir.resolve("disk.raw");
        Path snapshot = dir.resolve("saved.snap");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(4 << 20);
        }
        Verbs.Result run = verbs.jvmm(
                "run",
                "--name",
                "snap1",
                "--detach",
                "--kernel",
                kernel.toString(),
                "--memory",
                "32M",
                "--disk",
                disk + ",transport=pci",
                "--debugcon",
                "file:" + dir.resolve("debugcon1"),
                "--debug-exit",
                "0xf4");
        assertEquals(0, run.code(), run.err());
        await(() -> log("snap1").contains("round 40\n"), "the guest's round 40: " + log("snap1"));

        Verbs.Result save = verbs.jvmm("save", "snap1", snapshot.toString());
        assertEquals(0, save.code(), save.err());
        assertEquals(
                "snap1 saved to " + snapshot + " and stopped; 'jvmm restore " + snapshot + "' runs it again\n",
                save.out());
        assertFalse(runtime.running("snap1"), "save stops the VM");
        String before = log("snap1");
        // The saved run ends saying so, not as a VM stopped by the host
        assertTrue(before.contains("jvmm: saved to " + snapshot + " and stopped"), before);
        assertFalse(before.contains("stopped by the host"), before);

        Verbs.Result refused = verbs.jvmm("restore", snapshot.toString(), "--disk", disk.toString());
        assertEquals(1, refused.code());
        assertTrue(refused.err().contains("--disk cannot be combined with restore"), refused.err());

        Verbs.Result restore = verbs.jvmm(
                "restore",
                snapshot.toString(),
                "--name",
                "snap2",
                "--detach",
                "--debugcon",
                "file:" + dir.resolve("debugcon2"));
        assertEquals(0, restore.code(), restore.err());
        assertTrue(restore.out().startsWith("snap2 running (pid "), restore.out());
        await(() -> !runtime.running("snap2"), "the restored guest to end: " + log("snap2"));
        String after = log("snap2");
        assertTrue(after.contains("snapshot guest: done\n"), after + Files.readString(dir.resolve("debugcon2")));
        String debugcon = Files.readString(dir.resolve("debugcon2"));
        assertFalse(debugcon.contains("FAIL"), debugcon);

        List<Integer> all = rounds(before + after), want = new ArrayList<>();
        for (int i = 1; i <= ROUNDS; i++) want.add(i);
        assertEquals(want, all, "before:\n" + before + "\nafter:\n" + after);
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(disk)).order(ByteOrder.LITTLE_ENDIAN);
        for (int s = 1; s <= ROUNDS; s++)
            assertEquals((int) ((s * 2654435761L) ^ 0x5a5a0000L), b.getInt(s * 512), "sector " + s);

        // The restored guest wrote its disk: restoring the same snapshot again is refused, naming the disk.
        Verbs.Result again = verbs.jvmm("restore", snapshot.toString());
        assertEquals(1, again.code());
        assertTrue(again.err().contains("vda") && again.err().contains("modified after the snapshot"), again.err());
    }
}
