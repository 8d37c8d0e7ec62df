package dev.jvmm.boot;

import com.sun.net.httpserver.HttpServer;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.devices.net.NetConfig;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real distribution: Debian bookworm made by scripts/debian-image.sh (systemd, sshd, networkd), root on a qcow2
 * overlay over virtio-pci, booted with its own kernel and initramfs to a login prompt; then ssh through hostfwd,
 * a download from the host, a login on the serial console, and a clean shutdown on the ACPI power button.
 */
@RequiresKvm
@Tag("slow")
class DebianGuestKvmTest {
    /** Under the emulated machine Debian reaches login in about two minutes; this is the bound for a wedged boot. */
    private static final Duration BOOT = Duration.ofMinutes(15);
    private static Path image;

    @BeforeAll
    static void buildImage() throws Exception {
        try {
            image = debianImage();
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("the Debian image could not be built: " + e.getMessage());
        }
    }

    @Test
    void bootsToLoginServesSshAndPowersOffOnThePowerButton(@TempDir Path dir) throws Exception {
        Path overlay = dir.resolve("debian.qcow2");
        run(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.resolve("debian.qcow2").toString(),
                overlay.toString()));
        int sshPort = freePort();
        NetConfig.User net = new NetConfig.User(List.of(new NetConfig.HostForward(NetConfig.Protocol.TCP,
                InetAddress.getLoopbackAddress(), sshPort, Optional.empty(), 22)), false, Optional.empty(), Optional.empty());
        WatchedOutput console = new WatchedOutput();
        MachineConfig config = MachineConfig.builder(image.resolve("vmlinuz")).initrd(image.resolve("initrd.img"))
                .memory(1L << 30).cpus(2).cmdline("console=ttyS0 root=/dev/vda rw")
                .disk(new MachineConfig.DiskConfig(overlay, false, Optional.empty(), MachineConfig.DiskConfig.Transport.PCI,
                        MachineConfig.DiskConfig.Format.QCOW2))
                .nic(new MachineConfig.NicConfig(net, MachineConfig.DiskConfig.Transport.PCI))
                .console(console).build();
        String jvmmLog;
        try (Machine m = Machine.create(config)) {
            long t0 = System.nanoTime();
            m.start();
            if (KvmHost.emulatesGuestKernel()) {
                // kvm_pvm: a distribution kernel stops in early boot (HOST.md); its command line is what can be seen.
                boolean early = console.await(t -> t.contains("Command line: console=ttyS0 root=/dev/vda rw"), Duration.ofMinutes(5));
                m.stop();
                assertTrue(early, console.text());
                KvmHost.checked("DebianGuestKvmTest", "Debian's kernel from the image, up to its command line (kvm_pvm)");
                return;
            }
            boolean login = console.await(t -> t.contains("jvmm-debian login:"), BOOT);
            long loginMs = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(login, "no login prompt within " + BOOT + ":\n" + console.text());
            System.out.println("login prompt after " + loginMs + " ms");

            // ssh through hostfwd with the image's key: systemd's view, the NIC's DHCP address, the vCPUs.
            awaitSsh(sshPort);
            String state = ssh(sshPort, "systemctl is-system-running --wait; systemctl --failed --no-legend --plain; "
                    + "echo cpus=$(nproc); ip -4 -o addr show scope global; "
                    + "cat /sys/devices/system/clocksource/clocksource0/current_clocksource");
            assertTrue(state.startsWith("running\n"), "systemd is running with no failed unit:\n" + state);
            assertTrue(state.contains("\ncpus=2\n"), state);
            assertTrue(state.contains("inet 10.0.2.15/24"), state);
            assertTrue(state.strip().endsWith("kvm-clock"), state);

            // A download from a server on the host (10.0.2.2 is the host's loopback), checked byte for byte.
            byte[] blob = new byte[4 << 20];
            new Random(11).nextBytes(blob);
            HttpServer http = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
            http.createContext("/blob", ex -> {
                ex.sendResponseHeaders(200, blob.length);
                try (OutputStream body = ex.getResponseBody()) {
                    body.write(blob);
                }
            });
            http.start();
            try {
                String sum = ssh(sshPort, "curl -sf http://10.0.2.2:" + http.getAddress().getPort() + "/blob | sha256sum");
                assertEquals(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(blob)), sum.split(" ")[0]);
            } finally {
                http.stop(0);
            }

            // The serial console as a person uses it: log in as root (no password there) and ask.
            m.consoleInput("root\n".getBytes(StandardCharsets.US_ASCII));
            assertTrue(console.await(t -> t.contains("root@jvmm-debian:~#"), Duration.ofMinutes(3)), console.text());
            m.consoleInput("uname -sn\n".getBytes(StandardCharsets.US_ASCII));
            assertTrue(console.await(t -> t.contains("Linux jvmm-debian"), Duration.ofMinutes(1)), console.text());

