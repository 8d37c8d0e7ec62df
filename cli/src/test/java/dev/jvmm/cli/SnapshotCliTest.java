package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** jvmm save and jvmm restore without KVM: their help, and every refusal one line naming what is wrong. */
class SnapshotCliTest {
    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {}

    private Result jvmm(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        Map<String, String> env = Map.of(RuntimeDir.ENV, dir.resolve("run").toString());
        int code = Main.execute(
                InputStream.nullInputStream(), new PrintWriter(out, true), new PrintWriter(err, true), env, args);
        return new Result(code, out.toString(), err.toString());
    }

    private static void assertOneLineError(Result r, String expected) {
        assertEquals(1, r.code(), r.err());
        String[] lines = r.err().strip().split("\n");
        assertEquals(1, lines.length, "one line, got:\n" + r.err());
        assertTrue(lines[0].startsWith("jvmm: ") && lines[0].contains(expected), lines[0]);
        assertFalse(r.err().contains("\tat "), "no stack trace");
    }

    @Test
    void helpNamesTheVerbs() {
        Result all = jvmm("--help");
        assertEquals(0, all.code(), all.err());
        assertTrue(all.out().contains("save") && all.out().contains("restore"), all.out());
        Result restore = jvmm("restore", "--help");
        assertEquals(0, restore.code(), restore.err());
        for (String o : new String[] {"FILE", "--name", "--detach", "--disk-path", "--trust-disks"})
            assertTrue(restore.out().contains(o), o + " in:\n" + restore.out());
        Result save = jvmm("save", "--help");
        assertEquals(0, save.code(), save.err());
        assertTrue(save.out().contains("--keep-running"), save.out());
    }

    @Test
    void refusals() throws Exception {
        assertOneLineError(jvmm("restore"), "restore needs the snapshot FILE first");
        assertOneLineError(jvmm("save", "nobody", dir.resolve("x.snap").toString()), "no VM named 'nobody'");
        Path notASnapshot = Files.writeString(dir.resolve("notes.txt"), "hello");
        assertOneLineError(jvmm("restore", notASnapshot.toString()), "is not a jvmm snapshot");
        assertOneLineError(jvmm("restore", dir.resolve("missing.snap").toString()), "does not exist");
        assertOneLineError(
                jvmm("restore", notASnapshot.toString(), "--memory", "1G"), "--memory cannot be combined with restore");
        assertOneLineError(
                jvmm("restore", notASnapshot.toString(), "--disk-path", "sda=/x"), "names a disk vda, vdb, ...");
        assertOneLineError(jvmm("run", "--kernel", notASnapshot.toString(), "--trust-disks"), "are for jvmm restore");
    }
}
