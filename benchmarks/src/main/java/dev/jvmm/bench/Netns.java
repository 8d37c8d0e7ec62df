package dev.jvmm.bench;

import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.tap.TapBackend;
import dev.jvmm.kvm.Libc;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Network-namespace plumbing the network benchmarks share: commands, and work done inside a namespace. */
final class Netns {
    private Netns() {}

    /** Runs task on a fresh thread that has joined the named namespace (setns applies to one thread only). */
    static <T> T call(String namespace, Callable<T> task) throws Exception {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread.ofPlatform().daemon().start(() -> {
            try {
                Libc.setns("/var/run/netns/" + namespace, Libc.CLONE_NEWNET);
                result.complete(task.call());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        return result.get(30, TimeUnit.SECONDS);
    }

    /** jvmm's TAP backend on an interface tap0 that it creates in the namespace (one queue). */
    static TapBackend openTap0(String namespace) throws Exception {
        return call(namespace, () -> TapBackend.open(new NetConfig.Tap("tap0", Optional.empty(), Optional.empty(), 1)));
    }

    /** Runs a command; its output, or an exception with the output when it fails or takes over 20 s. */
    static String run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(20, TimeUnit.SECONDS) || p.exitValue() != 0)
            throw new IllegalStateException(String.join(" ", command) + " failed: " + output);
        return output;
    }
}
