package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.boot.TestKernels;
import dev.jvmm.boot.WatchedOutput;
import dev.jvmm.core.testing.DebianGuest;
import dev.jvmm.core.testing.FakeDnsServer;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
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
 * overlay over virtio-pci, booted with its own kernel and initramfs to a login prompt by {@code jvmm run --name};
 * then ssh through hostfwd, a download from the host, the verbs on the running VM ({@code list}, {@code info} with
 * its counters, {@code suspend} and {@code resume}), a login on the serial console, {@code jvmm save} with a counter
 * running and {@code jvmm restore} in a new process (the shell, the counter, ssh and the clock carry on), and
 * {@code jvmm shutdown} of the restored machine: a clean power-off on the ACPI power button; a second clone
 * restored from the same file onto a copy of the disk as saved; both disks' file systems checked clean. (SIGTERM
 * presses the same button: RunProcessApiKvmTest checks that with a small guest.)
 */
@RequiresKvm
@Tag("slow")
class DebianGuestKvmTest {
    /** Under the emulated machine Debian reaches login in about two minutes; this is the bound for a wedged boot. */
    private static final Duration BOOT = Duration.ofMinutes(15);
    /** The guest's vsock CID. */
    private static final int GUEST_CID = 3;
    /** The VM's name, for the verbs. */
    private static final String NAME = "debian";

    private static DebianGuest guest;

