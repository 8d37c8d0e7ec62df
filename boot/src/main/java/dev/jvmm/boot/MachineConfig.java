package dev.jvmm.boot;

import dev.jvmm.boot.loader.KernelLoader;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.virtio.vsock.VirtioVsock;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Everything that describes a PC to build: a plain value the CLI produces from its options and an embedding
 * program from the builder methods. {@link Machine#create(MachineConfig)} turns it into a machine.
 *
 * <p>{@code nics} empty means "the default network": one user-mode NIC for a Linux kernel, none for a multiboot
 * kernel (test kernels that drive their own devices and would only see their PCI layout shift).
 */
public record MachineConfig(
        Path kernel,
        Optional<Path> initrd,
        Optional<String> cmdline,
        long memoryBytes,
        int cpus,
        String cpuFeatures,
        KernelLoader.BootPath bootPath,
        OutputStream console,
        Optional<OutputStream> debugcon,
        OptionalInt debugExitPort,
        List<DiskConfig> disks,
        Optional<List<NicConfig>> nics,
        Optional<VsockConfig> vsock) {
    public static final long DEFAULT_MEMORY = 512L << 20;
    /**
     * What Linux guests get unless told otherwise: the serial console, keyboard-controller reboot, no pause on panic.
     */
    public static final String DEFAULT_LINUX_CMDLINE = "console=ttyS0 reboot=k panic=1";

    public MachineConfig {
        disks = List.copyOf(disks);
        nics = nics.map(List::copyOf);
    }

    /**
     * A NIC (virtio-net) and its backend. {@code transport} is chosen as for disks; PCI is the default because
     * distribution kernels find virtio-pci devices without command line options.
     */
    public record NicConfig(
            NetConfig backend, DiskConfig.Transport transport, RateLimiter.Config rxLimit, RateLimiter.Config txLimit) {
        /** What a Linux guest gets when no network is configured: user-mode networking on virtio-pci. */
        public static final NicConfig DEFAULT = new NicConfig(NetConfig.User.defaults(), DiskConfig.Transport.PCI);

        public NicConfig {
            if (rxLimit == null) rxLimit = RateLimiter.Config.UNLIMITED;
            if (txLimit == null) txLimit = RateLimiter.Config.UNLIMITED;
        }

        /** Without rate limits. */
        public NicConfig(NetConfig backend, DiskConfig.Transport transport) {
            this(backend, transport, RateLimiter.Config.UNLIMITED, RateLimiter.Config.UNLIMITED);
        }
    }

    /**
     * A virtio-vsock device with Firecracker's host side: the guest's context ID, and the Unix socket {@code udsPath}
     * host programs connect to ({@code CONNECT <port>\n}); the guest's connections to host port P go to
     * {@code <udsPath>_P}. On virtio-pci by default, as Linux distribution kernels find it without options.
     */
    public record VsockConfig(long guestCid, Path udsPath, DiskConfig.Transport transport) {
        public VsockConfig {
            String bad = VirtioVsock.cidProblem(guestCid);
            if (bad != null) throw new IllegalArgumentException(bad);
            if (udsPath == null) throw new IllegalArgumentException("the vsock socket path is missing");
            if (transport == null) transport = DiskConfig.Transport.PCI;
        }

        public VsockConfig(long guestCid, Path udsPath) {
            this(guestCid, udsPath, DiskConfig.Transport.PCI);
        }
    }

    /** A disk to attach (virtio-blk). */
    public record DiskConfig(
            Path path,
            boolean readOnly,
            Optional<String> serial,
            Transport transport,
            Format format,
            BackingFiles backingFiles,
            RateLimiter.Config rateLimit) {
        public enum Transport {
            MMIO,
            PCI
        }

        /** The image format; AUTO reads the file's magic. */
        public enum Format {
            AUTO,
            RAW,
            QCOW2
        }

        /** Where a qcow2 image's backing files may lie: in its directory or below (the default), or anywhere. */
        public enum BackingFiles {
            IMAGE_DIRECTORY,
            ANY
        }

        public DiskConfig {
            if (rateLimit == null) rateLimit = RateLimiter.Config.UNLIMITED;
        }

        /** Without a rate limit. */
        public DiskConfig(
                Path path,
                boolean readOnly,
                Optional<String> serial,
                Transport transport,
                Format format,
                BackingFiles backingFiles) {
            this(path, readOnly, serial, transport, format, backingFiles, RateLimiter.Config.UNLIMITED);
        }

        public DiskConfig(Path path, boolean readOnly, Optional<String> serial, Transport transport, Format format) {
            this(path, readOnly, serial, transport, format, BackingFiles.IMAGE_DIRECTORY);
        }

        public DiskConfig(Path path, boolean readOnly, Optional<String> serial, Transport transport) {
            this(path, readOnly, serial, transport, Format.AUTO);
        }
    }

    public static Builder builder(Path kernel) {
        return new Builder(kernel);
    }

    /** Builder for embedding: {@code MachineConfig.builder(kernel).memory(256 << 20).cpus(2).build()}. */
    public static final class Builder {
        private final Path kernel;
        private Optional<Path> initrd = Optional.empty();
        private Optional<String> cmdline = Optional.empty();
        private long memory = DEFAULT_MEMORY;
        private int cpus = 1;
        private String cpuFeatures = "";
        private KernelLoader.BootPath bootPath = KernelLoader.BootPath.AUTO;
        private OutputStream console = OutputStream.nullOutputStream();
        private Optional<OutputStream> debugcon = Optional.empty();
        private OptionalInt debugExitPort = OptionalInt.empty();
        private final List<DiskConfig> disks = new java.util.ArrayList<>();
        private List<NicConfig> nics; // null: the default network
        private Optional<VsockConfig> vsock = Optional.empty();

        private Builder(Path kernel) {
            this.kernel = kernel;
        }

        public Builder initrd(Path p) {
            initrd = Optional.of(p);
            return this;
        }

        public Builder cmdline(String s) {
            cmdline = Optional.of(s);
            return this;
        }

        public Builder memory(long bytes) {
            memory = bytes;
            return this;
        }

        public Builder cpus(int n) {
            cpus = n;
            return this;
        }

        public Builder cpuFeatures(String spec) {
            cpuFeatures = spec;
            return this;
        }

        public Builder bootPath(KernelLoader.BootPath p) {
            bootPath = p;
            return this;
        }

        /** Where the serial console's output goes. */
        public Builder console(OutputStream out) {
            console = out;
            return this;
        }

        /** A QEMU-compatible debugcon at port 0xe9. */
        public Builder debugcon(OutputStream out) {
            debugcon = Optional.of(out);
            return this;
        }

        /** A QEMU-compatible isa-debug-exit at this port. */
        public Builder debugExit(int port) {
            debugExitPort = OptionalInt.of(port);
            return this;
        }

        public Builder disk(DiskConfig disk) {
            disks.add(disk);
            return this;
        }

        /** A NIC; the first call replaces the default network (user-mode networking for Linux kernels). */
        public Builder nic(NicConfig nic) {
            if (nics == null) nics = new java.util.ArrayList<>();
            nics.add(nic);
            return this;
        }

        /** A NIC on virtio-pci. */
        public Builder nic(NetConfig backend) {
            return nic(new NicConfig(backend, DiskConfig.Transport.PCI));
        }

        /** No NIC at all, not even the default one. */
        public Builder noNetwork() {
            nics = new java.util.ArrayList<>();
            return this;
        }

        /** A virtio-vsock device (one per machine, as in Firecracker). */
        public Builder vsock(VsockConfig v) {
            vsock = Optional.of(v);
            return this;
        }

        public MachineConfig build() {
            return new MachineConfig(
                    kernel,
                    initrd,
                    cmdline,
                    memory,
                    cpus,
                    cpuFeatures,
                    bootPath,
                    console,
                    debugcon,
                    debugExitPort,
                    disks,
                    Optional.ofNullable(nics),
                    vsock);
        }
    }
}
