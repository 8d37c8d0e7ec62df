package dev.jvmm.boot.cli;

import dev.jvmm.core.testing.RequiresKvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command line: every error a user can cause is one line and a non-zero exit, never a stack trace. */
class CliTest {
    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {}

    private static Result jvmm(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Result(code, out.toString(), err.toString());
    }

    private static void assertOneLineError(Result r, String expected) {
        assertEquals(1, r.code(), r.err());
        String[] lines = r.err().strip().split("\n");
        assertEquals(1, lines.length, "one line, got:\n" + r.err());
        assertTrue(lines[0].startsWith("jvmm: "), lines[0]);
        assertTrue(lines[0].contains(expected), lines[0]);
        assertFalse(r.err().contains("\tat "), "no stack trace");
    }

    @Test
    void helpListsEveryOptionWithItsDefault() {
        Result r = jvmm("run", "--help");
        assertEquals(0, r.code());
        for (String opt : new String[] {"--kernel", "--initrd", "--cmdline", "--memory", "--cpus", "--cpu-features",
                "--boot-path", "--debugcon", "--debug-exit", "--stats"})
            assertTrue(r.out().contains(opt), opt + " in\n" + r.out());
        assertTrue(r.out().contains("default: 512M"), r.out());
        assertTrue(r.out().contains("default: 1)"), r.out());
    }

    @Test
    void missingKernelOptionIsOneLine() {
        assertOneLineError(jvmm("run"), "Missing required option: '--kernel=PATH'");
    }

    @Test
    void missingKernelFileIsOneLine() {
        assertOneLineError(jvmm("run", "--kernel", dir.resolve("nope").toString()), "does not exist");
    }

    @Test
    void notAKernelIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("readme.txt"), "just text");
        assertOneLineError(jvmm("run", "--kernel", f.toString()), "is not a kernel jvmm can boot");
    }

    @Test
    void badMemorySizeIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("k"), "x");
        assertOneLineError(jvmm("run", "--kernel", f.toString(), "--memory", "lots"), "'lots' is not a size");
    }

    @Test
    @RequiresKvm
    void memoryBeyondTheHostIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("k"), "x");
        assertOneLineError(jvmm("run", "--kernel", f.toString(), "--memory", "64T"), "more than this host has");
    }

    @Test
    @RequiresKvm
    void tooManyVcpusIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("k"), "x");
        assertOneLineError(jvmm("run", "--kernel", f.toString(), "--cpus", "100000"), "--cpus 100000");
    }

    @Test
    void badPortIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("k"), "x");
        assertOneLineError(jvmm("run", "--kernel", f.toString(), "--debug-exit", "0x10000"), "is not an I/O port");
    }

    @Test
    @RequiresKvm
    void unknownCpuFeatureIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("k"), "x");
        assertOneLineError(jvmm("run", "--kernel", f.toString(), "--cpu-features", "-warpdrive"), "unknown CPU feature 'warpdrive'");
    }

    @Test
    @RequiresKvm
    void theDemoGuestRunsAndPowersOff() {
        Result r = jvmm();
        assertEquals(0, r.code(), r.err());
    }

    @Test
    void sizesParseLikeQemu() {
        assertEquals(512L << 20, Sizes.parse("512M", 1 << 20));
        assertEquals(2L << 30, Sizes.parse("2G", 1 << 20));
        assertEquals(2L << 30, Sizes.parse("2GiB", 1 << 20));
        assertEquals(64L << 20, Sizes.parse("64", 1 << 20));
        assertEquals(1L << 20, Sizes.parse("1024k", 1 << 20));
    }
}
