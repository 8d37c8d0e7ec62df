package dev.jvmm.microvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.agent.DebianKernel;
import dev.jvmm.agent.ExecResult;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Random;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A micro-VM on Debian's stock kernel with the agent's initramfs: {@code uname -r} through the agent, a file copied
 * in and back, a web server in the guest reached through a forwarded host port, and a power-off through the agent. On a kvm_pvm host, where Linux stops in early boot (HOST.md),
 * it checks what gets that far: the kernel starts with the micro-VM's command line and finds the initramfs.
 */
@RequiresKvm
@Tag("slow")
class MicroVmKvmTest {
    /** The whole boot takes seconds with hardware virtualisation; the bound only catches one that never ends. */
    private static final Duration BOOT = Duration.ofMinutes(5);
    /** kvm_pvm: the early log in 42-49 s on this project's machines (LinuxBootKvmTest). */
    private static final Duration EARLY_LOG = Duration.ofSeconds(120);

    private static DebianKernel debian;

    @BeforeAll
    static void fetchKernel() throws Exception {
        try {
            debian = DebianKernel.resolve();
            debian.kernel();
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("Debian's kernel could not be fetched: " + e.getMessage());
        }
    }

    @Test
    void unameCopyInOutAndPowerOff(@TempDir Path dir) throws Exception {
        if (KvmHost.emulatesGuestKernel()) {
            // The early console (the serial console proper starts later than kvm_pvm gets); cmpxchg16b is one of the
            // instructions its emulator lacks (LinuxBootKvmTest hides it too).
            try (MicroVm vm = MicroVm.builder()
                    .kernel(debian)
                    .cmdline("ignore_loglevel earlyprintk=serial")
                    .cpuFeatures("-cx16")
                    .forwardPort(8080)
                    .launch()) {
                // Host port 0 asked: the one chosen is reported, and listens.
                int port = vm.hostPort(8080);
                assertTrue(port > 0);
                try (java.net.Socket s = new java.net.Socket(java.net.InetAddress.getLoopbackAddress(), port)) {
                    assertTrue(s.isConnected());
                }
                // The space: the line arrives a few characters at a time, and the release must be whole.
                MatchResult version = vm.awaitConsole(Pattern.compile("Linux version (\\S+) "), EARLY_LOG);
                assertEquals(debian.release(), version.group(1));
                vm.awaitConsole(Pattern.compile("Command line: " + Pattern.quote(MicroVm.BASE_CMDLINE)), EARLY_LOG);
                vm.awaitConsole(Pattern.compile("RAMDISK: \\[mem "), EARLY_LOG);
            }
            KvmHost.checked(
                    "unameCopyInOutAndPowerOff",
                    "the kernel's start with the micro-VM's command line and initramfs, and a forwarded host port");
            return;
        }
        byte[] data = new byte[(3 << 20) + 777];
        new Random(3).nextBytes(data);
        Path in = Files.write(dir.resolve("in.bin"), data);
        Path back = dir.resolve("back.bin");
        long t0 = System.nanoTime();
        MicroVm vm = MicroVm.builder()
                .kernel(debian)
                .forwardPort(8080)
                .startTimeout(BOOT)
                .start();
        ExitStatus status;
        try (vm) {
            ExecResult uname = vm.exec("uname", "-r");
            long firstExecMs = (System.nanoTime() - t0) / 1_000_000;
            assertEquals(0, uname.exitCode(), uname.stderr());
            assertEquals(debian.release() + "\n", uname.stdout());
            System.out.println("agent answered after "
                    + vm.startupTime().orElseThrow().toMillis() + " ms from the machine's start; uname -r answered "
                    + firstExecMs + " ms after builder.start()");

            vm.copyIn(in, "/tmp/sub/in.bin");
            ExecResult sum = vm.exec("sha256sum", "/tmp/sub/in.bin");
            assertEquals(sha256(data) + "  /tmp/sub/in.bin\n", sum.stdout(), "the guest sees the bytes sent");
            vm.copyOut("/tmp/sub/in.bin", back);
            assertArrayEquals(data, Files.readAllBytes(back));

            ExecResult both = vm.exec("sh", "-c", "echo to-out; echo to-err >&2; exit 4");
            assertEquals(4, both.exitCode());
            assertEquals("to-out\n", both.stdout());
            assertEquals("to-err\n", both.stderr());

            // The forwarded port: a web server in the guest (busybox httpd on 8080), fetched from the host's port.
            ExecResult served = vm.exec(
                    "sh",
                    "-c",
                    "mkdir -p /tmp/www && echo served-by-the-guest > /tmp/www/index.html"
                            + " && httpd -p 8080 -h /tmp/www");
            assertEquals(0, served.exitCode(), served.stderr());
            HttpResponse<String> page;
            try (HttpClient http = HttpClient.newHttpClient()) {
                page = http.send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + vm.hostPort(8080) + "/index.html"))
                                .timeout(Duration.ofMinutes(1))
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
            }
            assertEquals(200, page.statusCode());
            assertEquals("served-by-the-guest\n", page.body());
        } finally {
            status = vm.machine().vm().exitStatus().orElse(null);
        }
        assertInstanceOf(ExitStatus.PowerOff.class, status, "close() powered the guest off through the agent");
        KvmHost.checked(
                "unameCopyInOutAndPowerOff",
                "uname -r, a 3 MiB copy in and out, a guest web server through a forwarded port, and a power-off");
    }

    private static String sha256(byte[] data) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }
}
