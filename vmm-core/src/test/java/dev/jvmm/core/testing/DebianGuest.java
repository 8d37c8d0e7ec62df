package dev.jvmm.core.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The Debian guest that scripts/debian-image.sh makes (the folder it prints), and the command lines that boot it
 * to a login prompt under jvmm and under QEMU: the same kernel, initramfs, command line and disk for both, as the
 * Debian test's oracle and the time-to-login benchmark compare them.
 */
public record DebianGuest(Path folder) {
    /** The kernel command line both VMMs give it. */
    public static final String CMDLINE = "console=ttyS0 root=/dev/vda rw";
    /** What the image's serial getty prints (its hostname is jvmm-debian). */
    public static final String LOGIN_PROMPT = "jvmm-debian login:";

    public Path kernel() {
        return folder.resolve("vmlinuz");
    }

    public Path initrd() {
        return folder.resolve("initrd.img");
    }

    public Path disk() {
        return folder.resolve("debian.qcow2");
    }

    /** The private key the image's root accepts over ssh. */
    public Path sshKey() {
        return folder.resolve("id_ed25519");
    }

    /** Makes a fresh qcow2 overlay at {@code overlay} over the guest's disk, so that a boot is a first boot. */
    public Path overlay(Path overlay) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(
                        "qemu-img",
                        "create",
                        "-q",
                        "-f",
                        "qcow2",
                        "-F",
                        "qcow2",
                        "-b",
                        disk().toString(),
                        overlay.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0)
            throw new IOException("qemu-img create " + overlay + " failed: " + out);
        return overlay;
    }

    /**
     * `jvmm run` as a user types it, in a new JVM with this one's runtime and class path: the overlay on virtio-pci
     * (its backing file is the cached image, outside the overlay's folder), one NIC of {@code net}'s kind.
     */
    public List<String> jvmmCommand(Path overlay, int cpus, String memory, String net) {
        return KvmHost.jvmmProcess(List.of(
                "run",
                "--kernel",
                kernel().toString(),
                "--initrd",
                initrd().toString(),
                "--disk",
                overlay + ",transport=pci,format=qcow2,backing=any",
                "--cmdline",
                CMDLINE,
                "--cpus",
                "" + cpus,
                "--memory",
                memory,
                "--net",
                net));
    }

    /**
     * QEMU with KVM, q35 and the host's CPU model, the overlay on virtio-pci and user-mode networking on a
     * virtio-net-pci NIC; {@code extra} adds the console and anything else the caller needs.
     */
    public List<String> qemuCommand(String qemu, Path overlay, int cpus, String memory, List<String> extra) {
        List<String> command = new ArrayList<>(List.of(
                qemu,
                "-accel",
                "kvm",
                "-M",
                "q35",
                "-cpu",
                "host",
                "-smp",
                "" + cpus,
                "-m",
                memory,
                "-display",
                "none",
                "-kernel",
                kernel().toString(),
                "-initrd",
                initrd().toString(),
                "-append",
                CMDLINE,
                "-drive",
                "file=" + overlay + ",if=virtio,format=qcow2",
                "-netdev",
                "user,id=n0",
                "-device",
                "virtio-net-pci,netdev=n0"));
        command.addAll(extra);
        return command;
    }
}
