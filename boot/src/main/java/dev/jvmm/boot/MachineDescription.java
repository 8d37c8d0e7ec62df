package dev.jvmm.boot;

import dev.jvmm.boot.loader.KernelLoader;
import dev.jvmm.core.snapshot.DeviceState;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * What a snapshot records of the PC around the VM, so that {@link Machine#restore} builds the same one: the
 * {@link MachineConfig} (streams aside: a restore is given its own console), the command line the kernel was
 * started with, each NIC's MAC address as it was chosen, and each disk's identity, which a restore checks before it
 * opens the image. Written in the snapshot format's own encoding (section MACH), versioned like a device's state.
 *
 * @param config  the machine's config; {@code console} and {@code debugcon} are placeholders
 * @param cmdline the command line the kernel got
 * @param disks   each disk's identity, in the order of {@code config.disks()}
 */
public record MachineDescription(MachineConfig config, boolean debugcon, String cmdline, List<DiskIdentity> disks) {
    public static final String ID = "jvmm-machine";
    public static final int VERSION = 1;
    private static final int MAX_PATH = 4096, MAX_TEXT = 65535, MAX_DISKS = 256, MAX_NICS = 256, MAX_FWD = 1024;

    public MachineDescription {
        disks = List.copyOf(disks);
        if (disks.size() != config.disks().size())
            throw new IllegalArgumentException(
                    disks.size() + " identities for " + config.disks().size() + " disks");
    }

    /**
     * A disk image as it was when the snapshot was taken. {@code qcow2}: jvmm itself writes a qcow2 image's
     * metadata as it closes it, so its modification time is not compared; a raw image's is.
     */
    public record DiskIdentity(Path path, long device, long inode, long fileSize, long mtimeNanos, boolean qcow2) {
        static final byte[] QCOW2_MAGIC = {'Q', 'F', 'I', (byte) 0xfb};

        /** The identity of the file at {@code path} now. */
        public static DiskIdentity of(Path path) throws IOException {
            Path abs = path.toAbsolutePath().normalize();
            Map<String, Object> a = Files.readAttributes(abs, "unix:dev,ino,size,lastModifiedTime");
            FileTime mtime = (FileTime) a.get("lastModifiedTime");
            byte[] magic;
            try (InputStream in = Files.newInputStream(abs)) {
                magic = in.readNBytes(4);
            }
            long ns = mtime.to(java.util.concurrent.TimeUnit.NANOSECONDS);
            return new DiskIdentity(
                    abs,
                    (Long) a.get("dev"),
                    (Long) a.get("ino"),
                    (Long) a.get("size"),
                    ns,
                    Arrays.equals(magic, QCOW2_MAGIC));
        }

        /**
         * Why {@code now} (the file found at restore) is not this image, or empty when it is. {@code moved}: the user
         * named the file anew (moved or copied), so only what a copy keeps is compared.
         */
        Optional<String> mismatch(DiskIdentity now, boolean moved) {
            if (now.qcow2 != qcow2)
                return Optional.of(
                        "was a " + (qcow2 ? "qcow2" : "raw") + " image, is now " + (now.qcow2 ? "qcow2" : "raw"));
            if (!moved && (now.device != device || now.inode != inode))
                return Optional.of("is another file than the one saved (device " + device + " inode " + inode
                        + ", now device " + now.device + " inode " + now.inode + ")");
            if (!qcow2 && now.fileSize != fileSize)
                return Optional.of("was " + fileSize + " bytes, is now " + now.fileSize);
            if (!qcow2 && !moved && now.mtimeNanos != mtimeNanos)
                return Optional.of("was modified after the snapshot (its modification time changed)");
            return Optional.empty();
        }
    }

    public DeviceState toState() {
        StateOutput o = new StateOutput();
        MachineConfig c = config;
        o.string(c.kernel().toAbsolutePath().normalize().toString());
        optional(o, c.initrd().map(p -> p.toAbsolutePath().normalize().toString()));
        optional(o, c.cmdline());
        o.string(cmdline);
        o.u64(c.memoryBytes())
                .u32(c.cpus())
                .string(c.cpuFeatures())
                .string(c.bootPath().name());
        o.bool(debugcon);
        o.bool(c.debugExitPort().isPresent()).u16(c.debugExitPort().orElse(0));
        o.u32(c.disks().size());
        for (int i = 0; i < c.disks().size(); i++) {
            MachineConfig.DiskConfig d = c.disks().get(i);
            DiskIdentity id = disks.get(i);
            o.string(id.path().toString()).bool(d.readOnly());
            optional(o, d.serial());
            o.string(d.transport().name())
                    .string(d.format().name())
                    .string(d.backingFiles().name());
            limits(o, d.rateLimit());
            o.u64(id.device())
                    .u64(id.inode())
                    .u64(id.fileSize())
                    .u64(id.mtimeNanos())
                    .bool(id.qcow2());
        }
        o.bool(c.nics().isPresent());
        List<MachineConfig.NicConfig> nics = c.nics().orElse(List.of());
        o.u32(nics.size());
        for (MachineConfig.NicConfig n : nics) {
            switch (n.backend()) {
                case NetConfig.User u -> {
                    o.string("user").bool(u.restrict()).bool(u.hostLoopback());
                    o.u32(u.forwards().size());
                    for (NetConfig.HostForward f : u.forwards()) {
                        o.string(f.protocol().name())
                                .bytes(f.hostAddress().getAddress())
                                .u16(f.hostPort());
                        o.bool(f.guestAddress().isPresent());
                        f.guestAddress().ifPresent(a -> o.bytes(a.getAddress()));
                        o.u16(f.guestPort());
                    }
                    o.u32(u.guestForwards().size());
                    for (NetConfig.GuestForward f : u.guestForwards())
                        o.bytes(f.guestAddress().getAddress())
                                .u16(f.guestPort())
                                .bytes(f.hostAddress().getAddress())
                                .u16(f.hostPort());
                    o.bool(u.resolver().isPresent());
                    u.resolver()
                            .ifPresent(r -> o.bytes(r.getAddress().getAddress()).u16(r.getPort()));
                }
                case NetConfig.Tap t -> {
                    o.string("tap").string(t.ifname());
                    optional(o, t.bridge());
                    o.u16(t.queues());
                }
            }
            o.u64(n.backend().mac().orElseThrow().value()); // the MAC chosen at creation (a TAP's is random)
            o.string(n.transport().name());
            limits(o, n.rxLimit());
            limits(o, n.txLimit());
        }
        o.bool(c.vsock().isPresent());
        c.vsock()
                .ifPresent(v -> o.u64(v.guestCid())
                        .string(v.udsPath().toAbsolutePath().normalize().toString())
                        .string(v.transport().name()));
        return new DeviceState(ID, VERSION, o.toByteArray());
    }

    /** Reads a snapshot's description; the machine's streams are the caller's. */
    public static MachineDescription from(DeviceState state) {
        if (!state.id().equals(ID))
            throw new SnapshotException(
                    SnapshotException.Kind.MACHINE_MISMATCH,
                    "the snapshot describes a '" + state.id() + "' machine, not a jvmm PC");
        if (state.version() > VERSION)
            throw new SnapshotException(
                    SnapshotException.Kind.UNSUPPORTED_VERSION,
                    "the snapshot's machine description is version " + state.version() + "; this jvmm reads up to "
                            + VERSION);
        StateInput in = StateInput.of(state.state(), "the machine description");
        MachineConfig.Builder b = MachineConfig.builder(Path.of(in.string("kernel", MAX_PATH)));
        optional(in, "initrd", MAX_PATH).ifPresent(p -> b.initrd(Path.of(p)));
        optional(in, "command line", MAX_TEXT).ifPresent(b::cmdline);
        String cmdline = in.string("effective command line", MAX_TEXT);
        b.memory(in.u64("memory")).cpus(in.u32("vCPUs")).cpuFeatures(in.string("CPU features", MAX_TEXT));
        b.bootPath(named(in, "boot path", KernelLoader.BootPath::valueOf));
        boolean debugcon = in.bool("debugcon");
        boolean hasExit = in.bool("debug exit");
        int exitPort = in.u16("debug exit port");
        if (hasExit) b.debugExit(exitPort);
        List<DiskIdentity> ids = new ArrayList<>();
        int nDisks = in.count("disks", MAX_DISKS, 8);
        for (int i = 0; i < nDisks; i++) {
            Path path = Path.of(in.string("disk path", MAX_PATH));
            boolean ro = in.bool("disk read-only");
            Optional<String> serial = optional(in, "disk serial", MAX_TEXT);
            var transport = named(in, "disk transport", MachineConfig.DiskConfig.Transport::valueOf);
            var format = named(in, "disk format", MachineConfig.DiskConfig.Format::valueOf);
            var backing = named(in, "disk backing files", MachineConfig.DiskConfig.BackingFiles::valueOf);
            RateLimiter.Config limit = limits(in);
            ids.add(new DiskIdentity(
                    path,
                    in.u64("disk device"),
                    in.u64("disk inode"),
                    in.u64("disk file size"),
                    in.u64("disk modification time"),
                    in.bool("disk is qcow2")));
            b.disk(new MachineConfig.DiskConfig(path, ro, serial, transport, format, backing, limit));
        }
        boolean nicsSet = in.bool("NICs configured");
        int nNics = in.count("NICs", MAX_NICS, 8);
        if (nicsSet) b.noNetwork();
        for (int i = 0; i < nNics; i++) {
            String kind = in.string("NIC backend", 16);
            NetConfig backend;
            switch (kind) {
                case "user" -> {
                    boolean restrict = in.bool("restrict"), loopback = in.bool("host loopback");
                    List<NetConfig.HostForward> fwd = new ArrayList<>();
                    int nf = in.count("host forwards", MAX_FWD, 8);
                    for (int f = 0; f < nf; f++) {
                        var proto = named(in, "forward protocol", NetConfig.Protocol::valueOf);
                        InetAddress host = address(in, "forward host address");
                        int hostPort = in.u16("forward host port");
                        Optional<InetAddress> guest = in.bool("forward guest address set")
                                ? Optional.of(address(in, "forward guest address"))
                                : Optional.empty();
                        fwd.add(new NetConfig.HostForward(proto, host, hostPort, guest, in.u16("forward guest port")));
                    }
                    List<NetConfig.GuestForward> gfwd = new ArrayList<>();
                    int ng = in.count("guest forwards", MAX_FWD, 8);
                    for (int f = 0; f < ng; f++)
                        gfwd.add(new NetConfig.GuestForward(
                                address(in, "guestfwd guest address"), in.u16("guestfwd guest port"),
                                address(in, "guestfwd host address"), in.u16("guestfwd host port")));
                    Optional<InetSocketAddress> resolver = in.bool("resolver set")
                            ? Optional.of(new InetSocketAddress(address(in, "resolver"), in.u16("resolver port")))
                            : Optional.empty();
                    backend = new NetConfig.User(fwd, gfwd, restrict, loopback, Optional.empty(), resolver);
                }
                case "tap" -> {
                    String ifname = in.string("TAP name", 64);
                    Optional<String> bridge = optional(in, "TAP bridge", 64);
                    backend = new NetConfig.Tap(ifname, bridge, Optional.empty(), in.u16("TAP queues"));
                }
                default -> throw corrupt(in, "NIC backend '" + kind + "'");
            }
            long mac = in.u64("NIC MAC address");
            MacAddress m;
            try {
                m = new MacAddress(mac);
            } catch (IllegalArgumentException e) {
                throw corrupt(in, "NIC MAC address 0x" + Long.toHexString(mac));
            }
            backend = withMac(backend, m);
            var transport = named(in, "NIC transport", MachineConfig.DiskConfig.Transport::valueOf);
            b.nic(new MachineConfig.NicConfig(backend, transport, limits(in), limits(in)));
        }
        if (in.bool("vsock")) {
            long cid = in.u64("vsock guest CID");
            Path uds = Path.of(in.string("vsock socket", MAX_PATH));
            var transport = named(in, "vsock transport", MachineConfig.DiskConfig.Transport::valueOf);
            try {
                b.vsock(new MachineConfig.VsockConfig(cid, uds, transport));
            } catch (IllegalArgumentException e) {
                throw corrupt(in, "vsock: " + e.getMessage());
            }
        }
        in.expectEnd();
        return new MachineDescription(b.build(), debugcon, cmdline, ids);
    }

    static NetConfig withMac(NetConfig c, MacAddress mac) {
        return switch (c) {
            case NetConfig.User u ->
                new NetConfig.User(
                        u.forwards(),
                        u.guestForwards(),
                        u.restrict(),
                        u.hostLoopback(),
                        Optional.of(mac),
                        u.resolver());
            case NetConfig.Tap t -> new NetConfig.Tap(t.ifname(), t.bridge(), Optional.of(mac), t.queues());
        };
    }

    private static void optional(StateOutput o, Optional<String> s) {
        o.bool(s.isPresent());
        s.ifPresent(o::string);
    }

    private static Optional<String> optional(StateInput in, String field, int max) {
        return in.bool(field + " set") ? Optional.of(in.string(field, max)) : Optional.empty();
    }

    private static <E> E named(StateInput in, String field, Function<String, E> valueOf) {
        String name = in.string(field, 64);
        try {
            return valueOf.apply(name);
        } catch (IllegalArgumentException e) {
            throw corrupt(in, field + " '" + name + "'");
        }
    }

    private static InetAddress address(StateInput in, String field) {
        byte[] b = in.bytes(field, 16);
        try {
            return InetAddress.getByAddress(b);
        } catch (UnknownHostException e) {
            throw corrupt(in, field + " of " + b.length + " bytes");
        }
    }

    private static void limits(StateOutput o, RateLimiter.Config c) {
        for (Optional<TokenBucket.Config> b : List.of(c.bandwidth(), c.ops())) {
            o.bool(b.isPresent());
            b.ifPresent(t -> o.u64(t.size()).u64(t.oneTimeBurst()).u64(t.refillTimeMillis()));
        }
    }

    private static RateLimiter.Config limits(StateInput in) {
        List<Optional<TokenBucket.Config>> buckets = new ArrayList<>();
        for (String name : List.of("bandwidth", "ops")) {
            if (!in.bool(name + " limit set")) {
                buckets.add(Optional.empty());
                continue;
            }
            long size = in.u64(name + " size"), burst = in.u64(name + " burst"), refill = in.u64(name + " refill");
            try {
                buckets.add(Optional.of(new TokenBucket.Config(size, burst, refill)));
            } catch (IllegalArgumentException e) {
                throw corrupt(in, name + " limit: " + e.getMessage());
            }
        }
        return new RateLimiter.Config(buckets.get(0), buckets.get(1));
    }

    private static SnapshotException corrupt(StateInput in, String what) {
        return new SnapshotException(SnapshotException.Kind.CORRUPT, in.where() + ": " + what + " is not valid");
    }
}
