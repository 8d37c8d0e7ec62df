package dev.jvmm.boot.api;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Map;

/**
 * The JSON bodies of Firecracker's API (its swagger definitions), field for field. Absent fields are null here;
 * {@link Resources} checks what is required and what jvmm supports, so these records only carry what was sent.
 */
public final class Bodies {
    private Bodies() {}

    /** {@code PUT /boot-source}. */
    public record BootSource(
            @JsonProperty("kernel_image_path") String kernelImagePath,
            @JsonProperty("initrd_path") String initrdPath,
            @JsonProperty("boot_args") String bootArgs) {}

    /** {@code PUT|PATCH|GET /machine-config}. */
    public record MachineConfiguration(
            @JsonProperty("vcpu_count") Integer vcpuCount,
            @JsonProperty("mem_size_mib") Long memSizeMib,
            @JsonProperty("smt") Boolean smt,
            @JsonProperty("track_dirty_pages") Boolean trackDirtyPages,
            @JsonProperty("cpu_template") String cpuTemplate,
            @JsonProperty("huge_pages") String hugePages) {}

    /** {@code PUT /drives/{drive_id}}; {@code socket} (vhost-user) and {@code rate_limiter} are refused. */
    public record Drive(
            @JsonProperty("drive_id") String driveId,
            @JsonProperty("path_on_host") String pathOnHost,
            @JsonProperty("is_root_device") Boolean isRootDevice,
            @JsonProperty("is_read_only") Boolean isReadOnly,
            @JsonProperty("partuuid") String partuuid,
            @JsonProperty("cache_type") String cacheType,
            @JsonProperty("io_engine") String ioEngine,
            @JsonProperty("rate_limiter") JsonNode rateLimiter,
            @JsonProperty("socket") String socket) {}

    /**
     * {@code PUT /network-interfaces/{iface_id}}: a TAP device by {@code host_dev_name}, or, a jvmm extension,
     * any backend in {@code --net} syntax by {@code jvmm_net} (e.g. {@code "user,hostfwd=tcp::2222-:22"}).
     */
    public record NetworkInterface(
            @JsonProperty("iface_id") String ifaceId,
            @JsonProperty("host_dev_name") String hostDevName,
            @JsonProperty("guest_mac") String guestMac,
            @JsonProperty("mtu") Integer mtu,
            @JsonProperty("rx_rate_limiter") JsonNode rxRateLimiter,
            @JsonProperty("tx_rate_limiter") JsonNode txRateLimiter,
            @JsonProperty("jvmm_net") String jvmmNet) {}

    /** {@code PUT /actions}. */
    public record InstanceActionInfo(
            @JsonProperty("action_type") String actionType) {}

    /** {@code PATCH /vm}. */
    public record Vm(@JsonProperty("state") String state) {}

    /** {@code PUT /metrics}. */
    public record Metrics(
            @JsonProperty("metrics_path") String metricsPath,
            @JsonProperty("emit_id") Boolean emitId,
            @JsonProperty("properties") Map<String, String> properties) {}

    /** {@code PUT /logger}; {@code show_level} and {@code show_log_origin} are accepted and change nothing. */
    public record Logger(
            @JsonProperty("log_path") String logPath,
            @JsonProperty("level") String level,
            @JsonProperty("show_level") Boolean showLevel,
            @JsonProperty("show_log_origin") Boolean showLogOrigin,
            @JsonProperty("module") String module) {}

    /** {@code GET /}. */
    public record InstanceInfo(
            @JsonProperty("id") String id,
            @JsonProperty("state") String state,
            @JsonProperty("vmm_version") String vmmVersion,
            @JsonProperty("app_name") String appName) {}

    /** {@code GET /version}. */
    public record Version(
            @JsonProperty("firecracker_version") String firecrackerVersion) {}

    /** {@code --config-file} and {@code GET /vm/config}: the keys jvmm supports of Firecracker's configuration. */
    public record VmConfig(
            @JsonProperty("boot-source") BootSource bootSource,
            @JsonProperty("drives") List<Drive> drives,
            @JsonProperty("machine-config") MachineConfiguration machineConfig,
            @JsonProperty("network-interfaces") List<NetworkInterface> networkInterfaces,
            @JsonProperty("logger") Logger logger,
            @JsonProperty("metrics") Metrics metrics) {}

    // jvmm's extensions, under /jvmm/ (Firecracker has none of these).

    /** {@code PUT /jvmm/actions}: {@code Stop} (at once, as destroy), {@code Reset} (the reset button), {@code Reboot}. */
    public record JvmmAction(@JsonProperty("action_type") String actionType) {}

    /** A disk of {@code GET /jvmm/vm}: its name (the drive_id, or vda, vdb, ...), file and how it is attached. */
    public record JvmmDisk(
            @JsonProperty("id") String id,
            @JsonProperty("path") String path,
            @JsonProperty("read_only") boolean readOnly,
            @JsonProperty("transport") String transport,
            @JsonProperty("serial") String serial) {}

    /** A NIC of {@code GET /jvmm/vm}: its name (the iface_id, or net0, net1, ...), MAC address and backend. */
    public record JvmmNic(
            @JsonProperty("id") String id,
            @JsonProperty("mac") String mac,
            @JsonProperty("backend") String backend,
            @JsonProperty("transport") String transport) {}

    /**
     * {@code GET /jvmm/vm}: the VM as jvmm's verbs show it. Before the start, only the state, the process and the
     * configured size; {@code uptime_ms} counts from the start (reboots included).
     */
    public record JvmmVm(
            @JsonProperty("id") String id,
            @JsonProperty("state") String state,
            @JsonProperty("pid") long pid,
            @JsonProperty("vcpu_count") Integer vcpuCount,
            @JsonProperty("mem_size_mib") Long memSizeMib,
            @JsonProperty("started_at") String startedAt,
            @JsonProperty("uptime_ms") Long uptimeMs,
            @JsonProperty("reboots") long reboots,
            @JsonProperty("kernel") String kernel,
            @JsonProperty("cmdline") String cmdline,
            @JsonProperty("disks") List<JvmmDisk> disks,
            @JsonProperty("nics") List<JvmmNic> nics,
            @JsonProperty("console_socket") String consoleSocket,
            @JsonProperty("log_path") String logPath) {}
}
