package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import dev.jvmm.core.testing.DebianGuest;
import dev.jvmm.core.testing.FakeDnsServer;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Inet4Address;
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
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

    private static DebianGuest guest;

    @BeforeAll
    static void buildImage() throws Exception {
        try {
            guest = new DebianGuest(debianImage());
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("the Debian image could not be built: " + e.getMessage());
        }
    }

    @Test
    void bootsToLoginServesSshTakesAConsoleLoginAndShutsDownOnSigterm(@TempDir Path dir) throws Exception {
        Path overlay = guest.overlay(dir.resolve("debian.qcow2"));
        if (KvmHost.emulatesGuestKernel()) {
            earlyBootOnly(overlay);
            return;
        }
        // The user's way: `jvmm run` on a terminal (tmux), the console read and typed as a person does.
        int sshPort = freePort();
        // The guest's resolver is 10.0.2.3 (DHCP and the image agree); jvmm forwards its queries to this server.
        FakeDnsServer dns =
                new FakeDnsServer(Map.of("files.jvmm.test", (Inet4Address) InetAddress.getByName("10.0.2.2")));
        List<String> jvmm = guest.jvmmCommand(
                overlay,
                2,
                "1G",
                "user,hostloopback=on,resolver=" + dns.address().getHostString() + ":"
                        + dns.address().getPort() + ",hostfwd=tcp:127.0.0.1:" + sshPort + "-:22");
        String jvmmLog;
        try (dns;
                Terminal term = Terminal.start(dir, jvmm)) {
            long t0 = System.nanoTime();
            assertTrue(
                    term.awaitLog(DebianGuest.LOGIN_PROMPT, BOOT),
                    "no login prompt within " + BOOT + ":\n" + term.log());
            System.out.println("login prompt after " + (System.nanoTime() - t0) / 1_000_000 + " ms");

            // ssh through hostfwd with the image's key: systemd's view, the NIC's DHCP address, the vCPUs.
            awaitSsh(sshPort);
            String state = ssh(
                    sshPort,
                    "systemctl is-system-running --wait; systemctl --failed --no-legend --plain; "
                            + "echo cpus=$(nproc); ip -4 -o addr show scope global; "
                            + "cat /sys/devices/system/clocksource/clocksource0/current_clocksource");
            assertTrue(state.startsWith("running\n"), "systemd is running with no failed unit:\n" + state);
            assertTrue(state.contains("\ncpus=2\n"), state);
            assertTrue(state.contains("inet 10.0.2.15/24"), state);
            assertTrue(state.strip().endsWith("kvm-clock"), state);
            // A wake alarm two seconds on through rtc-cmos: its interrupt (IRQ 8) arrives and is counted.
            String rtc = ssh(
                    sshPort,
                    "echo +2 > /sys/class/rtc/rtc0/wakealarm && sleep 5 && "
                            + "awk '/ rtc0$/ { n = 0; for (i = 2; i < NF - 2; i++) n += $i; print \"rtc0-irqs=\" n }' "
                            + "/proc/interrupts");
            Matcher irqs = Pattern.compile("rtc0-irqs=(\\d+)").matcher(rtc);
            assertTrue(irqs.find() && Integer.parseInt(irqs.group(1)) > 0, "the RTC alarm's interrupt: " + rtc);

            // A download by name from a server on the host (10.0.2.2 is the host's loopback with hostloopback=on),
            // checked
            // byte for byte.
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
                String hosts = ssh(sshPort, "getent ahostsv4 files.jvmm.test");
                assertTrue(hosts.startsWith("10.0.2.2 "), hosts);
                assertTrue(dns.questions().contains("files.jvmm.test 1"), "asked through 10.0.2.3: " + dns.questions());
                String sum = ssh(
                        sshPort,
                        "curl -sf http://files.jvmm.test:" + http.getAddress().getPort() + "/blob | sha256sum");
                assertEquals(
                        HexFormat.of()
                                .formatHex(MessageDigest.getInstance("SHA-256").digest(blob)),
                        sum.split(" ")[0]);
            } finally {
                http.stop(0);
            }

            // The serial console by hand: log in as root (no password there), ask, read the answer off the screen.
            term.type("root");
            assertTrue(term.awaitScreen("root@jvmm-debian:~#", Duration.ofMinutes(3)), term.screen());
            term.type("uname -a");
            assertTrue(term.awaitScreen("Linux jvmm-debian 6.1", Duration.ofMinutes(1)), term.screen());

            // reboot in the guest: the VM starts again from its configuration and boots to login once more.
            term.type("reboot");
            assertTrue(
                    term.awaitLog(
                            log -> log.contains("reboot: Restarting system")
                                    && log.indexOf(DebianGuest.LOGIN_PROMPT, log.indexOf("reboot: Restarting system"))
                                            > 0,
                            BOOT),
                    "no second login prompt after reboot:\n" + term.log());
            assertFalse(term.log().contains("jvmm-exit="), "jvmm ended on the guest's reboot:\n" + term.log());

            // SIGTERM to jvmm presses the power button: systemd shuts down cleanly, ACPI S5 ends the run with 0.
            term.signalCommand("TERM");
            assertTrue(term.awaitLog("jvmm-exit=", BOOT), "jvmm did not end after SIGTERM:\n" + term.log());
            jvmmLog = term.log();
            assertTrue(jvmmLog.contains("jvmm: SIGTERM: pressed the guest's power button"), jvmmLog);
            assertTrue(jvmmLog.contains("reboot: Power down"), jvmmLog);
            assertTrue(jvmmLog.contains("jvmm-exit=0"), jvmmLog);
            // Nothing of the JVM's or a library's on the console's terminal.
            for (String noise : List.of("sun.misc.Unsafe", "io.netty", "SLF4J", "WARNING: A "))
                assertFalse(jvmmLog.contains(noise), noise + " on the console:\n" + jvmmLog);
            System.out.println(jvmmLog);
        }
        String check = run(List.of("qemu-img", "check", overlay.toString()));
        assertTrue(check.contains("No errors were found on the image."), check);

        // The oracle: QEMU boots the same kernel, initramfs and image in this same place. A suspicious line that
        // both print is the kernel's (or the emulated CPU's); one only jvmm's boot prints is jvmm's to fix.
        String qemuLog = qemuBootToLogin(dir);
        // Both of jvmm's boots count: the first, and the one after the guest's reboot.
        Set<String> onlyJvmm = new TreeSet<>(suspicious(untilLogin(jvmmLog)));
        onlyJvmm.addAll(suspicious(untilLogin(jvmmLog.substring(jvmmLog.indexOf("reboot: Restarting system")))));
        onlyJvmm.removeAll(suspicious(untilLogin(qemuLog)));
        System.out.println("suspicious lines QEMU prints too: " + suspicious(qemuLog));
        assertEquals(Set.of(), onlyJvmm, "boot log lines only jvmm's boot prints (QEMU's log:\n" + qemuLog + ")");
        KvmHost.checked(
                "DebianGuestKvmTest",
                "Debian to login through jvmm run in tmux, ssh, a download, a console login, "
                        + "SIGTERM to a clean power-off, and no suspicious boot-log line that QEMU does not print too");
    }

    /**
     * kvm_pvm: a distribution kernel stops in early boot (HOST.md), before its console is registered, so the early
     * console shows how far it got: its command line.
     */
    private static void earlyBootOnly(Path overlay) throws Exception {
        WatchedOutput console = new WatchedOutput();
        MachineConfig config = MachineConfig.builder(guest.kernel())
                .initrd(guest.initrd())
                .memory(1L << 30)
                .cpus(2)
                .cmdline("console=ttyS0 earlyprintk=serial root=/dev/vda rw")
                .disk(new MachineConfig.DiskConfig(
                        overlay,
                        false,
                        Optional.empty(),
                        MachineConfig.DiskConfig.Transport.PCI,
                        MachineConfig.DiskConfig.Format.QCOW2,
                        MachineConfig.DiskConfig.BackingFiles.ANY))
                .console(console)
                .build();
        try (Machine m = Machine.create(config)) {
            m.start();
            boolean early = console.await(
                    t -> t.contains("Command line: console=ttyS0 earlyprintk=serial root=/dev/vda rw"),
                    Duration.ofMinutes(5));
            m.stop();
            assertTrue(early, console.text());
        }
        KvmHost.checked("DebianGuestKvmTest", "Debian's kernel from the image, up to its command line (kvm_pvm)");
    }

    /** A tmux session running one command on a terminal, its whole output logged to a file (pipe-pane). */
    private record Terminal(String session, Path logFile) implements AutoCloseable {
        static Terminal start(Path dir, List<String> command) throws IOException, InterruptedException {
            String session = "jvmm-test-" + Long.toHexString(System.nanoTime());
            Path log = dir.resolve("terminal.log");
            Files.createFile(log);
            run(List.of(
                    "tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", "bash --norc --noprofile"));
            Terminal t = new Terminal(session, log);
            run(List.of("tmux", "pipe-pane", "-t", session, "-o", "cat >> " + quote(log.toString())));
            StringBuilder line = new StringBuilder();
            for (String arg : command) line.append(quote(arg)).append(' ');
            t.type(line + "; echo jvmm''-exit=$?"); // quoted apart, so that the echoed command line does not match
            return t;
        }

        void type(String text) throws IOException, InterruptedException {
            run(List.of("tmux", "send-keys", "-t", session, "-l", text));
            run(List.of("tmux", "send-keys", "-t", session, "Enter"));
        }

        String screen() throws IOException, InterruptedException {
            return run(List.of("tmux", "capture-pane", "-p", "-t", session));
        }

        String log() throws IOException {
            return Files.readString(logFile, StandardCharsets.ISO_8859_1);
        }

        boolean awaitLog(String text, Duration timeout) throws Exception {
            return await(this::log, text, timeout);
        }

        boolean awaitLog(Predicate<String> condition, Duration timeout) throws Exception {
            return await(this::log, condition, timeout);
        }

        boolean awaitScreen(String text, Duration timeout) throws Exception {
            return await(this::screen, text, timeout);
        }

        private static boolean await(Callable<String> source, String text, Duration timeout) throws Exception {
            return await(source, s -> s.contains(text), timeout);
        }

        private static boolean await(Callable<String> source, Predicate<String> condition, Duration timeout)
                throws Exception {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!condition.test(source.call())) {
                if (System.nanoTime() > deadline) return false;
                Thread.sleep(500);
            }
            return true;
        }

        /** Sends a signal to the command the terminal's shell runs (the java process). */
        void signalCommand(String signal) throws IOException, InterruptedException {
            String shell = run(List.of("tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"))
                    .strip();
            run(List.of("pkill", "-" + signal, "-P", shell, "java"));
        }

        @Override
        public void close() throws IOException {
            Process p = new ProcessBuilder("tmux", "kill-session", "-t", session).start();
            try {
                p.waitFor();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        private static String quote(String s) {
            return "'" + s.replace("'", "'\\''") + "'";
        }
    }

    private static final Pattern SUSPICIOUS = Pattern.compile(
            "warning:|bug:|call trace|failed|firmware bug|fallback|unstable|unable to|not found|error",
            Pattern.CASE_INSENSITIVE);

    /** The boot, up to the login prompt: what both runs have (QEMU's is not shut down cleanly). */
    private static String untilLogin(String log) {
        int login = log.indexOf(DebianGuest.LOGIN_PROMPT);
        return login < 0 ? log : log.substring(0, login);
    }

    /** The boot log's suspicious lines, without timestamps, numbers and addresses (which differ run to run). */
    static Set<String> suspicious(String log) {
        Set<String> out = new TreeSet<>();
        for (String line : log.split("\r?\n")) {
            String l = line.replaceAll("\u001b\\[[0-9;?]*[A-Za-z]", "")
                    .replaceFirst("^\\[\\s*\\d+\\.\\d+\\]\\s*", "")
                    .strip();
            if (SUSPICIOUS.matcher(l).find()) out.add(l.replaceAll("0x[0-9a-fA-F]+|\\b[0-9a-f]{6,}\\b|\\d+", "#"));
        }
        return out;
    }

    /**
     * QEMU with KVM, q35, the host's CPU model: the same kernel, initramfs and image (an overlay of its own) to
     * login.
     */
    private static String qemuBootToLogin(Path dir) throws IOException, InterruptedException {
        Path overlay = guest.overlay(dir.resolve("qemu.qcow2")), log = dir.resolve("qemu-console.log");
        Process q = new ProcessBuilder(guest.qemuCommand(
                        "qemu-system-x86_64",
                        overlay,
                        2,
                        "1G",
                        List.of("-monitor", "none", "-serial", "file:" + log, "-no-reboot")))
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("qemu.out").toFile())
                .start();
        try {
            long deadline = System.nanoTime() + BOOT.toNanos();
            while (System.nanoTime() < deadline && q.isAlive()) {
                if (Files.exists(log)
                        && Files.readString(log, StandardCharsets.ISO_8859_1).contains(DebianGuest.LOGIN_PROMPT)) break;
                Thread.sleep(1000);
            }
            String text = Files.exists(log) ? Files.readString(log, StandardCharsets.ISO_8859_1) : "";
            assertTrue(
                    text.contains(DebianGuest.LOGIN_PROMPT),
                    "QEMU did not reach login: " + Files.readString(dir.resolve("qemu.out")) + text);
            return text;
        } finally {
            q.destroyForcibly().waitFor();
        }
    }

    private static Path debianImage() throws IOException, InterruptedException {
        return TestKernels.scriptOutput("debian-image.sh", Duration.ofMinutes(30));
    }

    /** The login prompt and sshd come up independently: retry until sshd answers (a refused connection is quick). */
    private static void awaitSsh(int port) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofMinutes(5).toNanos();
        while (true) {
            Process p = new ProcessBuilder(sshCommand(port, "true"))
                    .redirectErrorStream(true)
                    .start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() == 0) return;
            assertTrue(System.nanoTime() < deadline, "sshd did not answer within 5 minutes: " + out);
            Thread.sleep(5000);
        }
    }

    private static List<String> sshCommand(int port, String command) {
        return List.of(
                "ssh",
                "-i",
                guest.sshKey().toString(),
                "-p",
                "" + port,
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=60",
                "-o",
                "BatchMode=yes",
                "root@127.0.0.1",
                command);
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
