package dev.jvmm.bench;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * passt's {@code pasta} (Debian package {@code passt}) connecting a network namespace to the host, as the peer
 * user-mode networking is measured against: the namespace's Linux TCP is the guest, pasta's tap and socket
 * translation the user-mode stack, and the gateway address (pasta maps it to the host's loopback) the host.
 */
final class Pasta implements AutoCloseable {
    final String namespace;
    /** The namespace's default gateway: connections to it reach the host's 127.0.0.1. */
    final String gateway;

    private final Path pidFile;

    private Pasta(String namespace, String gateway, Path pidFile) {
        this.namespace = namespace;
        this.gateway = gateway;
        this.pidFile = pidFile;
    }

    static boolean available() {
        return Files.isExecutable(Path.of("/usr/bin/pasta"));
    }

    /** A fresh namespace with pasta attached (IPv4 only, no port forwarding); pasta runs in the background. */
    static Pasta start(String namespace) throws Exception {
        Netns.run("ip", "netns", "add", namespace);
        Path pid = Files.createTempFile("jvmm-bench-pasta", ".pid");
        try {
            // --runas 0: as root pasta would switch to nobody, who may not enter a namespace root made.
            Netns.run(
                    "pasta",
                    "-q",
                    "--runas",
                    "0",
                    "--config-net",
                    "-4",
                    "-t",
                    "none",
                    "-u",
                    "none",
                    "-T",
                    "none",
                    "-U",
                    "none",
                    "-P",
                    pid.toString(),
                    "--netns",
                    namespace);
            String route = Netns.run("ip", "netns", "exec", namespace, "ip", "-4", "route", "show", "default");
            String[] words = route.trim().split("\\s+");
            if (words.length < 3 || !words[1].equals("via"))
                throw new IllegalStateException("pasta gave the namespace no default route: " + route);
            Pasta p = new Pasta(namespace, words[2], pid);
            // JMH skips a trial's teardown when the benchmark throws (pasta may reset the connection): clean up
            // at exit then, so no namespace or pasta process outlives the fork.
            Runtime.getRuntime().addShutdownHook(new Thread(p::closeQuietly));
            return p;
        } catch (Exception e) {
            new Pasta(namespace, "", pid).closeQuietly(); // pasta, if it started, its pid file, the namespace
            throw e;
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (Exception ignored) {
            // at exit, best effort
        }
    }

    @Override
    public synchronized void close() throws Exception {
        if (!Files.exists(pidFile)) return; // closed already
        String pid = Files.readString(pidFile).trim();
        if (!pid.isEmpty() && pid.chars().allMatch(Character::isDigit))
            ProcessHandle.of(Long.parseLong(pid)).ifPresent(ProcessHandle::destroy);
        Files.deleteIfExists(pidFile);
        Netns.run("ip", "netns", "delete", namespace);
    }
}
