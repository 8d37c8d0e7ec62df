package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.TestKernels;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A named VM's life as a user lives it, with the console test guest (src/test/guest/console.c): {@code jvmm run
 * --name --detach}, which starts the VM in a process of its own, then list, suspend and resume, the console (a line
 * typed, its echo read, Ctrl-] to leave), a second VM of the same name refused, shutdown, and a verb on the VM that
 * is gone. The commands run in this JVM (Main.execute), as the jvmm command would run them: one JVM start in all,
 * the detached VM's, which keeps the test cheap where it runs emulated.
 */
@RequiresKvm
class NamedVmKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(120);

    @TempDir
    Path dir;

    RuntimeDir runtime;
    Verbs verbs;

    @AfterEach
    void killLeftovers() {
        if (runtime != null && runtime.running("kvm1"))
            runtime.pid("kvm1").ifPresent(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    private long dots(Path debugcon) {
        try {
            return Files.readString(debugcon).chars().filter(c -> c == '.').count();
        } catch (IOException e) {
            return 0;
        }
    }

    @Test
    void detachListSuspendResumeConsoleAndShutdown() throws Exception {
        runtime = new RuntimeDir(dir.resolve("run"));
        verbs = new Verbs(runtime.path());
        Path kernel = TestKernels.guest("console.elf", dir), debugcon = dir.resolve("debugcon.log");

        // jvmm run --name --detach: the VM runs in a process of its own, which this one starts (as a user's jvmm
        // would) and which outlives the command; the command returns once the VM runs.
        Verbs.Result detach = verbs.jvmm(
                "run",
                "--name",
                "kvm1",
                "--detach",
                "--kernel",
                kernel.toString(),
                "--memory",
                "32M",
                "--debugcon",
                "file:" + debugcon,
                "--debug-exit",
                "0xf4");
        assertEquals(0, detach.code(), detach.err());
        assertTrue(detach.out().startsWith("kvm1 running (pid "), detach.out());
        long pid = runtime.pid("kvm1").orElseThrow();
        assertTrue(pid != ProcessHandle.current().pid() && ProcessHandle.of(pid).isPresent(), "a process of its own");

        Verbs.Result list = verbs.jvmm("list");
        assertTrue(
                list.out()
                        .lines()
                        .anyMatch(l -> List.of(l.split("\\s+")).containsAll(List.of("kvm1", "Running", "1", "32"))),
                list.out());

        await(() -> dots(debugcon) >= 2, "the guest to run");
        assertEquals(0, verbs.jvmm("suspend", "kvm1").code());
        Thread.sleep(300); // dots written before the pause reach the file
        long held = dots(debugcon);
        Thread.sleep(300);
        assertEquals(held, dots(debugcon), "a suspended guest prints nothing");
        assertTrue(verbs.jvmm("info", "kvm1").out().contains("State:    Paused"));
        assertEquals(0, verbs.jvmm("resume", "kvm1").code());
        await(() -> dots(debugcon) > held, "the guest to run again");

        // The console: a line typed is echoed by the guest; Ctrl-] leaves it running.
        PipedOutputStream keys = new PipedOutputStream();
        PipedInputStream in = new PipedInputStream(keys);
        ByteArrayOutputStream screen = new ByteArrayOutputStream();
        StringWriter consoleErr = new StringWriter();
        VmCommands.Vm vm = VmCommands.Vm.find(runtime, "kvm1");
        CompletableFuture<Integer> console = CompletableFuture.supplyAsync(() -> {
            try {
                return VmCommands.ConsoleCommand.attach(vm, in, screen, new PrintWriter(consoleErr, true), null);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        await(() -> consoleErr.toString().contains("attached"), "the console client");
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!screen.toString(StandardCharsets.UTF_8).contains("echo: hello")) {
            if (System.nanoTime() > deadline) throw new AssertionError("no echo: " + screen);
            keys.write("hello\r".getBytes(StandardCharsets.US_ASCII)); // again, should the first precede the attach
            keys.flush();
            Thread.sleep(200);
        }
        keys.write(Console.ESCAPE);
        keys.flush();
        assertEquals(0, console.get(WAIT.toSeconds(), TimeUnit.SECONDS), consoleErr.toString());
        assertTrue(runtime.running("kvm1"));

        String info = verbs.jvmm("info", "kvm1").out();
        for (String part : List.of("State:    Running", "Memory:   32 MiB", "Kernel:   " + kernel, "IO  "))
            assertTrue(info.contains(part), part + " in:\n" + info);

        Verbs.Result again = verbs.jvmm("run", "--name", "kvm1", "--kernel", kernel.toString());
        assertEquals(1, again.code());
        assertTrue(again.err().contains("a VM named 'kvm1' is running already"), again.err());

        Verbs.Result shutdown = verbs.jvmm("shutdown", "kvm1");
        assertEquals(0, shutdown.code(), shutdown.err());
        assertEquals("kvm1 shut down\n", shutdown.out());
        assertFalse(runtime.running("kvm1"));
        String log = Files.readString(runtime.log("kvm1"));
        assertTrue(log.contains("console guest: booted") && log.contains("console guest: power button"), log);

        Verbs.Result gone = verbs.jvmm("info", "kvm1");
        assertEquals(1, gone.code());
        assertEquals(
                "jvmm: no VM named 'kvm1' is running (in " + runtime.path() + ")",
                gone.err().strip());
    }
}
