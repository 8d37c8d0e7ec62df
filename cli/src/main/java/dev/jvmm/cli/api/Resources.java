package dev.jvmm.cli.api;

import dev.jvmm.boot.Machine;
import dev.jvmm.boot.MachineConfig;
import dev.jvmm.boot.MachineConfig.DiskConfig;
import dev.jvmm.boot.MachineConfig.NicConfig;
import dev.jvmm.cli.api.Bodies.BootSource;
import dev.jvmm.cli.api.Bodies.Drive;
import dev.jvmm.cli.api.Bodies.MachineConfiguration;
import dev.jvmm.cli.api.Bodies.NetworkInterface;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetConfigException;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import dev.jvmm.devices.virtio.vsock.VirtioVsock;
import dev.jvmm.devices.vsock.UnixSocketBackend;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.UnaryOperator;

/**
 * The microVM's configuration before InstanceStart, as Firecracker's pre-boot requests build it: an immutable value
 * that each accepted request replaces whole, so a refused request changes nothing and readers never see half of an
 * update. Every {@code with...} method checks its input completely (required fields, what jvmm supports, that host
 * files exist) before it returns the new value.
 */
record Resources(
        Optional<BootSource> bootSource,
        MachineConfiguration machine,
        List<Drive> drives,
        List<Nic> nics,
        Optional<Bodies.Logger> logger,
        Optional<Bodies.Metrics> metrics,
        Optional<Bodies.Vsock> vsock) {
    /** Firecracker's defaults: one vCPU, 128 MiB. */
    static final MachineConfiguration DEFAULT_MACHINE = new MachineConfiguration(1, 128L, false, false, null, "None");

    static final Resources DEFAULT = new Resources(
            Optional.empty(),
            DEFAULT_MACHINE,
            List.of(),
            List.of(),
            Optional.empty(),
            Optional.empty(),
            Optional.empty());
    /** Bounds what a client can make jvmm keep; a PC has far fewer device slots anyway. */
    static final int MAX_DRIVES = 64, MAX_NICS = 64;

    /** A NIC as sent and as jvmm will build it. */
    record Nic(NetworkInterface body, NicConfig config) {}

    Resources {
        drives = List.copyOf(drives);
        nics = List.copyOf(nics);
    }

    Resources withBootSource(BootSource b) {
        required(b.kernelImagePath(), "kernel_image_path");
        readable("Boot source error: the kernel file", b.kernelImagePath());
        if (b.initrdPath() != null) readable("Boot source error: the initrd file", b.initrdPath());
        if (b.bootArgs() != null && b.bootArgs().indexOf('\0') >= 0)
            throw ApiException.invalid(
                    "Boot source error: The kernel command line is invalid: it contains a NUL character");
        return new Resources(Optional.of(b), machine, drives, nics, logger, metrics, vsock);
    }

    /** PUT: the fields not given take their defaults, as in Firecracker. */
    Resources withMachineConfig(MachineConfiguration m) {
        required(m.vcpuCount(), "vcpu_count");
        required(m.memSizeMib(), "mem_size_mib");
        return new Resources(bootSource, checked(m), drives, nics, logger, metrics, vsock);
    }

    /** PATCH: the fields given replace the current ones. */
    Resources patchMachineConfig(MachineConfiguration p) {
        if (p.vcpuCount() == null
                && p.memSizeMib() == null
                && p.smt() == null
                && p.trackDirtyPages() == null
                && p.cpuTemplate() == null
                && p.hugePages() == null) throw new ApiException(ApiException.Kind.BAD_BODY, "Empty PATCH request.");
        MachineConfiguration c = machine;
        MachineConfiguration merged = new MachineConfiguration(
                p.vcpuCount() != null ? p.vcpuCount() : c.vcpuCount(),
                        p.memSizeMib() != null ? p.memSizeMib() : c.memSizeMib(),
                p.smt() != null ? p.smt() : c.smt(),
                        p.trackDirtyPages() != null ? p.trackDirtyPages() : c.trackDirtyPages(),
                p.cpuTemplate() != null ? p.cpuTemplate() : c.cpuTemplate(),
                        p.hugePages() != null ? p.hugePages() : c.hugePages());
        return new Resources(bootSource, checked(merged), drives, nics, logger, metrics, vsock);
    }

    private static MachineConfiguration checked(MachineConfiguration m) {
        if (m.vcpuCount() < 1)
            throw ApiException.invalid("Machine config error: vcpu_count must be at least 1, not " + m.vcpuCount());
        long minMib = Machine.MIN_MEMORY_BYTES >> 20;
        if (m.memSizeMib() < minMib)
            throw ApiException.invalid("Machine config error: mem_size_mib must be at least " + minMib
                    + " (jvmm's smallest machine), not " + m.memSizeMib());
        if (m.memSizeMib() > (1L << 30)) // 1 PiB: beyond any host, and mem_size_mib << 20 must not overflow
        throw ApiException.invalid(
                    "Machine config error: mem_size_mib " + m.memSizeMib() + " is more than any host has");
        if (Boolean.TRUE.equals(m.smt()))
            throw ApiException.invalid(
                    "Machine config error: smt: jvmm gives each vCPU a core of its own; SMT is not supported");
        String template = variant(m.cpuTemplate(), "cpu_template", "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None");
        if (template != null && !template.equals("None"))
            throw ApiException.invalid("Machine config error: cpu_template " + template
                    + ": jvmm has no CPU templates (jvmm run --cpu-features hides CPUID features by name)");
        String huge = variant(m.hugePages(), "huge_pages", "None", "Transparent", "2M");
        if (huge != null && !huge.equals("None"))
            throw ApiException.invalid(
                    "Machine config error: huge_pages " + huge + ": jvmm backs guest memory with 4 KiB pages only");
        // track_dirty_pages serves Firecracker's diff snapshots; jvmm has no snapshots, so it is kept and has no
        // effect.
        return new MachineConfiguration(
                m.vcpuCount(), m.memSizeMib(), false, m.trackDirtyPages() != null && m.trackDirtyPages(), null, "None");
    }

    Resources withDrive(Drive d) {
        required(d.driveId(), "drive_id");
        required(d.isRootDevice(), "is_root_device");
        if (d.socket() != null)
            throw ApiException.invalid("Drive config error: vhost-user drives (socket) are not supported by jvmm");
        limit(d.rateLimiter(), "Drive config error: rate_limiter");
        variant(d.cacheType(), "cache_type", "Unsafe", "Writeback");
        variant(d.ioEngine(), "io_engine", "Sync", "Async");
        if (d.pathOnHost() == null) throw new ApiException(ApiException.Kind.BAD_JSON, "missing field `path_on_host`");
        boolean readOnly = Boolean.TRUE.equals(d.isReadOnly());
        readable("Drive config error: the drive file", d.pathOnHost());
        if (!readOnly && !Files.isWritable(Path.of(d.pathOnHost())))
            throw ApiException.invalid("Drive config error: the drive file " + d.pathOnHost()
                    + " is not writable (set is_read_only to attach it read-only)");
        List<Drive> next = new ArrayList<>(drives);
        int at = indexOf(next, d.driveId());
        boolean otherRoot =
                next.stream().anyMatch(x -> x.isRootDevice() && !x.driveId().equals(d.driveId()));
        if (d.isRootDevice() && otherRoot)
            throw ApiException.invalid("Drive config error: A root block device already exists!");
        if (at >= 0) next.remove(at);
        else if (next.size() >= MAX_DRIVES)
            throw ApiException.invalid("Drive config error: at most " + MAX_DRIVES + " drives");
        // The root device comes first, so that it is /dev/vda (Firecracker's rule).
        if (d.isRootDevice()) next.addFirst(d);
        else if (at >= 0 && at <= next.size()) next.add(at, d);
        else next.add(d);
        return new Resources(bootSource, machine, next, nics, logger, metrics, vsock);
    }

    private static int indexOf(List<Drive> list, String id) {
        for (int i = 0; i < list.size(); i++) if (list.get(i).driveId().equals(id)) return i;
        return -1;
    }

    Resources withNic(NetworkInterface n) {
        required(n.ifaceId(), "iface_id");
        if (n.hostDevName() == null && n.jvmmNet() == null)
            throw new ApiException(ApiException.Kind.BAD_JSON, "missing field `host_dev_name`");
        if (n.hostDevName() != null && n.jvmmNet() != null)
            throw ApiException.invalid("Network config error: give host_dev_name (a TAP device)"
                    + " or jvmm_net (jvmm run's --net syntax), not both");
        if (n.mtu() != null) throw ApiException.invalid("Network config error: mtu is not supported by jvmm");
        limit(n.rxRateLimiter(), "Network config error: rx_rate_limiter");
        limit(n.txRateLimiter(), "Network config error: tx_rate_limiter");
        Optional<MacAddress> mac = Optional.empty();
        if (n.guestMac() != null) {
            try {
                mac = Optional.of(MacAddress.parse(n.guestMac()));
            } catch (IllegalArgumentException e) {
                throw ApiException.invalid("Network config error: guest_mac: " + e.getMessage());
            }
            if (mac.get().isMulticast() || mac.get().value() == 0)
                throw ApiException.invalid("Network config error: guest_mac " + n.guestMac()
                        + " is multicast or zero; use a unicast address such as 06:00:AC:10:00:02");
        }
        NicConfig config = n.hostDevName() != null ? tap(n.hostDevName(), mac) : jvmmNet(n.jvmmNet(), mac);
        MacAddress chosen = config.backend().mac().orElse(null);
        for (Nic other : nics) {
            if (other.body().ifaceId().equals(n.ifaceId())) continue;
            if (chosen != null
                    && other.config().backend().mac().filter(chosen::equals).isPresent())
                throw ApiException.invalid("Network config error: The MAC address is already in use: " + chosen);
        }
        List<Nic> next = new ArrayList<>(nics);
        Nic nic = new Nic(n, config);
        int at = -1;
        for (int i = 0; i < next.size(); i++) if (next.get(i).body().ifaceId().equals(n.ifaceId())) at = i;
        if (at >= 0) next.set(at, nic);
        else if (next.size() >= MAX_NICS)
            throw ApiException.invalid("Network config error: at most " + MAX_NICS + " network interfaces");
        else next.add(nic);
        return new Resources(bootSource, machine, drives, next, logger, metrics, vsock);
    }

    private static NicConfig tap(String name, Optional<MacAddress> mac) {
        if (name.isEmpty() || name.length() > 15 || !name.matches("[A-Za-z0-9_.-]+"))
            throw ApiException.invalid("Network config error: host_dev_name " + name
                    + " must be 1 to 15 letters, digits, '_', '.' or '-'");
        return new NicConfig(new NetConfig.Tap(name, Optional.empty(), mac, 1), DiskConfig.Transport.PCI);
    }

    /**
     * jvmm_net: what jvmm run --net takes (but none), e.g. "user,hostfwd=tcp::2222-:22" or
     * "tap,ifname=tap0,bridge=br0".
     */
    private static NicConfig jvmmNet(String spec, Optional<MacAddress> mac) {
        DiskConfig.Transport transport = DiskConfig.Transport.PCI;
        List<String> rest = new ArrayList<>();
        for (String part : spec.split(",", -1)) {
            if (part.equals("transport=pci")) transport = DiskConfig.Transport.PCI;
            else if (part.equals("transport=mmio")) transport = DiskConfig.Transport.MMIO;
            else if (part.startsWith("transport="))
                throw ApiException.invalid("Network config error: jvmm_net: transport must be pci or mmio");
            else rest.add(part);
        }
        NetConfig backend;
        try {
            backend = NetConfig.parse(String.join(",", rest));
        } catch (NetConfigException e) {
            throw ApiException.invalid(
                    "Network config error: jvmm_net: " + e.getMessage().replaceFirst("^--net ", ""));
        }
        if (mac.isPresent()) {
            if (backend.mac().isPresent())
                throw ApiException.invalid(
                        "Network config error: guest_mac and jvmm_net's mac= both give a MAC address; give one");
            backend = switch (backend) {
                case NetConfig.User u ->
                    new NetConfig.User(
                            u.forwards(), u.guestForwards(), u.restrict(), u.hostLoopback(), mac, u.resolver());
                case NetConfig.Tap t -> new NetConfig.Tap(t.ifname(), t.bridge(), mac, t.queues());
            };
        }
        return new NicConfig(backend, transport);
    }

    /** PUT /vsock: one device, replaced by a later PUT (Firecracker's "creates or updates"). */
    Resources withVsock(Bodies.Vsock v) {
        required(v.guestCid(), "guest_cid");
        required(v.udsPath(), "uds_path");
        String bad = VirtioVsock.cidProblem(v.guestCid());
        if (bad != null) throw ApiException.invalid("Vsock config error: " + bad);
        if (v.udsPath().isEmpty()) throw ApiException.invalid("Vsock config error: uds_path is empty");
        Path p;
        try {
            p = Path.of(v.udsPath());
        } catch (InvalidPathException e) {
            throw ApiException.invalid("Vsock config error: uds_path " + v.udsPath() + ": " + e.getReason());
        }
        String problem = UnixSocketBackend.pathProblem(p);
        if (problem != null) throw ApiException.invalid("Vsock config error: " + problem);
        return new Resources(bootSource, machine, drives, nics, logger, metrics, Optional.of(v));
    }

    Resources withLogger(Bodies.Logger l) {
        return new Resources(bootSource, machine, drives, nics, Optional.of(l), metrics, vsock);
    }

    Resources withMetrics(Bodies.Metrics m) {
        return new Resources(bootSource, machine, drives, nics, logger, Optional.of(m), vsock);
    }

    /**
     * The machine to build. {@code host} adds what the API does not configure (the console, jvmm run's host
     * options); the API's values are set after it. Without a boot source there is nothing to start.
     */
    MachineConfig toMachineConfig(UnaryOperator<MachineConfig.Builder> host) {
        BootSource boot = bootSource.orElseThrow(() -> new ApiException(
                ApiException.Kind.START_FAILED,
                "Start microvm error: Cannot start microvm without kernel configuration."));
        MachineConfig.Builder b = host.apply(MachineConfig.builder(Path.of(boot.kernelImagePath())));
        b.memory(machine.memSizeMib() << 20).cpus(machine.vcpuCount());
        if (boot.initrdPath() != null) b.initrd(Path.of(boot.initrdPath()));
        String cmdline = boot.bootArgs() != null ? boot.bootArgs() : MachineConfig.DEFAULT_LINUX_CMDLINE;
        for (Drive d : drives) {
            boolean readOnly = Boolean.TRUE.equals(d.isReadOnly());
            // Firecracker names the root device on the command line: /dev/vda, it being the first drive, or its
            // partition.
            if (d.isRootDevice())
                cmdline += (d.partuuid() != null ? " root=PARTUUID=" + d.partuuid() : " root=/dev/vda")
                        + (readOnly ? " ro" : " rw");
            Optional<String> serial = d.driveId().length() <= 20 ? Optional.of(d.driveId()) : Optional.empty();
            b.disk(new DiskConfig(
                    Path.of(d.pathOnHost()),
                    readOnly,
                    serial,
                    DiskConfig.Transport.MMIO,
                    DiskConfig.Format.AUTO,
                    DiskConfig.BackingFiles.IMAGE_DIRECTORY,
                    limit(d.rateLimiter(), "rate_limiter")));
        }
        b.cmdline(cmdline.strip());
        // Only the NICs configured: Firecracker gives a guest no network it was not given.
        b.noNetwork();
        for (Nic n : nics) {
            NicConfig c = n.config();
            b.nic(new NicConfig(
                    c.backend(),
                    c.transport(),
                    limit(n.body().rxRateLimiter(), "rx_rate_limiter"),
                    limit(n.body().txRateLimiter(), "tx_rate_limiter")));
        }
        vsock.ifPresent(v -> b.vsock(new MachineConfig.VsockConfig(v.guestCid(), Path.of(v.udsPath()))));
        return b.build();
    }

    /** Firecracker's configuration as GET /vm/config shows it. */
    Bodies.VmConfig toVmConfig() {
        return new Bodies.VmConfig(
                bootSource.orElse(null),
                drives,
                machine,
                nics.stream().map(Nic::body).toList(),
                logger.orElse(null),
                metrics.orElse(null),
                vsock.orElse(null));
    }

    private static void required(Object value, String field) {
        if (value == null) throw new ApiException(ApiException.Kind.BAD_JSON, "missing field `" + field + "`");
    }

    /**
     * A rate limiter body as the devices take it; a bucket of size 0 or refill_time 0 limits nothing, as in
     * Firecracker. {@code what} starts the refusal's message.
     */
    static RateLimiter.Config limit(Bodies.RateLimiter body, String what) {
        if (body == null) return RateLimiter.Config.UNLIMITED;
        return new RateLimiter.Config(
                bucket(body.bandwidth(), what + ": bandwidth"), bucket(body.ops(), what + ": ops"));
    }

    private static Optional<TokenBucket.Config> bucket(Bodies.TokenBucket b, String what) {
        if (b == null) return Optional.empty();
        required(b.size(), "size");
        required(b.refillTime(), "refill_time");
        long burst = b.oneTimeBurst() == null ? 0 : b.oneTimeBurst();
        if (b.size() < 0 || b.refillTime() < 0 || burst < 0)
            throw ApiException.invalid(what + ": size, one_time_burst and refill_time must not be negative");
        if (b.size() == 0 || b.refillTime() == 0) return Optional.empty();
        return Optional.of(new TokenBucket.Config(b.size(), burst, b.refillTime()));
    }

    /** An enum-valued field, checked as serde checks a variant; null stays null. */
    static String variant(String value, String field, String... variants) {
        if (value == null) return null;
        for (String v : variants) if (v.equals(value)) return v;
        throw new ApiException(
                ApiException.Kind.BAD_JSON,
                "unknown variant `" + value + "` for `" + field + "`, expected one of "
                        + String.join(
                                ", ",
                                java.util.Arrays.stream(variants)
                                        .map(v -> "`" + v + "`")
                                        .toList()));
    }

    /** A host file jvmm will open for reading: it must be there and readable now, and the refusal names it. */
    static void readable(String what, String path) {
        if (path.isEmpty()) throw ApiException.invalid(what + " path is empty");
        Path p;
        try {
            p = Path.of(path);
        } catch (InvalidPathException e) {
            throw ApiException.invalid(what + " " + path + " cannot be opened: " + e.getReason());
        }
        if (!Files.exists(p)) throw ApiException.invalid(what + " " + path + " cannot be opened: no such file");
        if (Files.isDirectory(p))
            throw ApiException.invalid(what + " " + path + " cannot be opened: it is a directory");
        if (!Files.isReadable(p))
            throw ApiException.invalid(what + " " + path + " cannot be opened: permission denied");
    }
}
