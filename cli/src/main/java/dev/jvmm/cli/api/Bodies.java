package dev.jvmm.cli.api;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;
import java.util.Map;

/**
 * The JSON bodies of Firecracker's API (its swagger definitions), field for field: {@link Json} names them in
 * snake case as Firecracker does, so a field here is named as its JSON key is. Absent fields are null here;
 * {@link Resources} checks what is required and what jvmm supports, so these records only carry what was sent.
 */
public final class Bodies {
    private Bodies() {}

    /** {@code PUT /boot-source}. */
    public record BootSource(String kernelImagePath, String initrdPath, String bootArgs) {}

    /** {@code PUT|PATCH|GET /machine-config}. */
    public record MachineConfiguration(
            Integer vcpuCount,
            Long memSizeMib,
            Boolean smt,
            Boolean trackDirtyPages,
            String cpuTemplate,
            String hugePages) {}

    /** Firecracker's {@code TokenBucket}: size 0 or refill_time 0 means no limit in that dimension. */
    public record TokenBucket(Long size, Long oneTimeBurst, Long refillTime) {}

    /** Firecracker's {@code RateLimiter}: bytes ({@code bandwidth}) and operations ({@code ops}). */
    public record RateLimiter(TokenBucket bandwidth, TokenBucket ops) {}

    /** {@code PUT /drives/{drive_id}}; {@code socket} (vhost-user) is refused. */
    public record Drive(
            String driveId,
            String pathOnHost,
            Boolean isRootDevice,
            Boolean isReadOnly,
            String partuuid,
            String cacheType,
            String ioEngine,
            RateLimiter rateLimiter,
            String socket) {}

    /**
     * {@code PUT /network-interfaces/{iface_id}}: a TAP device by {@code host_dev_name}, or, a jvmm extension,
     * any backend in {@code --net} syntax by {@code jvmm_net} (e.g. {@code "user,hostfwd=tcp::2222-:22"}).
     */
    public record NetworkInterface(
            String ifaceId,
            String hostDevName,
            String guestMac,
            Integer mtu,
            RateLimiter rxRateLimiter,
            RateLimiter txRateLimiter,
            String jvmmNet) {}

    /**
     * {@code PUT /vsock}: the guest's CID and the Unix socket of Firecracker's host side; {@code vsock_id} (deprecated
     * in Firecracker) is accepted and changes nothing.
     */
    public record Vsock(Long guestCid, String udsPath, String vsockId) {}

    /** {@code PUT /actions}. */
    public record InstanceActionInfo(String actionType) {}

    /** {@code PATCH /vm}. */
    public record Vm(String state) {}

    /** {@code PUT /metrics}. */
    public record Metrics(String metricsPath, Boolean emitId, Map<String, String> properties) {}

    /** {@code PUT /logger}; {@code show_level} and {@code show_log_origin} are accepted and change nothing. */
    public record Logger(String logPath, String level, Boolean showLevel, Boolean showLogOrigin, String module) {}

    /**
     * {@code PUT /snapshot/create}. jvmm writes one file holding state and memory (see SnapshotFile):
     * {@code mem_file_path}, when it names another file, becomes a second name (a hard link) of that file.
     */
    public record SnapshotCreateParams(String snapshotType, String snapshotPath, String memFilePath, String version) {}

    /** {@code mem_backend} of {@code PUT /snapshot/load}: only {@code File}. */
    public record MemoryBackend(String backendType, String backendPath) {}

    /**
     * {@code PUT /snapshot/load}, before anything is configured. The memory ({@code mem_backend}, or the older
     * {@code mem_file_path}) must be the snapshot file itself, or another name of it.
     */
    public record SnapshotLoadParams(
            String snapshotPath,
            String memFilePath,
            MemoryBackend memBackend,
            Boolean enableDiffSnapshots,
            Boolean trackDirtyPages,
            Boolean resumeVm) {}

    /** {@code GET /}. */
    public record InstanceInfo(String id, String state, String vmmVersion, String appName) {}

    /** {@code GET /version}. */
    public record Version(String firecrackerVersion) {}

    /** {@code --config-file} and {@code GET /vm/config}: the keys jvmm supports of Firecracker's configuration. */
    public record VmConfig(
            @JsonProperty("boot-source") BootSource bootSource,
            List<Drive> drives,
            @JsonProperty("machine-config") MachineConfiguration machineConfig,
            @JsonProperty("network-interfaces") List<NetworkInterface> networkInterfaces,
            Logger logger,
            Metrics metrics,
            Vsock vsock) {}

    // jvmm's extensions, under /jvmm/ (Firecracker has none of these).

    /**
     * {@code PUT /jvmm/actions}: {@code Stop} (at once, as destroy), {@code Reset} (the reset button), {@code Reboot}.
     */
    public record JvmmAction(String actionType) {}

    /** A disk of {@code GET /jvmm/vm}: its name (the drive_id, or vda, vdb, ...), file and how it is attached. */
    public record JvmmDisk(String id, String path, boolean readOnly, String transport, String serial) {}

    /** A NIC of {@code GET /jvmm/vm}: its name (the iface_id, or net0, net1, ...), MAC address and backend. */
    public record JvmmNic(String id, String mac, String backend, String transport) {}

    /**
     * {@code GET /jvmm/vm}: the VM as jvmm's verbs show it. Before the start, only the state, the process and the
     * configured size; {@code uptime_ms} counts from the start (reboots included).
     */
    public record JvmmVm(
            String id,
            String state,
            long pid,
            Integer vcpuCount,
            Long memSizeMib,
            String startedAt,
            Long uptimeMs,
            long reboots,
            String kernel,
            String cmdline,
            List<JvmmDisk> disks,
            List<JvmmNic> nics,
            String consoleSocket,
            String logPath) {}
}
