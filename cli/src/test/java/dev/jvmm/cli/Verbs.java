package dev.jvmm.cli;

import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Map;

/**
 * jvmm's verbs run in the test's JVM (Main.execute), as the jvmm command runs them, against the VMs of one runtime
 * folder: for tests outside this package, where a JVM start per verb would cost too much (the emulated machine).
 */
public final class Verbs {
    /** The environment variable that names the runtime folder: a jvmm run given it is found by these verbs. */
    public static final String RUNTIME_DIR_ENV = RuntimeDir.ENV;

    private final Map<String, String> env;

    public Verbs(Path runtimeDir) {
        this.env = Map.of(RuntimeDir.ENV, runtimeDir.toString());
    }

    /** What a verb printed, and its exit status. */
    public record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit " + code + "\nstdout:\n" + out + "stderr:\n" + err;
        }
    }

    public Result jvmm(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(
                InputStream.nullInputStream(), new PrintWriter(out, true), new PrintWriter(err, true), env, args);
        return new Result(code, out.toString(), err.toString());
    }
}
