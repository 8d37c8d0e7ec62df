package dev.jvmm.devices.net;

import dev.jvmm.kvm.Libc;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * A network namespace made for one test (deleted on close), and a way to run Java code inside it: a fresh
 * thread calls setns(2), so the sockets it creates live in the namespace (and keep working from any thread).
 */
public final class NetNamespace implements AutoCloseable {
    private final String name;

    private NetNamespace(String name) {
        this.name = name;
    }

    /** Root, /dev/net/tun, iproute2 and busybox: missing ones fail the test under CI=true, else skip it visibly. */
    public static void requireTools() {
        List<String> missing = new ArrayList<>();
        if (!isRoot()) missing.add("root (CAP_NET_ADMIN)");
        if (!Files.exists(Path.of("/dev/net/tun"))) missing.add("/dev/net/tun");
        if (!onPath("ip")) missing.add("ip (Debian package iproute2)");
        if (!onPath("busybox")) missing.add("busybox (Debian package busybox-static)");
        if (missing.isEmpty()) return;
        String why = "network namespace tests need " + String.join(", ", missing);
        if ("true".equals(System.getenv("CI"))) Assertions.fail(why);
        Assumptions.abort(why);
    }

    private static boolean isRoot() {
        try {
            return run(5, "id", "-u").trim().equals("0");
        } catch (RuntimeException e) {
            return false;
        }
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv()
                .getOrDefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .split(":")) {
            if (Files.isExecutable(Path.of(dir, tool))) return true;
        }
        return Files.isExecutable(Path.of("/usr/sbin", tool)) || Files.isExecutable(Path.of("/sbin", tool));
    }

    public static NetNamespace create(String prefix) {
        String name = prefix + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime() & 0xffffff);
        run(10, "ip", "netns", "add", name);
        NetNamespace ns = new NetNamespace(name);
        ns.exec(10, "ip", "link", "set", "lo", "up");
        return ns;
    }

    public String name() {
        return name;
    }

    /** Runs a command inside the namespace; fails the test with its output if it fails or overruns. */
    public String exec(int timeoutSeconds, String... command) {
        List<String> full = new ArrayList<>(List.of("ip", "netns", "exec", name));
        full.addAll(List.of(command));
        return run(timeoutSeconds, full.toArray(String[]::new));
    }

    public static String run(int timeoutSeconds, String... command) {
        Path output = null;
        try {
            // Output goes to a file: no reader thread that a busy common pool could starve.
            output = Files.createTempFile("netns-cmd", ".out");
            Process p = new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(output.toFile())
                    .start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", command) + " did not finish within " + timeoutSeconds + " s");
            }
            String text = Files.readString(output, StandardCharsets.UTF_8);
            if (p.exitValue() != 0)
                throw new AssertionError(String.join(" ", command) + " exited " + p.exitValue() + ": " + text);
            return text;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + command[0]);
        } catch (IOException e) {
            throw new AssertionError(String.join(" ", command) + ": " + e, e);
        } finally {
            if (output != null) {
                try {
                    Files.deleteIfExists(output);
                } catch (IOException ignored) {
                    // a temp file left behind is harmless
                }
            }
        }
    }

    /** Runs {@code task} on a thread of its own (never the common pool, which blocking socket code would starve). */
    public static <T> CompletableFuture<T> async(Callable<T> task) {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = new Thread(
                () -> {
                    try {
                        result.complete(task.call());
                    } catch (Throwable e) {
                        result.completeExceptionally(e);
                    }
                },
                "netns-test-peer");
        t.setDaemon(true);
        t.start();
        return result;
    }

    /** Runs {@code task} on a new thread that has entered this namespace. */
    public <T> T call(Callable<T> task) throws Exception {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = new Thread(
                () -> {
                    try {
                        Libc.setns("/var/run/netns/" + name, Libc.CLONE_NEWNET);
                        result.complete(task.call());
                    } catch (Throwable e) {
                        result.completeExceptionally(e);
                    }
                },
                "in-netns-" + name);
        t.setDaemon(true);
        t.start();
        try {
            return result.get(90, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof Exception ex) throw ex;
            throw e;
        }
    }

    @Override
    public void close() {
        run(10, "ip", "netns", "delete", name);
    }
}
