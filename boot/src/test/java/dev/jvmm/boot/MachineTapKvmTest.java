package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.virtio.net.VirtioNet;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The virtio-net guest suite with both NICs on TAP interfaces that --net tap,...,bridge=BR adds to a bridge made
 * for the test, and a Linux peer in a network namespace (10.0.2.2 on a veth on the same bridge) answering ARP.
 */
@RequiresKvm
@Tag("netns")
class MachineTapKvmTest {
    @TempDir
    Path dir;

    /** Root, /dev/net/tun and iproute2: missing ones fail the test under CI=true, else skip it visibly. */
    static void requireTools() {
        List<String> missing = new ArrayList<>();
        try {
            if (!run("id", "-u").trim().equals("0")) missing.add("root (CAP_NET_ADMIN)");
        } catch (AssertionError e) {
            missing.add("id");
        }
        if (!Files.exists(Path.of("/dev/net/tun"))) missing.add("/dev/net/tun");
        if (!Files.isExecutable(Path.of("/usr/sbin/ip"))
                && !Files.isExecutable(Path.of("/sbin/ip"))
                && !Files.isExecutable(Path.of("/usr/bin/ip"))) missing.add("ip (Debian package iproute2)");
        if (missing.isEmpty()) return;
        String why = "TAP tests need " + String.join(", ", missing);
        if ("true".equals(System.getenv("CI"))) Assertions.fail(why);
        Assumptions.abort(why);
    }

    static String run(String... command) {
        try {
            Path out = Files.createTempFile("tap-test", ".out");
            try {
                Process p = new ProcessBuilder(command)
                        .redirectErrorStream(true)
                        .redirectOutput(out.toFile())
                        .start();
                if (!p.waitFor(20, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new AssertionError(String.join(" ", command) + " did not finish");
                }
                String text = Files.readString(out, StandardCharsets.UTF_8);
                if (p.exitValue() != 0)
                    throw new AssertionError(String.join(" ", command) + " exited " + p.exitValue() + ": " + text);
                return text;
            } finally {
                Files.deleteIfExists(out);
            }
        } catch (IOException e) {
            throw new AssertionError(String.join(" ", command) + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted");
        }
    }

    static void quietly(String... command) {
        try {
            run(command);
        } catch (AssertionError ignored) {
            // cleanup of something that may not exist
        }
    }

    @Test
    void guestNicsOnTapsReachAPeerNamespaceOverABridge() throws Exception {
        requireTools();
        String id = Long.toHexString((ProcessHandle.current().pid() << 12 ^ System.nanoTime()) & 0xffffff);
        String bridge = "jvbr" + id, veth = "jvv" + id, peer = "jvp" + id, ns = "jvmm-tap-" + id;
        String tap0 = "jvt0" + id, tap1 = "jvt1" + id;
        try {
            run("ip", "link", "add", bridge, "type", "bridge");
            run("ip", "link", "set", bridge, "up");
            run("ip", "netns", "add", ns);
            run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer);
            run("ip", "link", "set", veth, "master", bridge);
            run("ip", "link", "set", veth, "up");
            run("ip", "link", "set", peer, "netns", ns);
            run("ip", "netns", "exec", ns, "ip", "addr", "add", "10.0.2.2/24", "dev", peer);
            run("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up");

            TestGuest guest = new TestGuest("virtio_net_suite.elf", dir);
            MachineConfig config = guest.config
                    .cmdline("net suite peer=tap mac0=525400123456 mac1=525400abcdef")
                    .nic(new MachineConfig.NicConfig(
                            new NetConfig.Tap(
                                    tap0, Optional.of(bridge), Optional.of(MacAddress.parse("52:54:00:12:34:56")), 1),
                            MachineConfig.DiskConfig.Transport.MMIO))
                    .nic(new MachineConfig.NicConfig(
                            new NetConfig.Tap(
                                    tap1, Optional.of(bridge), Optional.of(MacAddress.parse("52:54:00:ab:cd:ef")), 1),
                            MachineConfig.DiskConfig.Transport.PCI))
                    .build();
            try (Machine m = Machine.create(config)) {
                guest.assertSuitePassed(guest.run(m));
                for (VirtioNet nic : m.nics()) {
                    assertEquals(1, nic.txMalformed(), nic + ": the runt frame was dropped, not sent to the bridge");
                    assertEquals(2, nic.txFrames(), nic + ": two ARP requests went out");
                    assertTrue(nic.rxFrames() >= 2, nic + ": the peer's replies arrived");
                }
            }
            // The peer learnt the guest's address from its requests: frames crossed the bridge both ways.
            String neigh = run("ip", "netns", "exec", ns, "ip", "neigh", "show", "10.0.2.15");
            assertTrue(neigh.contains("52:54:00:ab:cd:ef") || neigh.contains("52:54:00:12:34:56"), neigh);
        } finally {
            quietly("ip", "netns", "delete", ns);
            quietly("ip", "link", "delete", veth);
            quietly("ip", "link", "delete", bridge);
        }
    }
}
