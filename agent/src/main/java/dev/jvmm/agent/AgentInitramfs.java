package dev.jvmm.agent;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveOutputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;

/**
 * A micro-VM's initramfs (newc cpio, uncompressed: the kernel unpacks it without a decompressor): the agent as
 * /init, the kernel modules it loads ({@code /jvmm/lib}, listed in load order in {@code /jvmm/modules}), the
 * network setup ({@code /jvmm/net}) if asked, optionally a static busybox with its applet links as the userland,
 * and any other files.
 * <pre>{@code
 * AgentInitramfs.builder().modules(kernel.modules(AgentInitramfs.VSOCK_MODULES)).busybox(Path.of("/bin/busybox"))
 *         .write(Path.of("initrd.cpio"));
 * }</pre>
 */
public final class AgentInitramfs {
    /** What the agent needs from a distribution kernel that builds virtio and vsock as modules. */
    public static final List<String> VSOCK_MODULES = List.of("virtio_pci", "vmw_vsock_virtio_transport");
    /** What a NIC needs on top. */
    public static final List<String> NET_MODULES = List.of("virtio_net");
    /** The static address user-mode networking's DHCP would hand out, its netmask and gateway, and its DNS. */
    public static final String GUEST_NET = "eth0 10.0.2.15 255.255.255.0 10.0.2.2", GUEST_DNS = "10.0.2.3";

    private final List<KernelModule> modules = new ArrayList<>();
    private boolean network;
    private Path busybox;
    private final Map<String, FileSource> files = new LinkedHashMap<>();

    private record FileSource(Path host, int mode) {}

    private AgentInitramfs() {}

    public static AgentInitramfs builder() {
        return new AgentInitramfs();
    }

    /** Modules for the agent to load, in load order (see {@link KernelModule#loadOrder}). */
    public AgentInitramfs modules(List<KernelModule> list) {
        modules.addAll(list);
        return this;
    }

    /** Brings eth0 up with user-mode networking's addresses ({@link #GUEST_NET}) and its DNS server. */
    public AgentInitramfs network(boolean on) {
        network = on;
        return this;
    }

    /** A static busybox as /bin/busybox, with a link for each of its applets (sh, ls, uname, ...). */
    public AgentInitramfs busybox(Path staticBusybox) {
        busybox = staticBusybox;
        return this;
    }

    /** A host file at an absolute guest path, with this mode. */
    public AgentInitramfs file(String guestPath, Path host, int mode) {
        if (!guestPath.startsWith("/") || guestPath.equals("/init"))
            throw new IllegalArgumentException("an absolute guest path other than /init: " + guestPath);
        files.put(guestPath.substring(1), new FileSource(host, mode));
        return this;
    }

    /** A static busybox on this host ({@code /bin/busybox} or {@code /usr/bin/busybox}, as busybox-static installs). */
    public static Optional<Path> hostBusybox() {
        for (String p : List.of("/bin/busybox", "/usr/bin/busybox")) {
            Path path = Path.of(p);
            try {
                if (Files.isRegularFile(path) && isStaticElf(path)) return Optional.of(path);
            } catch (IOException e) {
                // unreadable: not usable
            }
        }
        return Optional.empty();
    }

