package dev.jvmm.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * {@code jvmm run --name NAME --detach}: starts the same {@code jvmm run} without {@code --detach} as a process of
 * its own that outlives this one (a new session through setsid(1), so no terminal's hangup reaches it; standard input
 * from /dev/null; standard output and error, the guest's console included, to {@code NAME.log} in the runtime
 * folder), and returns once its VM runs, or once it waits to be configured through its API when nothing describes
 * the machine. A VM that fails to start makes its one-line error this command's, with its exit status.
 */
final class Detach {
    private Detach() {}

    /** How long a VM may take to come up (a JVM in the emulated machine starts 20-40x slower than here). */
    static final Duration START_WAIT = Duration.ofMinutes(5);

    static int start(
            RuntimeDir dir, String name, List<String> args, boolean awaitConfig, PrintWriter out, PrintWriter err)
            throws IOException, InterruptedException {
        dir.ensure();
        if (dir.running(name)) dir.claim(name).close(); // refuses in the claim's words
        Path log = dir.log(name);
        Files.deleteIfExists(log);
        Files.deleteIfExists(CappedLog.previous(log));
        Files.createFile(log, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        ProcessBuilder pb = new ProcessBuilder(command(args))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectErrorStream(true);
        pb.environment().put(RuntimeDir.ENV, dir.path().toString());
        Process p = pb.start();
        VmCommands.Vm vm = new VmCommands.Vm(dir, name, new ApiClient(dir.socket(name), Duration.ofSeconds(5)));
        long deadline = System.nanoTime() + START_WAIT.toNanos();
        while (true) {
            if (!p.isAlive()) return failed(name, p.exitValue(), log, err);
            Optional<JsonNode> info = ready(dir, vm);
            if (info.isPresent()) {
                String state = info.get().path("state").asText();
                if (awaitConfig || !state.equals("Not started")) {
                    out.println(name + " " + state.toLowerCase(java.util.Locale.ROOT) + " (pid "
                            + info.get().path("pid").asText() + "); 'jvmm console " + name + "' attaches, its log is "
                            + log);
                    out.flush();
                    return 0;
                }
            }
            if (System.nanoTime() - deadline > 0) {
                p.destroy();
                err.println("jvmm: " + name + " did not start within " + START_WAIT.toSeconds()
                        + " s (stopped it); its log: " + log);
                return 1;
            }
            Thread.sleep(50);
        }
    }

    private static Optional<JsonNode> ready(RuntimeDir dir, VmCommands.Vm vm) {
        if (!Files.exists(dir.socket(vm.name()))) return Optional.empty();
        try {
            ApiClient.Response r = vm.api().get("/jvmm/vm");
            return r.ok() ? Optional.of(r.json()) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty(); // not listening yet
        }
    }

    /** The VM's process ended before its VM ran: its last "jvmm: " line (its one-line error) becomes ours. */
    private static int failed(String name, int status, Path log, PrintWriter err) throws IOException {
        String last = null;
        for (String line : Files.readAllLines(log)) if (line.startsWith("jvmm: ")) last = line;
        if (status != 0)
            err.println(
                    last != null
                            ? last
                            : "jvmm: " + name + " failed to start (exit status " + status + "); its log: " + log);
        else err.println("jvmm: " + name + " started and has ended already (exit status 0); its log: " + log);
        err.flush();
        return status;
    }

    /** This JVM's command line again, for the same {@code jvmm run} without --detach. */
    static List<String> command(List<String> args) {
        ProcessHandle.Info info = ProcessHandle.current().info();
        String java = info.command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> jvm = info.arguments().map(List::of).orElse(List.of());
        int main = jvm.indexOf(Main.class.getName());
        List<String> cmd = new ArrayList<>();
        String setsid = setsid();
        if (setsid != null) cmd.addAll(List.of(setsid, "-w")); // -w: its exit status, had it to fork
        cmd.add(java);
        if (main >= 0) cmd.addAll(jvm.subList(0, main));
        else cmd.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path")));
        cmd.add(Main.class.getName());
        cmd.add("run");
        for (String a : args) if (!a.equals("--detach") && !a.startsWith("--detach=")) cmd.add(a);
        cmd.add("--detached");
        return cmd;
    }

    private static String setsid() {
        for (String dir : List.of("/usr/bin", "/bin", "/usr/sbin", "/sbin"))
            if (Files.isExecutable(Path.of(dir, "setsid")))
                return Path.of(dir, "setsid").toString();
        return null;
    }

    /** A detached VM has no terminal; should it have been started without setsid, a hangup must not end it. */
    static void ignoreHangup() {
        try {
            Signal.handle(new Signal("HUP"), SignalHandler.SIG_IGN);
        } catch (IllegalArgumentException e) {
            // the JVM was started with -Xrs, or the signal is taken: nothing to do
        }
    }
}
