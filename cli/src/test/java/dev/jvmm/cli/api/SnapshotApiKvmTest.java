package dev.jvmm.cli.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jvmm.boot.TestKernels;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Firecracker's snapshot endpoints with the api guest (a dot on debugcon every few million TSC ticks): create
 * refused while the VM runs (400, as Firecracker), then written with a second name for the memory file; load
 * refused after boot-specific configuration or with a memory file that is not the snapshot; loaded paused (no dot
 * until resumed), then resumed; and InstanceStart refused after a load.
 */
@RequiresKvm
class SnapshotApiKvmTest {
    private static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    private static ApiResponse call(Api api, String method, String path, String body) {
        return api.handle(ApiRequest.of(method, path, body));
    }

    private static void assertStatus(int status, ApiResponse r, String... parts) throws Exception {
        assertEquals(status, r.status(), r.toString());
        if (parts.length == 0) return;
        String m = new ObjectMapper()
                .readTree(r.body().orElseThrow())
                .get("fault_message")
                .asText();
        for (String p : parts) assertTrue(m.contains(p), "'" + p + "' in: " + m);
    }

    private static Instance instance(ByteArrayOutputStream debugcon) {
        return new Instance(new Instance.Host(
                "snap-test",
                b -> b.debugcon(debugcon).debugExit(0xf4),
                () -> true,
                Instance.Logs.IGNORED,
                Instance.Host.DEFAULT_PAUSE_TIMEOUT));
    }

    private static long dots(ByteArrayOutputStream out) {
        return out.toString().chars().filter(c -> c == '.').count();
    }

    @Test
    void createLoadPausedAndResume() throws Exception {
        Path kernel = TestKernels.guest("api.elf", dir), snap = dir.resolve("vm.snap"), mem = dir.resolve("vm.mem");
        String create = "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"" + snap + "\", \"mem_file_path\": \"" + mem
                + "\"}";
        ByteArrayOutputStream first = new ByteArrayOutputStream();
        Instance a = instance(first);
        Api apiA = new Api(a);
        try (a) {
            assertStatus(400, call(apiA, "PUT", "/snapshot/create", create), "not supported before starting");
            assertStatus(204, call(apiA, "PUT", "/boot-source", "{\"kernel_image_path\": \"" + kernel + "\"}"));
            assertStatus(204, call(apiA, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}"));
            assertStatus(204, call(apiA, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"));
            await(() -> dots(first) >= 2, "the guest to run");
            assertStatus(400, call(apiA, "PUT", "/snapshot/create", create), "must be paused");
            assertStatus(204, call(apiA, "PATCH", "/vm", "{\"state\": \"Paused\"}"));
            assertStatus(
                    400, call(apiA, "PUT", "/snapshot/create", create.replace("Full", "Diff")), "Full snapshots only");
            assertStatus(204, call(apiA, "PUT", "/snapshot/create", create));
            assertTrue(Files.isSameFile(snap, mem), "the memory file is another name of the snapshot");
            assertEquals("Paused", a.info().state(), "create leaves the VM paused");
        }

        String load = "{\"snapshot_path\": \"" + snap + "\", \"mem_backend\": {\"backend_type\": \"File\","
                + " \"backend_path\": \"" + mem + "\"}}";
        Instance configured = instance(new ByteArrayOutputStream());
        Api apiC = new Api(configured);
        try (configured) {
            assertStatus(204, call(apiC, "PUT", "/boot-source", "{\"kernel_image_path\": \"" + kernel + "\"}"));
            assertStatus(400, call(apiC, "PUT", "/snapshot/load", load), "after configuring boot-specific resources");
        }

        ByteArrayOutputStream second = new ByteArrayOutputStream();
        Instance b = instance(second);
        Api apiB = new Api(b);
        try (b) {
            Path other = Files.write(dir.resolve("other.mem"), new byte[4096]);
            assertStatus(
                    400,
                    call(apiB, "PUT", "/snapshot/load", load.replace(mem.toString(), other.toString())),
                    "one file");
            assertStatus(
                    400,
                    call(apiB, "PUT", "/snapshot/load", load.replace("\"File\"", "\"Uffd\"")),
                    "Uffd is not supported");
            assertStatus(204, call(apiB, "PUT", "/snapshot/load", load));
            assertEquals("Paused", b.info().state(), "loaded without resume_vm: paused");
            Thread.sleep(500);
            assertEquals(0, dots(second), "not one guest instruction before the resume");
            assertStatus(204, call(apiB, "PATCH", "/vm", "{\"state\": \"Resumed\"}"));
            await(() -> dots(second) >= 2, "the restored guest to run");
            assertStatus(400, call(apiB, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"));
            assertStatus(400, call(apiB, "PUT", "/snapshot/load", load), "not supported after starting");
        }
    }
}
