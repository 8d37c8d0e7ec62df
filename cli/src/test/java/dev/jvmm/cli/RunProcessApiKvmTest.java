package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.TestKernels;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real {@code jvmm run} process driven as Firecracker's getting-started guide drives Firecracker: curl on its API
 * socket, then the guest's power button; and a --config-file boot that SIGTERM shuts down. The guest is the api test
 * guest (src/test/guest/api.c).
 */
@RequiresKvm
class RunProcessApiKvmTest {
    /** Inside the emulated machine (scripts/with-kvm) a JVM takes tens of seconds to start, more on a loaded host. */
    private static final Duration WAIT =
            System.getenv("JVMM_EMULATED") != null ? Duration.ofMinutes(5) : Duration.ofSeconds(60);

    @TempDir
    Path dir;

    Process jvmm;

    @AfterEach
    void kill() {
        if (jvmm != null) jvmm.destroyForcibly();
    }

    private Process start(String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("run"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(KvmHost.jvmmProcess(cmd))
                .redirectOutput(dir.resolve("stdout").toFile())
                .redirectError(dir.resolve("stderr").toFile())
                .start();
    }

    private String stderr() throws IOException {
        return Files.readString(dir.resolve("stderr"));
    }

    private void await(java.util.function.BooleanSupplier condition, String what) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline || !jvmm.isAlive() && !condition.getAsBoolean())
                throw new AssertionError("no " + what + "; stderr:\n" + stderr());
            Thread.sleep(50);
        }
    }

    private long dots(Path debugcon) {
        try {
            return Files.exists(debugcon)
                    ? Files.readString(debugcon).chars().filter(c -> c == '.').count()
                    : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    /** curl --unix-socket: the status and the body. */
    private String[] curl(Path socket, String method, String path, String data) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(
                "curl",
                "-s",
                "-S",
                "--max-time",
                "30",
                "--unix-socket",
                socket.toString(),
                "-X",
                method,
                "-w",
                "\n%{http_code}",
                "http://localhost" + path));
        if (data != null)
            cmd.addAll(
                    List.of("-H", "Accept: application/json", "-H", "Content-Type: application/json", "--data", data));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS));
        int nl = out.lastIndexOf('\n');
        return new String[] {out.substring(nl + 1), out.substring(0, Math.max(nl, 0))};
    }

    private void put(Path socket, String path, String data) throws Exception {
        String[] r = curl(socket, "PUT", path, data);
        assertEquals("204", r[0], path + ": " + r[1]);
    }

    @Test
    void gettingStartedWithCurl() throws Exception {
        Path socket = dir.resolve("firecracker.socket"),
                debugcon = dir.resolve("debugcon.log"),
                log = dir.resolve("fc.log");
        Path kernel = TestKernels.guest("api.elf", dir),
                rootfs = Files.write(dir.resolve("rootfs.ext4"), new byte[1 << 20]);
        jvmm = start(
                "--api-sock",
                socket.toString(),
                "--id",
                "my-vm",
                "--debugcon",
                "file:" + debugcon,
                "--debug-exit",
                "0xf4");
        await(() -> Files.exists(socket), "API socket");
        assertTrue(curl(socket, "GET", "/", null)[1].contains("\"state\":\"Not started\""));

        put(
                socket,
                "/logger",
                "{\"log_path\": \"" + log
                        + "\", \"level\": \"Debug\", \"show_level\": true, \"show_log_origin\": true}");
        put(
                socket,
                "/boot-source",
                "{\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"console=ttyS0 reboot=k panic=1\"}");
        put(
                socket,
                "/drives/rootfs",
                "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + rootfs
                        + "\", \"is_root_device\": true, \"is_read_only\": false}");
        put(
                socket,
                "/network-interfaces/net1",
                "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", \"jvmm_net\": \"user\"}");
        put(socket, "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}");
        put(socket, "/actions", "{\"action_type\": \"InstanceStart\"}");

        String[] info = curl(socket, "GET", "/", null);
        assertEquals("200", info[0]);
        assertTrue(info[1].contains("\"id\":\"my-vm\"") && info[1].contains("\"state\":\"Running\""), info[1]);
        await(() -> dots(debugcon) >= 3, "guest output");
        assertTrue(
                Files.readString(debugcon).contains("cmdline=console=ttyS0 reboot=k panic=1 root=/dev/vda rw"),
                Files.readString(debugcon));

        String[] late = curl(
                socket,
                "PUT",
                "/drives/rootfs",
                "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + rootfs + "\", \"is_root_device\": true}");
        assertEquals("400", late[0]);
        assertTrue(late[1].contains("The requested operation is not supported after starting the microVM."), late[1]);
        put(
                socket,
                "/actions",
                "{\"action_type\": \"FlushMetrics\"}"); // no metrics configured: nothing to write, as in Firecracker

        String[] paused = curl(socket, "PATCH", "/vm", "{\"state\": \"Paused\"}");
        assertEquals("204", paused[0], paused[1]);
        assertTrue(curl(socket, "GET", "/", null)[1].contains("\"state\":\"Paused\""));
        long held = dots(debugcon);
        Thread.sleep(300);
        assertEquals(held, dots(debugcon));
        assertEquals("204", curl(socket, "PATCH", "/vm", "{\"state\": \"Resumed\"}")[0]);
        await(() -> dots(debugcon) > held, "guest output after resuming");

        put(socket, "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
        assertTrue(jvmm.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), "jvmm ends with its guest");
        assertEquals(0, jvmm.exitValue(), stderr());
        assertFalse(Files.exists(socket), "the socket is removed at exit");
        assertTrue(Files.exists(log), "PUT /logger made the log file");
    }

    @Test
    void aConfigFileBootsAtOnceAndSigtermShutsTheGuestDown() throws Exception {
        Path debugcon = dir.resolve("debugcon.log"), kernel = TestKernels.guest("api.elf", dir);
        Path config = Files.writeString(
                dir.resolve("vm.json"),
                "{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"from a file\"},"
                        + " \"drives\": [], \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}");
        jvmm = start("--config-file", config.toString(), "--debugcon", "file:" + debugcon, "--debug-exit", "0xf4");
        await(() -> dots(debugcon) >= 2, "guest output");
        jvmm.destroy(); // SIGTERM
        assertTrue(jvmm.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS));
        assertEquals(0, jvmm.exitValue(), "the guest powered off: " + stderr());
        assertTrue(stderr().contains("pressed the guest's power button"), stderr());
        assertTrue(Files.readString(debugcon).contains("cmdline=from a file"));
    }

    @Test
    void sigtermBeforeInstanceStartEndsTheWaitAndRemovesTheSocket() throws Exception {
        Path socket = dir.resolve("api.sock");
        jvmm = start("--api-sock", socket.toString());
        await(() -> Files.exists(socket), "API socket");
        jvmm.destroy();
        assertTrue(jvmm.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS));
        assertEquals(130, jvmm.exitValue(), stderr());
        assertFalse(Files.exists(socket));
    }
}
