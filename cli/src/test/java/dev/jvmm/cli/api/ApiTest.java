package dev.jvmm.cli.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The API as a function, without sockets or KVM: every endpoint before InstanceStart and every way a request can
 * be refused, each with Firecracker's status and a fault_message that says what is wrong; a refused request
 * changes nothing.
 */
class ApiTest {
    @TempDir
    Path dir;

    Path kernel, disk;
    final List<String> logCalls = new ArrayList<>();
    Api api;

    @BeforeEach
    void setUp() throws Exception {
        kernel = Files.writeString(dir.resolve("vmlinux"), "not really a kernel");
        disk = Files.write(dir.resolve("rootfs.ext4"), new byte[4096]);
        Instance.Logs logs =
                (file, level) -> logCalls.add(file.map(Path::toString).orElse("-") + " " + level.orElse("-"));
        api = new Api(new Instance(
                new Instance.Host("test-vm", b -> b, () -> true, logs, Instance.Host.DEFAULT_PAUSE_TIMEOUT)));
    }

    private ApiResponse call(String method, String path, String body) {
        return api.handle(ApiRequest.of(method, path, body));
    }

    private JsonNode json(ApiResponse r) throws Exception {
        return new ObjectMapper().readTree(r.body().orElseThrow());
    }

    /** The request is refused: a 400 whose fault_message contains every part given. */
    private void assertRefused(String method, String path, String body, String... parts) throws Exception {
        ApiResponse r = call(method, path, body);
        assertEquals(400, r.status(), r.toString());
        String m = json(r).get("fault_message").asText();
        for (String p : parts) assertTrue(m.contains(p), "'" + p + "' in: " + m);
    }

    private static void assertNoContent(ApiResponse r) {
        assertEquals(204, r.status(), r.toString());
        assertTrue(r.body().isEmpty());
    }

    @Test
    void instanceInfoBeforeStart() throws Exception {
        ApiResponse r = call("GET", "/", null);
        assertEquals(200, r.status());
        JsonNode info = json(r);
        assertEquals("test-vm", info.get("id").asText());
        assertEquals("Not started", info.get("state").asText());
        assertEquals("jvmm", info.get("app_name").asText());
        assertFalse(info.get("vmm_version").asText().isEmpty());
        assertEquals(200, call("GET", "/version", null).status());
    }

    @Test
    void machineConfigHasFirecrackersDefaultsAndPutReplacesItWhole() throws Exception {
        JsonNode c = json(call("GET", "/machine-config", null));
        assertEquals(1, c.get("vcpu_count").asInt());
        assertEquals(128, c.get("mem_size_mib").asInt());
        assertFalse(c.get("smt").asBoolean());
        assertNoContent(call(
                "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"track_dirty_pages\": true}"));
        c = json(call("GET", "/machine-config", null));
        assertEquals(2, c.get("vcpu_count").asInt());
        assertEquals(256, c.get("mem_size_mib").asInt());
        assertTrue(c.get("track_dirty_pages").asBoolean());
        assertNoContent(call("PATCH", "/machine-config", "{\"mem_size_mib\": 512}"));
        c = json(call("GET", "/machine-config", null));
        assertEquals(2, c.get("vcpu_count").asInt(), "PATCH keeps what it does not name");
        assertEquals(512, c.get("mem_size_mib").asInt());
        assertNoContent(call("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"));
        assertFalse(
                json(call("GET", "/machine-config", null))
                        .get("track_dirty_pages")
                        .asBoolean(),
                "PUT resets what it does not name");
    }