    /** A 64-bit ELF executable without a program interpreter (PT_INTERP): it needs no shared libraries. */
    static boolean isStaticElf(Path file) throws IOException {
        byte[] head;
        try (var in = Files.newInputStream(file)) {
            head = in.readNBytes(4096);
        }
        ByteBuffer b = ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN);
        if (head.length < 64 || b.getInt(0) != 0x464c457f || head[4] != 2) return false;
        long phoff = b.getLong(0x20);
        int phentsize = Short.toUnsignedInt(b.getShort(0x36)), phnum = Short.toUnsignedInt(b.getShort(0x38));
        for (int i = 0; i < phnum; i++) {
            long at = phoff + (long) i * phentsize;
            if (at + 4 > head.length) return false;
            if (b.getInt((int) at) == 3) return false;
        }
        return true;
    }

    /** Writes the archive. */
    public Path write(Path file) throws IOException, InterruptedException {
        List<String> applets = busybox == null ? List.of() : applets(busybox);
        try (OutputStream out = Files.newOutputStream(file);
                CpioArchiveOutputStream cpio = new CpioArchiveOutputStream(out, CpioConstants.FORMAT_NEW)) {
            Writer w = new Writer(cpio);
            for (String d : List.of("dev", "proc", "sys", "tmp", "run", "root", "etc", "jvmm/lib")) w.dir(d);
            // The kernel opens /dev/console for init before devtmpfs is mounted over /dev.
            CpioArchiveEntry console = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, "dev/console");
            console.setMode(CpioConstants.C_ISCHR | 0600);
            console.setRemoteDeviceMaj(5);
            console.setRemoteDeviceMin(1);
            cpio.putArchiveEntry(console);
            cpio.closeArchiveEntry();
            w.file("init", AgentBinary.bytes(), 0755);
            StringBuilder list = new StringBuilder();
            Set<String> names = new HashSet<>();
            for (KernelModule m : modules) {
                if (!names.add(m.name())) continue;
                w.file("jvmm/lib/" + m.name() + ".ko", Files.readAllBytes(m.file()), 0644);
                list.append("/jvmm/lib/").append(m.name()).append(".ko\n");
            }
            w.file("jvmm/modules", list.toString().getBytes(StandardCharsets.UTF_8), 0644);
            if (network) {
                w.file("jvmm/net", (GUEST_NET + "\n").getBytes(StandardCharsets.US_ASCII), 0644);
                w.file("etc/resolv.conf", ("nameserver " + GUEST_DNS + "\n").getBytes(StandardCharsets.US_ASCII), 0644);
            }
            if (busybox != null) {
                w.file("bin/busybox", Files.readAllBytes(busybox), 0755);
                for (String a : applets) if (!a.equals("bin/busybox")) w.symlink(a, "/bin/busybox");
            }
            for (Map.Entry<String, FileSource> f : files.entrySet())
                w.file(
                        f.getKey(),
                        Files.readAllBytes(f.getValue().host()),
                        f.getValue().mode());
        }
        return file;
    }

    /** The applets' paths (bin/sh, usr/bin/awk, ...) as the binary itself lists them. */
    private static List<String> applets(Path busybox) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(busybox.toString(), "--list-full")
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0)
            throw new IOException(busybox + " --list-full failed: " + out.strip());
        return out.lines()
                .map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("/"))
                .toList();
    }

    /** Entries with their parent folders made first, each once. */
    private static final class Writer {
        private final CpioArchiveOutputStream cpio;
        private final Set<String> dirs = new HashSet<>();

        Writer(CpioArchiveOutputStream cpio) {
            this.cpio = cpio;
        }

        void dir(String path) throws IOException {
            if (path.isEmpty() || dirs.contains(path)) return;
            int slash = path.lastIndexOf('/');
            if (slash > 0) dir(path.substring(0, slash));
            dirs.add(path);
            CpioArchiveEntry e = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, path);
            e.setMode(CpioConstants.C_ISDIR | (path.equals("tmp") ? 01777 : 0755));
            e.setNumberOfLinks(2);
            cpio.putArchiveEntry(e);
            cpio.closeArchiveEntry();
        }

        void file(String path, byte[] data, int mode) throws IOException {
            entry(path, CpioConstants.C_ISREG | (mode & 07777), data);
        }

        void symlink(String path, String target) throws IOException {
            entry(path, CpioConstants.C_ISLNK | 0777, target.getBytes(StandardCharsets.UTF_8));
        }

        private void entry(String path, int mode, byte[] data) throws IOException {
            int slash = path.lastIndexOf('/');
            if (slash > 0) dir(path.substring(0, slash));
            CpioArchiveEntry e = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, path);
            e.setMode(mode);
            e.setSize(data.length);
            cpio.putArchiveEntry(e);
            cpio.write(data);
            cpio.closeArchiveEntry();
        }
    }
}
