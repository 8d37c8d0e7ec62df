package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.GuestMemoryException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;

/** Recognises a kernel file and loads it with the right protocol. */
public final class KernelLoader {
    /** How to enter a Linux kernel. */
    public enum BootPath {
        /** A bzImage is decompressed on the host and entered at 64 bits; a vmlinux at its PVH entry if it has one, else at 64 bits. */
        AUTO,
        /** Run the kernel's own decompressor (bzImage only): the faithful, slow path. */
        DECOMPRESSOR,
        /** The 64-bit boot protocol entry of the vmlinux (decompressed on the host for a bzImage). */
        LINUX64,
        /** The Xen PVH 32-bit entry of a vmlinux that carries the note. */
        PVH
    }

    /** What the guest gets besides the kernel. */
    public record Request(Path kernel, Optional<Path> initrd, String cmdline, BootPath bootPath) {}

    private KernelLoader() {}

    public static LoadedKernel load(GuestMemory memory, Request request) {
        byte[] image = readFile(request.kernel(), "kernel");
        byte[] initrd = request.initrd().map(p -> readFile(p, "initrd")).orElse(null);
        try {
            if (LinuxLoader.isBzImage(image))
                return LinuxLoader.loadBzImage(memory, image, initrd, request.cmdline(), request.bootPath());
            if (MultibootLoader.findHeader(image).isPresent()) {
                if (request.bootPath() != BootPath.AUTO)
                    throw new BootException("--boot-path applies to Linux kernels; " + request.kernel() + " is a multiboot kernel");
                return MultibootLoader.load(memory, image, initrd, request.cmdline());
            }
            if (Elf.isElf(image)) return LinuxLoader.loadVmlinux(memory, image, initrd, request.cmdline(), request.bootPath());
        } catch (GuestMemoryException e) {
            throw new BootException(request.kernel() + " does not fit in guest RAM (" + e.getMessage() + "); give the guest more --memory", e);
        }
        throw new BootException(request.kernel() + " is not a kernel jvmm can boot (not a Linux bzImage, an ELF vmlinux or a multiboot kernel)");
    }

    /**
     * Whether the file looks like a multiboot kernel (not a bzImage, with a multiboot header in its first 8 KiB).
     * False if it cannot be read: {@link #load} reports that.
     */
    public static boolean isMultiboot(Path kernel) {
        byte[] head;
        try (java.io.InputStream in = Files.newInputStream(kernel)) {
            head = in.readNBytes(8192);
        } catch (IOException | RuntimeException e) {
            return false;
        }
        return !LinuxLoader.isBzImage(head) && MultibootLoader.findHeader(head).isPresent();
    }

    static byte[] readFile(Path p, String what) {
        try {
            if (Files.isDirectory(p)) throw new BootException(what + " " + p + " is a directory");
            long size = Files.size(p);
            if (size > Integer.MAX_VALUE - 16) throw new BootException(what + " " + p + " is too large (" + size + " bytes)");
            return Files.readAllBytes(p);
        } catch (NoSuchFileException e) {
            throw new BootException(what + " " + p + " does not exist");
        } catch (java.nio.file.AccessDeniedException e) {
            throw new BootException(what + " " + p + " is not readable (permission denied)");
        } catch (IOException e) {
            throw new BootException("cannot read " + what + " " + p + ": " + e.getMessage(), e);
        }
    }
}