    @Test
    void machineConfigRefusals() throws Exception {
        assertRefused("PUT", "/machine-config", "{\"mem_size_mib\": 256}", "missing field `vcpu_count`");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 0, \"mem_size_mib\": 256}",
                "vcpu_count must be at least 1, not 0");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 1, \"mem_size_mib\": 8}",
                "mem_size_mib must be at least 16",
                "not 8");
        assertRefused(
                "PUT", "/machine-config", "{\"vcpu_count\": 1.5, \"mem_size_mib\": 256}", "`vcpu_count`", "integer");
        assertRefused(
                "PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 256}", "`vcpu_count`", "integer");
        assertRefused("PUT", "/machine-config", "{\"vcpu_count\": 99999999999, \"mem_size_mib\": 256}", "out of range");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": true}",
                "SMT is not supported");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"huge_pages\": \"2M\"}",
                "huge_pages 2M");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"huge_pages\": \"1G\"}",
                "unknown variant `1G`",
                "`None`, `Transparent`, `2M`");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"T2\"}",
                "no CPU templates");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"vcpus\": 3}",
                "unknown field `vcpus`");
        assertRefused("PATCH", "/machine-config", "{}", "Empty PATCH request.");
        assertRefused("PATCH", "/machine-config", "{\"vcpu_count\": 0}", "vcpu_count must be at least 1");
        JsonNode c = json(call("GET", "/machine-config", null));
        assertEquals(1, c.get("vcpu_count").asInt(), "no refused request changed anything");
        assertEquals(128, c.get("mem_size_mib").asInt());
    }

    @Test
    void bootSource() throws Exception {
        assertRefused(
                "PUT",
                "/boot-source",
                "{\"kernel_image_path\": \"" + dir.resolve("missing") + "\"}",
                "Boot source error",
                dir.resolve("missing").toString(),
                "no such file");
        assertRefused("PUT", "/boot-source", "{\"kernel_image_path\": \"" + dir + "\"}", "is a directory");
        assertRefused(
                "PUT",
                "/boot-source",
                "{\"kernel_image_path\": \"" + kernel + "\", \"initrd_path\": \"/no/initrd\"}",
                "the initrd file /no/initrd cannot be opened");
        assertRefused("PUT", "/boot-source", "{\"boot_args\": \"console=ttyS0\"}", "missing field `kernel_image_path`");
        assertRefused(
                "PUT",
                "/boot-source",
                "{\"kernel_image_path\": \"" + kernel + "\", \"bootargs\": \"x\"}",
                "unknown field `bootargs`",
                "`boot_args`, `initrd_path`, `kernel_image_path`");
        assertNoContent(call(
                "PUT",
                "/boot-source",
                "{\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"console=ttyS0 reboot=k\"}"));
        JsonNode c = json(call("GET", "/vm/config", null));
        assertEquals(
                kernel.toString(), c.get("boot-source").get("kernel_image_path").asText());
        assertEquals(
                "console=ttyS0 reboot=k", c.get("boot-source").get("boot_args").asText());
    }

    @Test
    void drives() throws Exception {
        String root = "{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk
                + "\", \"is_root_device\": true, \"is_read_only\": false}";
        assertNoContent(call("PUT", "/drives/rootfs", root));
        assertNoContent(call("PUT", "/drives/rootfs", root)); // the same id again updates it
        Path data = Files.write(dir.resolve("data.img"), new byte[4096]);
        assertNoContent(call(
                "PUT",
                "/drives/data_1",
                "{\"drive_id\": \"data_1\", \"path_on_host\": \"" + data
                        + "\", \"is_root_device\": false, \"is_read_only\": true,"
                        + " \"cache_type\": \"Writeback\", \"io_engine\": \"Sync\"}"));
        assertRefused(
                "PUT",
                "/drives/other",
                "{\"drive_id\": \"other\", \"path_on_host\": \"" + data + "\", \"is_root_device\": true}",
                "A root block device already exists!");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"y\", \"path_on_host\": \"" + data + "\", \"is_root_device\": false}",
                "The id from the path does not match the id from the body!");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"x\", \"path_on_host\": \"/no/such.img\", \"is_root_device\": false}",
                "Drive config error",
                "/no/such.img",
                "no such file");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"x\", \"path_on_host\": \"" + data + "\"}",
                "missing field `is_root_device`");
        assertRefused(
                "PUT", "/drives/x", "{\"drive_id\": \"x\", \"is_root_device\": false}", "missing field `path_on_host`");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"x\", \"socket\": \"/run/vhost.sock\", \"is_root_device\": false}",
                "vhost-user");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"x\", \"path_on_host\": \"" + data
                        + "\", \"is_root_device\": false,"
                        + " \"rate_limiter\": {\"ops\": {\"size\": -1, \"refill_time\": 1}}}",
                "rate_limiter: ops: size, one_time_burst and refill_time must not be negative");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"x\", \"path_on_host\": \"" + data
                        + "\", \"is_root_device\": false,"
                        + " \"rate_limiter\": {\"bandwidth\": {\"size\": 1000}}}",
                "missing field `refill_time`");
        assertRefused(
                "PUT",
                "/drives/x",
                "{\"drive_id\": \"x\", \"path_on_host\": \"" + data
                        + "\", \"is_root_device\": false, \"io_engine\": \"Turbo\"}",
                "unknown variant `Turbo`");
        assertRefused(
                "PUT",
                "/drives/",
                "{\"drive_id\": \"\", \"path_on_host\": \"" + data + "\", \"is_root_device\": false}",
                "The ID cannot be empty.");
        assertRefused(
                "PUT",
                "/drives/a-b",
                "{\"drive_id\": \"a-b\", \"path_on_host\": \"" + data + "\", \"is_root_device\": false}",
                "API Resource IDs can only contain alphanumeric characters and underscores.");
        JsonNode drives = json(call("GET", "/vm/config", null)).get("drives");
        assertEquals(2, drives.size(), drives.toString());
        assertEquals("rootfs", drives.get(0).get("drive_id").asText(), "the root device first");
    }

    @Test
    void aReadOnlyFileCannotBeAWritableDrive() throws Exception {
        Path ro = Files.write(dir.resolve("ro.img"), new byte[4096]);
        assertTrue(ro.toFile().setWritable(false, false));
        if (Files.isWritable(ro)) return; // root may write anyway: nothing to refuse
        assertRefused(
                "PUT",
                "/drives/ro",
                "{\"drive_id\": \"ro\", \"path_on_host\": \"" + ro + "\", \"is_root_device\": false}",
                "is not writable",
                "is_read_only");
    }

    @Test
    void networkInterfaces() throws Exception {
        assertNoContent(call(
                "PUT",
                "/network-interfaces/net1",
                "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", \"host_dev_name\": \"tap0\"}"));
        assertNoContent(call(
                "PUT",
                "/network-interfaces/net2",
                "{\"iface_id\": \"net2\", \"jvmm_net\": \"user,hostfwd=tcp:127.0.0.1:0-:22\"}"));
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net3\", \"guest_mac\": \"06:00:AC:10:00:02\", \"host_dev_name\": \"tap3\"}",
                "The MAC address is already in use: 06:00:ac:10:00:02");
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net4\", \"host_dev_name\": \"tap3\"}",
                "The id from the path [net3] does not match the id from the body [net4]!");
        assertRefused("PUT", "/network-interfaces/net3", "{\"iface_id\": \"net3\"}", "missing field `host_dev_name`");
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net3\", \"host_dev_name\": \"tap3\", \"jvmm_net\": \"user\"}",
                "not both");
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net3\", \"host_dev_name\": \"a,b\"}",
                "host_dev_name a,b");
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net3\", \"host_dev_name\": \"tap3\", \"guest_mac\": \"zz\"}",
                "guest_mac");
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net3\", \"jvmm_net\": \"user,bogus=1\"}",
                "jvmm_net",
                "bogus");
        assertRefused(
                "PUT",
                "/network-interfaces/net3",
                "{\"iface_id\": \"net3\", \"host_dev_name\": \"tap3\", \"mtu\": 9000}",
                "mtu");
        JsonNode nics = json(call("GET", "/vm/config", null)).get("network-interfaces");
        assertEquals(2, nics.size(), nics.toString());
    }

    @Test
    void vsock() throws Exception {
        Path uds = dir.resolve("v.sock");
        assertNoContent(call("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"" + uds + "\"}"));
        assertNoContent(call(
                "PUT",
                "/vsock",
                "{\"vsock_id\": \"vsock0\", \"guest_cid\": 4294967294, \"uds_path\": \"" + uds + "\"}"));
        assertEquals(4294967294L, api.instance().vmConfig().vsock().guestCid(), "a later PUT replaces the device");
        for (String cid : new String[] {"0", "1", "2", "4294967295"})
            assertRefused(
                    "PUT",
                    "/vsock",
                    "{\"guest_cid\": " + cid + ", \"uds_path\": \"" + uds + "\"}",
                    "Vsock config error: guest CID " + cid + " must be from 3 to 4294967294");
        assertRefused("PUT", "/vsock", "{\"uds_path\": \"" + uds + "\"}", "missing field `guest_cid`");
        assertRefused("PUT", "/vsock", "{\"guest_cid\": 3}", "missing field `uds_path`");
        assertRefused("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"" + disk + "\"}", "exists");
        assertRefused("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"" + uds + "\", \"x\": 1}", "unknown field");
        var machine = Resources.DEFAULT
                .withBootSource(new Bodies.BootSource(kernel.toString(), null, null))
                .withVsock(new Bodies.Vsock(5L, uds.toString(), null))
                .toMachineConfig(b -> b);
        assertEquals(
                new dev.jvmm.boot.MachineConfig.VsockConfig(5, uds),
                machine.vsock().orElseThrow());
    }

    @Test
    void loggerAndMetrics() throws Exception {
        Path log = dir.resolve("fc.log"), metrics = dir.resolve("metrics.json");
        assertNoContent(call(
                "PUT",
                "/logger",
                "{\"log_path\": \"" + log
                        + "\", \"level\": \"Debug\", \"show_level\": true, \"show_log_origin\": true}"));
        assertEquals(List.of(log + " debug"), logCalls);
        assertNoContent(call("PUT", "/logger", "{\"level\": \"Warning\"}"));
        assertEquals(List.of(log + " debug", "- warn"), logCalls);
        assertRefused("PUT", "/logger", "{\"level\": \"Loud\"}", "unknown variant `Loud`");
        assertRefused("PUT", "/logger", "{\"level\": \"Info\", \"module\": \"api_server\"}", "module filtering");
        assertNoContent(call("PUT", "/metrics", "{\"metrics_path\": \"" + metrics + "\"}"));
        assertTrue(Files.exists(metrics));
        assertRefused(
                "PUT",
                "/metrics",
                "{\"metrics_path\": \"" + metrics + "\"}",
                "Reinitialization of metrics not allowed.");
        assertRefused(
                "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", "not supported before starting the microVM");
    }

    @Test
    void actionsAndVmStateBeforeStart() throws Exception {
        assertRefused(
                "PUT",
                "/actions",
                "{\"action_type\": \"InstanceStart\"}",
                "Cannot start microvm without kernel configuration.");
        assertRefused(
                "PUT",
                "/actions",
                "{\"action_type\": \"SendCtrlAltDel\"}",
                "not supported before starting the microVM");
        assertRefused(
                "PUT",
                "/actions",
                "{\"action_type\": \"Reboot\"}",
                "unknown variant `Reboot`",
                "`FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`");
        assertRefused("PUT", "/actions", "{}", "missing field `action_type`");
        assertRefused("PATCH", "/vm", "{\"state\": \"Paused\"}", "not supported before starting the microVM");
        assertRefused("PATCH", "/vm", "{\"state\": \"Frozen\"}", "unknown variant `Frozen`");
        // A kernel jvmm cannot boot: InstanceStart fails and the instance is as it was, still configurable.
        assertNoContent(call("PUT", "/boot-source", "{\"kernel_image_path\": \"" + kernel + "\"}"));
        assertRefused(
                "PUT",
                "/actions",
                "{\"action_type\": \"InstanceStart\"}",
                "Start microvm error",
                "is not a kernel jvmm can boot");
        assertEquals("Not started", json(call("GET", "/", null)).get("state").asText());
        assertNoContent(call("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"));
    }

    @Test
    void jvmmExtensionsBeforeStart() throws Exception {
        JsonNode vm = json(call("GET", "/jvmm/vm", null));
        assertEquals("test-vm", vm.get("id").asText());
        assertEquals("Not started", vm.get("state").asText());
        assertEquals(ProcessHandle.current().pid(), vm.get("pid").asLong());
        assertEquals(1, vm.get("vcpu_count").asInt(), "Firecracker's default size");
        assertEquals(128, vm.get("mem_size_mib").asInt());
        assertFalse(vm.has("uptime_ms") || vm.has("kernel") || vm.has("console_socket"), vm.toString());
        assertTrue(vm.get("disks").isEmpty() && vm.get("nics").isEmpty());
        JsonNode metrics = json(call("GET", "/jvmm/metrics", null));
        assertEquals(1, metrics.get("api_server").get("requests").asLong(), metrics.toString());
        assertFalse(metrics.has("vcpu_exits"), "no machine, no exits");

        assertRefused(
                "PUT", "/jvmm/actions", "{\"action_type\": \"Reset\"}", "not supported before starting the microVM");
        assertRefused(
                "PUT", "/jvmm/actions", "{\"action_type\": \"Reboot\"}", "not supported before starting the microVM");
        assertRefused(
                "PUT",
                "/jvmm/actions",
                "{\"action_type\": \"Halt\"}",
                "unknown variant `Halt`",
                "`Reboot`, `Reset`, `Stop`");
        assertRefused("PUT", "/jvmm/actions", "{}", "missing field `action_type`");
        assertRefused("PUT", "/jvmm/nope", "{}", "Invalid request method and/or path: PUT /jvmm/nope.");
        assertRefused("GET", "/jvmm", null, "Invalid request method and/or path");
        assertTrue(api.instance().ended().isEmpty());
        assertNoContent(call("PUT", "/jvmm/actions", "{\"action_type\": \"Stop\"}"));
        assertTrue(api.instance().ended().isPresent(), "a stop before the start ends the run");
    }

    @Test
    void pathsMethodsAndBodies() throws Exception {
        assertRefused("GET", "/nowhere", null, "Invalid request method and/or path: GET /nowhere.");
        assertRefused(
                "POST",
                "/actions",
                "{\"action_type\": \"InstanceStart\"}",
                "Invalid request method and/or path: POST /actions.");
        assertRefused("DELETE", "/drives/rootfs", null, "Invalid request method and/or path: DELETE /drives/rootfs.");
        assertRefused(
                "PUT",
                "/boot-source/extra",
                "{\"kernel_image_path\": \"" + kernel + "\"}",
                "Invalid request method and/or path");
        assertRefused("PUT", "/machine-config", null, "Empty PUT request.");
        assertRefused("PATCH", "/vm", null, "Empty PATCH request.");
        assertRefused("GET", "/", "{}", "GET request cannot have a body.");
        assertRefused("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64", "line 1");
        assertRefused(
                "PUT",
                "/machine-config",
                "{\"vcpu_count\": 1, \"vcpu_count\": 2, \"mem_size_mib\": 64}",
                "Duplicate field 'vcpu_count'");
        assertRefused("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64} {}", "trailing characters");
        assertRefused("PUT", "/machine-config", "null", "expected a JSON object");
        assertRefused("PUT", "/machine-config", "[1, 2]", "expected an object");
        assertRefused("PUT", "/machine-config", "\u0000\u00ff garbage", "line 1");
        assertEquals(200, call("GET", "/machine-config/", null).status(), "a trailing slash is the same path");
        assertEquals("Not started", json(call("GET", "/", null)).get("state").asText());
    }

    @Test
    void aConfigurationFileUsesTheSameBodiesUnderTheirResourceNames() throws Exception {
        Instance instance = api.instance();
        instance.configure(Api.readConfig(
                ("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"quiet\"},"
                                + " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk
                                + "\", \"is_root_device\": true, \"is_read_only\": true,"
                                + " \"rate_limiter\": {\"bandwidth\": {\"size\": 1048576, \"refill_time\": 100},"
                                + " \"ops\": {\"size\": 0, \"refill_time\": 100}}}],"
                                + " \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 96},"
                                + " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"jvmm_net\": \"user\"}]}")
                        .getBytes()));
        var config = instance.vmConfig();
        assertEquals(2, config.machineConfig().vcpuCount());
        assertEquals("rootfs", config.drives().getFirst().driveId());
        var machine = new Resources(
                        Optional.of(config.bootSource()),
                        config.machineConfig(),
                        config.drives(),
                        List.of(),
                        Optional.empty(),
                        Optional.empty(),
                        Optional.empty())
                .toMachineConfig(b -> b);
        assertEquals(
                "quiet root=/dev/vda ro",
                machine.cmdline().orElseThrow(),
                "Firecracker names the root drive on the command line");
        assertEquals(96L << 20, machine.memoryBytes());
        assertTrue(machine.disks().getFirst().readOnly());
        assertEquals(
                new RateLimiter.Config(Optional.of(new TokenBucket.Config(1 << 20, 0, 100)), Optional.empty()),
                machine.disks().getFirst().rateLimit(),
                "1 MiB per 100 ms; an ops bucket of size 0 limits nothing, as in Firecracker");
        assertTrue(machine.nics().orElseThrow().isEmpty(), "no NIC unless configured, as in Firecracker");
        try {
            Api.readConfig("{\"boot-source\": {}, \"balloon\": {\"amount_mib\": 3}}".getBytes());
            throw new AssertionError("balloon accepted");
        } catch (ApiException e) {
            assertTrue(e.getMessage().contains("unknown field `balloon`"), e.getMessage());
        }
    }
}
