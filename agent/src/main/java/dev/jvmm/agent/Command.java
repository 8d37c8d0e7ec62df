package dev.jvmm.agent;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * A command for the agent to run: argv (argv[0] is searched in the guest's PATH), environment changes, a working
 * directory, stdin and a time limit. Immutable; each method returns a changed copy:
 * {@code Command.of("sh", "-c", "cat > f").cwd("/tmp").stdin("hello")}.
 */
public final class Command {
    private final List<String> argv;
    private final List<String> env;
    private final String cwd;
    private final Supplier<InputStream> stdin;
    private final Duration timeout;

    private Command(List<String> argv, List<String> env, String cwd, Supplier<InputStream> stdin, Duration timeout) {
        this.argv = List.copyOf(argv);
        this.env = List.copyOf(env);
        this.cwd = cwd;
        this.stdin = stdin;
        this.timeout = timeout;
    }

    public static Command of(String... argv) {
        if (argv.length == 0) throw new IllegalArgumentException("a command needs at least argv[0]");
        return new Command(List.of(argv), List.of(), "", null, null);
    }

    public static Command of(List<String> argv) {
        return of(argv.toArray(String[]::new));
    }

    /** Sets an environment variable over the agent's environment (PATH and HOME are set there). */
    public Command env(String name, String value) {
        if (name.isEmpty() || name.indexOf('=') >= 0) throw new IllegalArgumentException("bad variable name " + name);
        List<String> e = new ArrayList<>(env);
        e.add(name + "=" + value);
        return new Command(argv, e, cwd, stdin, timeout);
    }

    /** Removes a variable from the agent's environment. */
    public Command unsetEnv(String name) {
        if (name.isEmpty() || name.indexOf('=') >= 0) throw new IllegalArgumentException("bad variable name " + name);
        List<String> e = new ArrayList<>(env);
        e.add(name);
        return new Command(argv, e, cwd, stdin, timeout);
    }

    /** The working directory (default: the agent's, / in a micro-VM). */
    public Command cwd(String dir) {
        return new Command(argv, env, dir, stdin, timeout);
    }

    public Command stdin(byte[] data) {
        byte[] copy = data.clone();
        return new Command(argv, env, cwd, () -> new ByteArrayInputStream(copy), timeout);
    }

    public Command stdin(String text) {
        return stdin(text.getBytes(StandardCharsets.UTF_8));
    }

    /** Stdin read from a stream, opened once per run (the supplier is called each time the command runs). */
    public Command stdin(Supplier<InputStream> stream) {
        return new Command(argv, env, cwd, stream, timeout);
    }

    /** Kills the command's process group (SIGKILL, exit code 137) if it runs longer than this. */
    public Command timeout(Duration limit) {
        return new Command(argv, env, cwd, stdin, limit);
    }

    public List<String> argv() {
        return argv;
    }

    public List<String> env() {
        return env;
    }

    public String cwd() {
        return cwd;
    }

    Optional<Supplier<InputStream>> stdin() {
        return Optional.ofNullable(stdin);
    }

    public Optional<Duration> timeout() {
        return Optional.ofNullable(timeout);
    }

    @Override
    public String toString() {
        return String.join(" ", argv);
    }
}
