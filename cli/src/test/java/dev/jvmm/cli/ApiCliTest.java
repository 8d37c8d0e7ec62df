package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** jvmm run's --api-sock and --config-file: every mistake is one line and exit status 1, before any VM runs. */
class ApiCliTest {
    @TempDir
    Path dir;

    private static String oneLineError(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(
                java.io.InputStream.nullInputStream(), new PrintWriter(out, true), new PrintWriter(err, true), args);
        assertEquals(1, code, err.toString());
        String[] lines = err.toString().strip().split("\n");
        assertEquals(1, lines.length, "one line, got:\n" + err);
        assertTrue(lines[0].startsWith("jvmm: "), lines[0]);
        assertFalse(err.toString().contains("\tat "), "no stack trace");
        return lines[0];
    }

    @Test
    void anExistingSocketPathIsRefused() throws Exception {
        Path stale = Files.writeString(dir.resolve("api.sock"), "");
        String m = oneLineError("run", "--api-sock", stale.toString());
        assertTrue(m.contains("--api-sock " + stale + " exists"), m);
        assertTrue(Files.exists(stale), "left alone");
    }

    @Test
    void machineOptionsDoNotMixWithTheApi() {
        String m = oneLineError("run", "--api-sock", dir.resolve("a.sock").toString(), "--memory", "1G");
        assertTrue(m.contains("--memory cannot be combined with --api-sock or --config-file"), m);
        assertFalse(Files.exists(dir.resolve("a.sock")));
        assertTrue(oneLineError("run", "--api-sock", dir.resolve("a.sock").toString(), "--id", "no spaces")
                .contains("--id"));
    }

    @Test
    void configFileMistakesNameTheFileAndTheField() throws Exception {
        assertTrue(oneLineError("run", "--config-file", dir.resolve("none.json").toString())
                .contains("no such file"));
        Path bad = Files.writeString(
                dir.resolve("bad.json"),
                "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpus\": 1}}");
        String m = oneLineError("run", "--config-file", bad.toString());
        assertTrue(m.contains("--config-file " + bad) && m.contains("unknown field `vcpus`"), m);
        Path noKernel = Files.writeString(
                dir.resolve("nokernel.json"),
                "{\"boot-source\": {\"kernel_image_path\": \"" + dir.resolve("vmlinux") + "\"}}");
        m = oneLineError("run", "--config-file", noKernel.toString());
        assertTrue(m.contains("the kernel file " + dir.resolve("vmlinux") + " cannot be opened: no such file"), m);
        Path empty = Files.writeString(dir.resolve("empty.json"), "{}");
        assertTrue(oneLineError("run", "--config-file", empty.toString()).contains("without kernel configuration"));
    }
}