    /** Where the test's time goes, printed phase by phase (the no-KVM suite's longest test: keep it measured). */
    private static final PhaseClock phases = new PhaseClock();

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
    void bootsToLoginServesSshAnswersTheVerbsTakesAConsoleLoginAndShutsDown(@TempDir Path dir) throws Exception {
        phases.restart();
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
        // Named, in a runtime folder of its own: the verbs below find it there, as a user's find theirs.
        Path runtime = dir.resolve("run");
        Verbs verbs = new Verbs(runtime);
        List<String> jvmm = new ArrayList<>(List.of("env", Verbs.RUNTIME_DIR_ENV + "=" + runtime));
        jvmm.addAll(guest.jvmmCommand(
                overlay,
                2,
                "1G",
                "user,hostloopback=on,resolver=" + dns.address().getHostString() + ":"
                        + dns.address().getPort() + ",hostfwd=tcp:127.0.0.1:" + sshPort + "-:22"));
        // Unix-socket paths are short (108 bytes): the vsock's lies in a folder of its own under /tmp.
        Path vsockDir = Files.createTempDirectory(Path.of("/tmp"), "jvmm-vsock");
        Path uds = vsockDir.resolve("v.sock");
        jvmm.addAll(jvmm.indexOf("run") + 1, List.of("--name", NAME, "--vsock", "cid=" + GUEST_CID + ",uds=" + uds));
        String jvmmLog;
        Path snapshot = dir.resolve("debian.snap"), cloneDisk = dir.resolve("clone.qcow2");
        SavedCounter saved;
        try (dns;
                Terminal term = Terminal.start(dir, jvmm)) {
            long t0 = System.nanoTime();
            assertTrue(
                    term.awaitLog(DebianGuest.LOGIN_PROMPT, BOOT),
                    "no login prompt within " + BOOT + ":\n" + term.log());
            System.out.println("login prompt after " + (System.nanoTime() - t0) / 1_000_000 + " ms");
            phases.end("jvmm run to the login prompt");

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

            phases.end("ssh, systemd's state, the RTC alarm, the download");
            vsockBothWays(uds, sshPort);
            phases.end("vsock both ways");
            verbsOnTheRunningGuest(verbs, overlay, sshPort);
            phases.end("the verbs");

            // The serial console by hand: log in as root (no password there), ask, read the answer off the screen.
            term.type("root");
            assertTrue(term.awaitScreen("root@jvmm-debian:~#", Duration.ofMinutes(3)), term.screen());
            term.type("uname -a");
            assertTrue(term.awaitScreen("Linux jvmm-debian 6.1", Duration.ofMinutes(1)), term.screen());
            phases.end("the console login");

            // jvmm save with that shell on the console and a counter running; jvmm restore in a new process, on the
            // same terminal. The shutdown below is the restored machine's. (A whole Linux reboot was checked here
            // too; it cost a third boot, which the emulated machine's time could not afford: reboot.c checks the
            // reset with a small guest.)
            List<String> jvmmMain = jvmm.subList(0, jvmm.indexOf("run"));
            saved = saveWithCounterRunning(term, verbs, sshPort, snapshot, overlay, cloneDisk);
            phases.end("the counter started, jvmm save, the disk copied");
            long restoring = System.nanoTime();
            term.runAgain(plus(jvmmMain, "restore", snapshot.toString(), "--name", NAME));
            checkRestored(term, verbs, sshPort, saved, restoring);
            phases.end("jvmm restore, checked");

            // jvmm shutdown presses the power button (of the restored machine) and waits: systemd shuts down
            // cleanly, ACPI S5 ends the run with 0, and the VM is gone for the verbs.
            Verbs.Result shutdown = verbs.jvmm("shutdown", "--timeout", "" + BOOT.toSeconds(), NAME);
            assertEquals(0, shutdown.code(), shutdown + "\n" + term.log());
            assertEquals(NAME + " shut down\n", shutdown.out());
            assertTrue(term.awaitLog("jvmm-exit=", Duration.ofMinutes(2)), "jvmm did not end:\n" + term.log());
            assertTrue(term.log().contains("reboot: Power down"), term.log());
            assertTrue(term.log().contains("jvmm-exit=0"), term.log());
            jvmmLog = term.wholeLog();
            Verbs.Result gone = verbs.jvmm("info", NAME);
            assertEquals(1, gone.code(), gone.toString());
            assertTrue(gone.err().contains("no VM named '" + NAME + "' is running"), gone.toString());
            assertFalse(verbs.jvmm("list").out().contains(NAME), "listed after its end");
            phases.end("jvmm shutdown to the power-off");
            // Nothing of the JVM's or a library's on the console's terminal.
            for (String noise : List.of("sun.misc.Unsafe", "io.netty", "SLF4J", "WARNING: A "))
                assertFalse(jvmmLog.contains(noise), noise + " on the console:\n" + jvmmLog);
            System.out.println(jvmmLog);
        }
        assertImageClean(overlay, dir);
        phases.end("the disk checked");

        // The second clone from the same file, on the disk as it was saved: it carries on from the same point.
        long restoring = System.nanoTime();
        try (Terminal clone = Terminal.start(
                dir.resolve("clone"),
                plus(
                        jvmm.subList(0, jvmm.indexOf("run")),
                        "restore",
                        snapshot.toString(),
                        "--name",
                        NAME,
                        "--disk-path",
                        "vda=" + cloneDisk))) {
            checkRestored(clone, verbs, sshPort, saved, restoring);
            Verbs.Result shutdown = verbs.jvmm("shutdown", "--timeout", "" + BOOT.toSeconds(), NAME);
            assertEquals(0, shutdown.code(), shutdown + "\n" + clone.log());
            assertTrue(clone.awaitLog("jvmm-exit=0", Duration.ofMinutes(2)), "the clone did not end:\n" + clone.log());
        }
        phases.end("the second clone restored, checked and shut down");
        assertImageClean(cloneDisk, dir);
        phases.end("its disk checked");

        // The oracle: QEMU boots the same kernel, initramfs and image in this same place. A suspicious line that
        // both print is the kernel's (or the emulated CPU's); one only jvmm's boot prints is jvmm's to fix.
        String qemuLog = qemuBootLog(dir);
        phases.end("QEMU's boot to login (the oracle)");
        Set<String> onlyJvmm = new TreeSet<>(suspicious(untilLogin(jvmmLog)));
        onlyJvmm.removeAll(suspicious(untilLogin(qemuLog)));
        System.out.println("suspicious lines QEMU prints too: " + suspicious(qemuLog));
        System.out.println("phases:\n" + phases.all());
        assertEquals(Set.of(), onlyJvmm, "boot log lines only jvmm's boot prints (QEMU's log:\n" + qemuLog + ")");
        KvmHost.checked(
                "DebianGuestKvmTest",
                "Debian to login through jvmm run --name in tmux, ssh, a download, list, info with its counters,"
                        + " suspend and resume, a console login, jvmm save and restore (twice, two clones),"
                        + " jvmm shutdown to a clean power-off, clean file systems, and no"
                        + " suspicious boot-log line that QEMU does not print too");
    }

