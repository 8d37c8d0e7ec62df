package dev.jvmm.cli.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jvmm.boot.TestKernels;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The API driving a real machine, in process and without sockets: the api test guest (src/test/guest/api.c) prints
 * a dot every few million TSC ticks, so the test sees whether its vCPU runs, and powers off when its ACPI power
 * button is pressed.
 */
@RequiresKvm
class ApiKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    final ByteArrayOutputStream debugcon = new ByteArrayOutputStream();

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    private ApiResponse call(Api api, String method, String path, String body) {
        return api.handle(ApiRequest.of(method, path, body));
    }

    /** The request succeeds, with 204 No Content. */
    private void assertNoContent(Api api, String method, String path, String body) {
        ApiResponse r = call(api, method, path, body);
        assertEquals(204, r.status(), r.toString());
    }

    private int dots() {
        return (int) debugcon.toString().chars().filter(c -> c == '.').count();
    }

    @Test
    void configureStartPauseResumeFlushAndPowerOff() throws Exception {
        Path kernel = TestKernels.guest("api.elf", dir);
        Path disk = Files.write(dir.resolve("rootfs.img"), new byte[1 << 20]);
        Path metrics = dir.resolve("metrics.json");
        Instance instance = new Instance(new Instance.Host(
                "kvm-test",
                b -> b.debugcon(debugcon).debugExit(0xf4),
                () -> true,
                Instance.Logs.IGNORED,
                Instance.Host.DEFAULT_PAUSE_TIMEOUT));
        Api api = new Api(instance);
        try (instance) {
            // Firecracker's getting-started order (a user-mode NIC instead of its TAP device: no root needed).
            assertNoContent(api, "PUT", "/metrics", "{\"metrics_path\": \"" + metrics + "\"}");
            assertNoContent(
                    api,
                    "PUT",
                    "/boot-source",
                    "{\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"api test\"}");
            assertNoContent(
                    api,
                    "PUT",
                    "/drives/rootfs",
                    "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk
                            + "\", \"is_root_device\": true, \"is_read_only\": false}");
            assertNoContent(
                    api,
                    "PUT",
                    "/network-interfaces/net1",
                    "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", \"jvmm_net\": \"user\"}");
            assertNoContent(api, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
            assertNoContent(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");

            await(() -> dots() >= 3, "the guest to run");
            assertTrue(
                    debugcon.toString().startsWith("api guest: booted, cmdline=api test root=/dev/vda rw"),
                    debugcon.toString());
            assertEquals("Running", instance.info().state());
            assertEquals(
                    400,
                    call(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}")
                            .status(),
                    "once only");
            ApiResponse late = call(api, "PUT", "/boot-source", "{\"kernel_image_path\": \"" + disk + "\"}");
            assertEquals(400, late.status());
            assertTrue(late.body().orElseThrow().contains("not supported after starting the microVM"), late.toString());
            assertEquals(kernel.toString(), instance.vmConfig().bootSource().kernelImagePath(), "unchanged");
            assertEquals(
                    400,
                    call(
                                    api,
                                    "PUT",
                                    "/drives/rootfs",
                                    "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk
                                            + "\", \"is_root_device\": true}")
                            .status());
            assertEquals(
                    400,
                    call(api, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}")
                            .status());

            assertNoContent(api, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            assertEquals(
                    "Paused",
                    new ObjectMapper()
                            .readTree(call(api, "GET", "/", null).body().orElseThrow())
                            .get("state")
                            .asText());
            // debugcon's bytes reach the stream through an output pump thread: let those written before the
            // pause arrive, then nothing more may.
            Thread.sleep(300);
            int held = dots();
            Thread.sleep(500);
            assertEquals(held, dots(), "a paused guest prints nothing");
            assertEquals(
                    204, call(api, "PATCH", "/vm", "{\"state\": \"Paused\"}").status(), "pausing twice is no error");
            assertNoContent(api, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
            await(() -> dots() > held + 2, "the guest to run again");
            assertEquals("Running", instance.info().state());

            assertNoContent(api, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
            List<String> lines = Files.readAllLines(metrics);
            assertEquals(1, lines.size(), lines.toString());
            JsonNode line = new ObjectMapper().readTree(lines.getFirst());
            assertTrue(line.get("vcpu_exits").get("IO").get("count").asLong() > 0, line.toString());
            assertTrue(line.get("net").has("net1"), line.toString());
            assertTrue(line.get("api_server").get("refused").asLong() >= 4, line.toString());
            JsonNode blk = line.get("block").get("rootfs");
            assertEquals(0, blk.get("requests").asLong(), "the guest has no virtio driver: " + blk);
            assertTrue(line.get("net").get("net1").has("rx_bytes"), line.toString());
            assertEquals(0, blk.get("throttled").asLong(), blk.toString());
            for (String agg : List.of("read_agg", "write_agg", "flush_agg"))
                for (String field : List.of("min_us", "max_us", "sum_us", "p50_us", "p90_us", "p99_us"))
                    assertEquals(0, blk.get(agg).get(field).asLong(), agg + "." + field + " of no request: " + blk);
            assertFalse(
                    line.get("net").get("net1").has("user_net"),
                    "a user NIC whose driver never came has no network started to count: " + line);
            assertEquals(0, line.get("net").get("net1").get("tx_throttled").asLong(), line.toString());
            assertEquals(0, line.get("broken_devices").size(), "no device broke: " + line);

            // jvmm's extensions: the VM as the verbs show it, its counters, the reset button and a clean reboot.
            JsonNode vm = new ObjectMapper()
                    .readTree(call(api, "GET", "/jvmm/vm", null).body().orElseThrow());
            assertEquals("kvm-test", vm.get("id").asText());
            assertEquals(ProcessHandle.current().pid(), vm.get("pid").asLong());
            assertEquals(1, vm.get("vcpu_count").asInt());
            assertEquals(64, vm.get("mem_size_mib").asInt());
            assertEquals(disk.toString(), vm.get("disks").get(0).get("path").asText(), vm.toString());
            assertEquals("rootfs", vm.get("disks").get(0).get("id").asText());
            assertEquals(
                    "06:00:ac:10:00:02",
                    vm.get("nics").get(0).get("mac").asText().toLowerCase(),
                    vm.toString());
            assertEquals("user", vm.get("nics").get(0).get("backend").asText());
            assertTrue(vm.get("uptime_ms").asLong() >= 0
                    && vm.get("cmdline").asText().startsWith("api test"));
            JsonNode counters = new ObjectMapper()
                    .readTree(call(api, "GET", "/jvmm/metrics", null).body().orElseThrow());
            assertTrue(counters.get("vcpu_exits").get("IO").get("count").asLong() > 0, counters.toString());
            debugcon.reset();
            assertNoContent(api, "PUT", "/jvmm/actions", "{\"action_type\": \"Reset\"}");
            await(() -> debugcon.toString().contains("api guest: booted"), "the guest to boot again after a reset");
            debugcon.reset();
            assertNoContent(api, "PUT", "/jvmm/actions", "{\"action_type\": \"Reboot\"}");
            await(
                    () -> debugcon.toString().contains("api guest: power button")
                            && debugcon.toString().contains("api guest: booted"),
                    "the guest to power off and boot again");
            await(
                    () -> instance.current() != null
                            && "Running".equals(instance.info().state()),
                    "the new machine");
            assertEquals(2, instance.details().reboots());

            assertNoContent(api, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
            Instance.End end = instance.awaitEnd();
            assertEquals(new ExitStatus.PowerOff(), end.status(), debugcon.toString());
            assertTrue(debugcon.toString().contains("api guest: power button"), debugcon.toString());
            ApiResponse after = call(api, "PATCH", "/vm", "{\"state\": \"Paused\"}");
            assertEquals(400, after.status());
            assertTrue(after.body().orElseThrow().contains("has ended"), after.toString());
        }
        assertEquals(2, Files.readAllLines(metrics).size(), "a last metrics line at the end");
    }

    @Test
    void aGuestsRebootBootsItAgainUnlessTheHostSaysNo() throws Exception {
        Path kernel = TestKernels.guest("reboot.elf", dir);
        int[] asked = {0};
        Instance instance = new Instance(new Instance.Host(
                "reboots",
                b -> b.debugcon(debugcon).debugExit(0xf4),
                () -> ++asked[0] < 3,
                Instance.Logs.IGNORED,
                Instance.Host.DEFAULT_PAUSE_TIMEOUT));
        try (instance) {
            Api api = new Api(instance);
            assertNoContent(api, "PUT", "/boot-source", "{\"kernel_image_path\": \"" + kernel + "\"}");
            assertNoContent(api, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");
            assertNoContent(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
            assertEquals(new ExitStatus.Reset(), instance.awaitEnd().status());
        }
        assertEquals(3, debugcon.toString().split("reboot guest: booted", -1).length - 1, debugcon.toString());
    }
}
