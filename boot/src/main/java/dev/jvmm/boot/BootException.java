package dev.jvmm.boot;

/**
 * A kernel, initrd or option that cannot be booted. The {@link Kind} says what kind of failure it is, for callers
 * and tests to branch on; the message is one line for the user, with the values, and stays as it was worded.
 */
public class BootException extends RuntimeException {
    /** What kind of failure stops the boot. */
    public enum Kind {
        // Files.
        /** A kernel, initrd or disk file that does not exist (or the demo guest missing from the jar). */
        FILE_NOT_FOUND,
        /** A file that cannot be read or written: a directory, permission denied, too large, an I/O error. */
        FILE_INACCESSIBLE,

        // The kernel image.
        /** Not a Linux bzImage, an ELF vmlinux or a multiboot kernel (or an ELF file that is not ELF). */
        NOT_A_KERNEL,
        /**
         * A kernel jvmm cannot boot by its protocol: boot protocol before 2.06, a zImage, multiboot features jvmm
         * lacks, a kernel that loads above 4 GiB (beyond what its entry reaches).
         */
        UNSUPPORTED_PROTOCOL,
        /** A kernel without a 64-bit entry: not an x86-64 kernel. */
        NOT_X86_64,
        /**
         * A header that points past the end of the file: setup code, payload, ELF headers or segments, a load range;
         * protected-mode code that ends before its entry.
         */
        TRUNCATED,
        /**
         * Header fields that make no sense: an unknown ELF class, big-endian, no program headers, nothing to load, a
         * bad segment size, an entry point outside what is loaded, a setup header shorter than its protocol's.
         */
        MALFORMED_KERNEL,
        /** The boot path asked for (or the automatic one) cannot boot this kernel; another one may. */
        BOOT_PATH_UNSUPPORTED,
        /** A bzImage payload in a compression format jvmm does not know. */
        UNKNOWN_COMPRESSION,
        /**
         * A bzImage payload that does not decompress: corrupt, truncated, a size that disagrees, more than 1 GiB, a
         * dictionary far larger than its output.
         */
        BAD_COMPRESSION,

        // Placing it in guest memory.
        /**
         * The kernel wants to load where jvmm keeps its boot data (below 256 KiB; the MP and ACPI tables below 1 MiB)
         * or where the e820 map gives the guest no RAM.
         */
        RESERVED_LOAD_ADDRESS,
        /** The kernel (or the room it needs to decompress itself) does not fit in guest RAM. */
        KERNEL_DOES_NOT_FIT,
        /** The initrd does not fit in guest RAM after the kernel. */
        INITRD_DOES_NOT_FIT,
        /** A command line longer than the kernel or the boot protocol accepts. */
        CMDLINE_TOO_LONG,

        // The machine around it.
        /** A value the user gave that jvmm does not accept: an option, a CPU feature name, a device setting. */
        BAD_OPTION,
        /** A CPU feature to enable that this host's KVM does not offer. */
        CPU_FEATURE_UNAVAILABLE,
        /** More devices than the machine has slots for (virtio-mmio windows, PCI slots). */
        TOO_MANY_DEVICES,
        /** A probed qcow2 image with a backing file whose format the user has not named. */
        BACKING_FILE_UNCONFIRMED,
        /** A disk image that cannot be opened or used. */
        DISK_UNUSABLE,
        /** A snapshot that cannot be restored here: not a jvmm machine's, another host's KVM, disks that changed. */
        SNAPSHOT_REFUSED,
        /** A network backend that cannot start (a TAP device, a forwarded port). */
        NETWORK_UNAVAILABLE,
        /** The vsock device's Unix socket cannot be made (its path exists, is too long, or cannot be bound). */
        VSOCK_UNAVAILABLE,
        /** A machine size this host cannot run: see {@link MachineConfigException#problem()}. */
        MACHINE_CONFIG,

        // The control plane.
        /**
         * The API socket cannot be made: its path exists (a stale socket is refused, as Firecracker does) or its folder
         * cannot.
         */
        API_SOCKET_UNAVAILABLE,
        /** A --config-file that cannot be read or that the API refuses. */
        BAD_CONFIG_FILE,
        /** The runtime directory of named VMs cannot be made or is not this user's alone. */
        RUNTIME_DIR_UNUSABLE,
        /** A VM of that name is running already. */
        NAME_IN_USE,
        /** No VM of that name is running (any stale socket it left has been removed). */
        NO_SUCH_VM,
        /** A running VM that did not answer, or refused what was asked of it through its API. */
        VM_REQUEST_FAILED
    }

    private final Kind kind;

    public BootException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public BootException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