            // The power button: systemd-logind shuts down cleanly, ACPI S5 ends the run.
            m.pressPowerButton();
            ExitStatus status = m.awaitExit(BOOT).orElse(null);
            if (status == null) m.stop();
            String log = console.text();
            assertTrue(status instanceof ExitStatus.PowerOff, "power button: " + status + "\n" + log);
            assertTrue(log.contains("reboot: Power down"), log);
            System.out.println(log);
            jvmmLog = log;
        }
        String check = run(List.of("qemu-img", "check", overlay.toString()));
        assertTrue(check.contains("No errors were found on the image."), check);

        // The oracle: QEMU boots the same kernel, initramfs and image in this same place. A suspicious line that
        // both print is the kernel's (or the emulated CPU's); one only jvmm's boot prints is jvmm's to fix.
        String qemuLog = qemuBootToLogin(dir);
        Set<String> onlyJvmm = new TreeSet<>(suspicious(jvmmLog));
        onlyJvmm.removeAll(suspicious(qemuLog));
        System.out.println("suspicious lines QEMU prints too: " + suspicious(qemuLog));
        assertEquals(Set.of(), onlyJvmm, "boot log lines only jvmm's boot prints (QEMU's log:\n" + qemuLog + ")");
        KvmHost.checked("DebianGuestKvmTest", "Debian to login, ssh, a download, a console login, power button to S5, "
                + "and no suspicious boot-log line that QEMU does not print too");
    }

    private static final Pattern SUSPICIOUS = Pattern.compile(
            "warning:|bug:|call trace|failed|firmware bug|fallback|unstable|unable to|not found|error", Pattern.CASE_INSENSITIVE);

    /** The boot log's suspicious lines, without timestamps, numbers and addresses (which differ run to run). */
    static Set<String> suspicious(String log) {
        Set<String> out = new TreeSet<>();
        for (String line : log.split("\r?\n")) {
            String l = line.replaceAll("\u001b\\[[0-9;?]*[A-Za-z]", "").replaceFirst("^\\[\\s*\\d+\\.\\d+\\]\\s*", "").strip();
            if (SUSPICIOUS.matcher(l).find()) out.add(l.replaceAll("0x[0-9a-fA-F]+|\\b[0-9a-f]{6,}\\b|\\d+", "#"));
        }
        return out;
    }

    /** QEMU with KVM, q35, the host's CPU model: the same kernel, initramfs and image (an overlay of its own) to login. */
    private static String qemuBootToLogin(Path dir) throws IOException, InterruptedException {
        Path overlay = dir.resolve("qemu.qcow2"), log = dir.resolve("qemu-console.log");
        run(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.resolve("debian.qcow2").toString(),
                overlay.toString()));
        Process q = new ProcessBuilder("qemu-system-x86_64", "-accel", "kvm", "-M", "q35", "-cpu", "host", "-smp", "2", "-m", "1G",
                "-kernel", image.resolve("vmlinuz").toString(), "-initrd", image.resolve("initrd.img").toString(),
                "-append", "console=ttyS0 root=/dev/vda rw", "-drive", "file=" + overlay + ",if=virtio,format=qcow2",
                "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0", "-display", "none", "-monitor", "none",
                "-serial", "file:" + log, "-no-reboot").redirectErrorStream(true).redirectOutput(dir.resolve("qemu.out").toFile()).start();
        try {
            long deadline = System.nanoTime() + BOOT.toNanos();
            while (System.nanoTime() < deadline && q.isAlive()) {
                if (Files.exists(log) && Files.readString(log, StandardCharsets.ISO_8859_1).contains("jvmm-debian login:")) break;
                Thread.sleep(1000);
            }
            String text = Files.exists(log) ? Files.readString(log, StandardCharsets.ISO_8859_1) : "";
            assertTrue(text.contains("jvmm-debian login:"), "QEMU did not reach login: " + Files.readString(dir.resolve("qemu.out")) + text);
            return text;
        } finally {
            q.destroyForcibly().waitFor();
        }
    }

    private static Path debianImage() throws IOException, InterruptedException {
        Path script = Path.of(System.getProperty("user.dir")).getParent().resolve("scripts/debian-image.sh");
        Process p = new ProcessBuilder("bash", script.toString()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0 || out.isEmpty())
            throw new IOException("could not build the Debian image with " + script);
        return Path.of(out);
    }

    /** The login prompt and sshd come up independently: retry until sshd answers (a refused connection is quick). */
    private static void awaitSsh(int port) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofMinutes(5).toNanos();
        while (true) {
            Process p = new ProcessBuilder(sshCommand(port, "true")).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() == 0) return;
            assertTrue(System.nanoTime() < deadline, "sshd did not answer within 5 minutes: " + out);
            Thread.sleep(5000);
        }
    }

    private static List<String> sshCommand(int port, String command) {
        return List.of("ssh", "-i", image.resolve("id_ed25519").toString(), "-p", "" + port,
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=60", "-o", "BatchMode=yes", "root@127.0.0.1", command);
    }

    private static String ssh(int port, String command) throws IOException, InterruptedException {
        return run(sshCommand(port, command));
    }

    private static String run(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, TimeUnit.MINUTES), String.join(" ", command) + ": still running");
        assertEquals(0, p.exitValue(), String.join(" ", command) + ":\n" + out);
        return out;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