    /**
     * Linux's own virtio-vsock driver against jvmm's device and Firecracker's host-side convention, both ways: the
     * guest connects to the host's port 5000 (a Unix socket at {@code uds_5000}), and the host connects to the guest's
     * port 5001 through {@code CONNECT 5001} on {@code uds}. The guest side is Perl (in the image's perl-base), with
     * AF_VSOCK (40) and its sockaddr_vm by number.
     */
    private static void vsockBothWays(Path uds, int sshPort) throws Exception {
        String vm = "my $vm = sub { pack('S S L L C x3', 40, 0, $_[1], $_[0], 0) };";
        String connect = "use Socket; " + vm + " socket(my $s, 40, SOCK_STREAM, 0) or die \"socket: $!\";"
                + " connect($s, $vm->(2, 5000)) or die \"connect: $!\"; syswrite($s, \"hello-from-guest\\n\");"
                + " print scalar <$s>;";
        String listen = "use Socket; " + vm + " socket(my $l, 40, SOCK_STREAM, 0) or die \"socket: $!\";"
                + " bind($l, $vm->(0xFFFFFFFF, 5001)) or die \"bind: $!\"; listen($l, 1) or die \"listen: $!\";"
                + " open(my $r, '>', '/tmp/vsock-ready'); close($r); accept(my $c, $l) or die \"accept: $!\";"
                + " my $line = <$c>; syswrite($c, \"guest got: $line\");";
        String script = "echo %s | base64 -d > /tmp/%s.pl";
        ssh(
                sshPort,
                String.format(script, b64(connect), "connect") + " && " + String.format(script, b64(listen), "listen"));

        try (ServerSocketChannel host = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            host.bind(UnixDomainSocketAddress.of(uds + "_5000"));
            CompletableFuture<String> served = CompletableFuture.supplyAsync(() -> {
                try (SocketChannel c = host.accept()) {
                    BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c)));
                    String line = in.readLine();
                    c.write(ByteBuffer.wrap(("host got: " + line + "\n").getBytes(StandardCharsets.UTF_8)));
                    return line;
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            String reply = ssh(sshPort, "perl /tmp/connect.pl");
            assertEquals("hello-from-guest", served.get(1, TimeUnit.MINUTES));
            assertEquals("host got: hello-from-guest\n", reply);
        }

        ssh(
                sshPort,
                "setsid -f perl /tmp/listen.pl </dev/null >/tmp/listen.log 2>&1;"
                        + " for i in $(seq 100); do [ -e /tmp/vsock-ready ] && break; sleep 0.1; done;"
                        + " test -e /tmp/vsock-ready");
        try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(uds))) {
            c.write(ByteBuffer.wrap("CONNECT 5001\n".getBytes(StandardCharsets.UTF_8)));
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c)));
            String ok = in.readLine();
            assertTrue(ok != null && ok.matches("OK \\d+"), "the answer to CONNECT 5001: " + ok);
            c.write(ByteBuffer.wrap("hello-from-host\n".getBytes(StandardCharsets.UTF_8)));
            assertEquals("guest got: hello-from-host", in.readLine());
        }
    }

    /** Prints each phase's time as it ends, and all of them with the last one. */
    private static final class PhaseClock {
        private final List<String> done = new ArrayList<>();
        private long start = System.nanoTime();

        void restart() {
            done.clear();
            start = System.nanoTime();
        }

        void end(String phase) {
            long now = System.nanoTime();
            done.add(String.format("%7.1f s  %s", (now - start) / 1e9, phase));
            System.out.println("phase: " + done.getLast());
            start = now;
        }

        String all() {
            return String.join("\n", done);
        }
    }

    private static String b64(String s) {
        return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * The verbs as a user runs them on the VM while it runs: {@code list} shows it; {@code info} shows its size, disk
     * and NIC and counters that moved (exits, virtio requests, disk latencies, the ssh and download connections);
     * {@code suspend} stops the guest (an ssh connection gets no answer), {@code resume} brings it back (ssh answers
     * again, and the guest's clock moved about as far as the host's).
     */
    private static void verbsOnTheRunningGuest(Verbs verbs, Path overlay, int sshPort) throws Exception {
        long t0 = System.nanoTime();
        // info first: it waits up to 30 s for the VM's first API answer, which in the emulated machine (the VM's JVM
        // 20-40x slower, its HTTP classes not loaded yet) took longer than list's 5 s for each VM it lists.
        Verbs.Result info = verbs.jvmm("info", NAME);
        Verbs.Result list = verbs.jvmm("list");
        assertEquals(0, list.code(), list.toString());
        assertTrue(
                list.out()
                        .lines()
                        .anyMatch(l -> List.of(l.split("\\s+")).containsAll(List.of(NAME, "Running", "2", "1024"))),
                list.toString());
        assertEquals(0, info.code(), info.toString());
        for (String part : List.of(
                "State:    Running\n",
                "vCPUs:    2\n",
                "Memory:   1024 MiB\n",
                "  vda  " + overlay + "  read-write  pci",
                "  user  pci\n",
                "      read latency: p50 ",
                "      user network: tcp ")) assertTrue(info.out().contains(part), part + " in:\n" + info.out());
        JsonNode metrics = new ObjectMapper()
                .readTree(verbs.jvmm("info", "--json", NAME).out())
                .get("metrics");
        long exits = 0;
        for (JsonNode e : metrics.get("vcpu_exits")) exits += e.get("count").asLong();
        assertTrue(exits > 0, metrics.toString());
        JsonNode vda = metrics.get("block").get("vda");
        assertTrue(vda.get("reads").asLong() > 0 && vda.get("writes").asLong() > 0, vda.toString());
        JsonNode reads = vda.get("read_agg");
        assertTrue(
                0 < reads.get("p50_us").asLong()
                        && reads.get("p50_us").asLong() <= reads.get("p90_us").asLong()
                        && reads.get("p90_us").asLong() <= reads.get("p99_us").asLong()
                        && reads.get("p99_us").asLong() <= reads.get("max_us").asLong(),
                vda.toString());
        assertTrue(vda.get("write_agg").get("max_us").asLong() > 0, vda.toString());
        JsonNode net0 = metrics.get("net").get("net0");
        assertTrue(net0.get("rx_frames").asLong() > 0 && net0.get("tx_frames").asLong() > 0, net0.toString());
        JsonNode flows = net0.get("user_net");
        // ssh's connections through hostfwd and curl's to 10.0.2.2; the 4 MiB came from the host; DNS was UDP.
        assertTrue(flows.get("tcp_opened").asLong() >= 5, flows.toString());
        assertTrue(flows.get("tcp_rx_bytes").asLong() >= 4 << 20, flows.toString());
        assertTrue(flows.get("udp_flows_opened").asLong() >= 1, flows.toString());

        double guestBefore = Double.parseDouble(ssh(sshPort, "date +%s.%N").strip());
        long hostBefore = System.nanoTime();
        Verbs.Result suspend = verbs.jvmm("suspend", NAME);
        assertEquals(0, suspend.code(), suspend.toString());
        assertEquals(NAME + " suspended\n", suspend.out());
        assertTrue(verbs.jvmm("info", NAME).out().contains("State:    Paused\n"));
        Process stalled = new ProcessBuilder(sshCommand(sshPort, "true"))
                .redirectErrorStream(true)
                .start();
        try {
            assertFalse(stalled.waitFor(5, TimeUnit.SECONDS), "ssh reached a suspended guest");
        } finally {
            stalled.destroyForcibly();
        }
        Verbs.Result resume = verbs.jvmm("resume", NAME);
        assertEquals(0, resume.code(), resume.toString());
        assertEquals(NAME + " resumed\n", resume.out());
        double guestAfter = Double.parseDouble(ssh(sshPort, "date +%s.%N").strip());
        double hostSeconds = (System.nanoTime() - hostBefore) / 1e9, guestSeconds = guestAfter - guestBefore;
        assertTrue(
                guestSeconds > 0 && Math.abs(guestSeconds - hostSeconds) < 30,
                "the guest's clock moved " + guestSeconds + " s over a suspend and resume of " + hostSeconds
                        + " s on the host");
        System.out.println("verbs on the running guest: " + (System.nanoTime() - t0) / 1_000_000 + " ms (guest clock "
                + guestSeconds + " s, host " + hostSeconds + " s)\n" + info.out());
    }

    /** The guest's clock shortly before it was saved, and the host's then. */
    private record SavedCounter(double guestClock, long hostNanos) {}

    /**
     * Starts a counter in the guest (a shell loop holding it in memory and appending each value to a file), lets it
     * count, and saves the VM with {@code jvmm save}, which stops it: its run ends on the terminal. The disk as it
     * was saved is copied for a second clone.
     */
    private static SavedCounter saveWithCounterRunning(
            Terminal term, Verbs verbs, int sshPort, Path snapshot, Path overlay, Path cloneDisk) throws Exception {
        ssh(
                sshPort,
                "nohup setsid sh -c 'i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); echo $i >> /root/counter.log;"
                        + " sleep 0.2; done' </dev/null >/dev/null 2>&1 &");
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        while (counts(ssh(sshPort, "cat /root/counter.log")).size() < 5) {
            assertTrue(System.nanoTime() < deadline, "the guest's counter did not count");
            Thread.sleep(1000);
        }
        double guestClock = Double.parseDouble(ssh(sshPort, "date +%s.%N").strip());
        long hostNanos = System.nanoTime();
        Verbs.Result save = verbs.jvmm("save", NAME, snapshot.toString());
        assertEquals(0, save.code(), save.toString());
        assertTrue(save.out().contains(NAME + " saved to " + snapshot), save.toString());
        assertTrue(term.awaitLog("jvmm-exit=", Duration.ofMinutes(2)), "jvmm run did not end:\n" + term.log());
        // The run ends as saved (exit 0), saying where the guest lives on
        assertTrue(term.log().contains("jvmm: saved to " + snapshot + " and stopped"), term.log());
        assertTrue(term.awaitLog("jvmm-exit=0", Duration.ofSeconds(10)), "jvmm run's exit:\n" + term.log());
        // The counter's file is in the saved page cache; what reached the disk by then is in the overlay.
        Files.copy(overlay, cloneDisk);
        return new SavedCounter(guestClock, hostNanos);
    }

    /**
     * The guest that {@code jvmm restore} runs on the terminal: once the VM answers the verbs, its console's shell
     * answers, a new ssh connection works, the counter carries on from where it was (every value once, no reset),
     * and its clock carries on from the saved one (behind the host's by the time it spent saved, as after any VMM's
     * restore).
     */
    private static void checkRestored(Terminal term, Verbs verbs, int sshPort, SavedCounter saved, long restoring)
            throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(5).toNanos();
        while (verbs.jvmm("info", NAME).code() != 0) {
            assertTrue(System.nanoTime() < deadline, "the restored VM did not answer jvmm info:\n" + term.log());
            assertFalse(term.log().contains("jvmm-exit="), "jvmm restore ended:\n" + term.log());
            Thread.sleep(1000);
        }
        term.type("echo restored-$((6*7))");
        assertTrue(term.awaitScreen("restored-42", Duration.ofMinutes(2)), "the console's shell:\n" + term.screen());
        System.out.println(
                "console answered " + (System.nanoTime() - restoring) / 1_000_000 + " ms after jvmm restore began");
        awaitSsh(sshPort);
        List<Long> first = counts(ssh(sshPort, "cat /root/counter.log"));
        Thread.sleep(2000);
        List<Long> counts = counts(ssh(sshPort, "cat /root/counter.log"));
        for (int i = 0; i < counts.size(); i++)
            assertEquals(i + 1, counts.get(i), "the counter's values, each once and in order: " + counts);
        assertTrue(counts.size() > first.size(), "the counter runs on after the restore: " + first + " then " + counts);
        double guestClock = Double.parseDouble(ssh(sshPort, "date +%s.%N").strip());
        double hostSeconds = (System.nanoTime() - saved.hostNanos()) / 1e9;
        assertTrue(
                guestClock > saved.guestClock() && guestClock - saved.guestClock() < hostSeconds + 30,
                "the guest's clock went from " + saved.guestClock() + " to " + guestClock + " over " + hostSeconds
                        + " s on the host");
        System.out.println("restored: counter at " + counts.size() + ", guest clock +"
                + (guestClock - saved.guestClock()) + " s over " + hostSeconds + " s on the host");
    }

    private static List<String> plus(List<String> command, String... args) {
        List<String> out = new ArrayList<>(command);
        out.addAll(List.of(args));
        return out;
    }

    private static List<Long> counts(String file) {
        List<Long> out = new ArrayList<>();
        for (String l : file.strip().split("\n")) if (!l.isBlank()) out.add(Long.parseLong(l.strip()));
        return out;
    }

    /** qcow2's metadata and the ext4 file system in it (offline: the VM has ended), both without an error. */
    private static void assertImageClean(Path image, Path dir) throws Exception {
        String check = run(List.of("qemu-img", "check", image.toString()));
        assertTrue(check.contains("No errors were found on the image."), check);
        Path raw = dir.resolve(image.getFileName() + ".raw");
        run(List.of("qemu-img", "convert", "-O", "raw", image.toString(), raw.toString()));
        try {
            run(List.of("e2fsck", "-f", "-n", raw.toString()));
        } finally {
            Files.deleteIfExists(raw);
        }
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

    /**
     * A tmux session running a command on a terminal, its whole output logged to a file (pipe-pane); {@link #log}
     * is the output of the command it runs now ({@link #runAgain} starts another once the first has ended).
     */
    private static final class Terminal implements AutoCloseable {
        private final String session;
        private final Path logFile;
        private volatile int from;

        private Terminal(String session, Path logFile) {
            this.session = session;
            this.logFile = logFile;
        }

        static Terminal start(Path dir, List<String> command) throws IOException, InterruptedException {
            String session = "jvmm-test-" + Long.toHexString(System.nanoTime());
            Files.createDirectories(dir);
            Path log = dir.resolve("terminal.log");
            Files.createFile(log);
            run(List.of(
                    "tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", "bash --norc --noprofile"));
            Terminal t = new Terminal(session, log);
            run(List.of("tmux", "pipe-pane", "-t", session, "-o", "cat >> " + quote(log.toString())));
            t.runAgain(command);
            return t;
        }

        /** Runs a command on the terminal's shell; from here on {@link #log} is its output. */
        void runAgain(List<String> command) throws IOException, InterruptedException {
            from = wholeLog().length();
            run(List.of("tmux", "clear-history", "-t", session));
            StringBuilder line = new StringBuilder();
            for (String arg : command) line.append(quote(arg)).append(' ');
            type(line + "; echo jvmm''-exit=$?"); // quoted apart, so that the echoed command line does not match
        }

        void type(String text) throws IOException, InterruptedException {
            run(List.of("tmux", "send-keys", "-t", session, "-l", text));
            run(List.of("tmux", "send-keys", "-t", session, "Enter"));
        }

        String screen() throws IOException, InterruptedException {
            return run(List.of("tmux", "capture-pane", "-p", "-t", session));
        }

        /** The output of the command run last. */
        String log() throws IOException {
            return wholeLog().substring(from);
        }

        /** Everything the terminal showed, from its first command on. */
        String wholeLog() throws IOException {
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
     * QEMU's boot log to login, kept beside the image under a key of everything that shapes it: the kernel, initramfs
     * and image (each by size and modification time: debian-image.sh writes new ones), QEMU's version, the CPU it
     * runs on and its command line. So the oracle boots once per image and machine (2-4 minutes in the emulated
     * machine) and again whenever any of those changes.
     */
    private static String qemuBootLog(Path dir) throws Exception {
        StringBuilder key = new StringBuilder(String.join(" ", qemuOracleCommand(Path.of("OVERLAY"), Path.of("LOG"))));
        for (Path f : List.of(guest.kernel(), guest.initrd(), guest.disk()))
            key.append('\n')
                    .append(f)
                    .append(' ')
                    .append(Files.size(f))
                    .append(' ')
                    .append(Files.getLastModifiedTime(f));
        key.append('\n').append(run(List.of("qemu-system-x86_64", "--version")));
        // The CPU QEMU gives its guest is the host's (-cpu host): its model and feature flags.
        Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                .filter(l -> l.startsWith("model name") || l.startsWith("flags"))
                .limit(2)
                .forEach(l -> key.append('\n').append(l));
        String hash = HexFormat.of()
                .formatHex(MessageDigest.getInstance("SHA-256")
                        .digest(key.toString().getBytes(StandardCharsets.UTF_8)))
                .substring(0, 16);
        Path kept = guest.folder().resolve("qemu-boot-" + hash + ".log");
        if (Files.exists(kept)) {
            System.out.println("QEMU's boot log for this image, kernel, QEMU and CPU, recorded before: " + kept);
            return Files.readString(kept, StandardCharsets.ISO_8859_1);
        }
        String log = qemuBootToLogin(dir);
        Path tmp = Files.createTempFile(guest.folder(), ".qemu-boot", ".tmp");
        Files.writeString(tmp, log, StandardCharsets.ISO_8859_1);
        Files.move(tmp, kept, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        return log;
    }

    /** QEMU with KVM, q35, the host's CPU model: the same kernel, initramfs and image to login, its console to a file. */
    private static List<String> qemuOracleCommand(Path overlay, Path log) {
        return guest.qemuCommand(
                "qemu-system-x86_64",
                overlay,
                2,
                "1G",
                List.of("-monitor", "none", "-serial", "file:" + log, "-no-reboot"));
    }

    /** QEMU's boot of the same kernel, initramfs and image (an overlay of its own) to login. */
    private static String qemuBootToLogin(Path dir) throws IOException, InterruptedException {
        Path overlay = guest.overlay(dir.resolve("qemu.qcow2")), log = dir.resolve("qemu-console.log");
        Process q = new ProcessBuilder(qemuOracleCommand(overlay, log))
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
