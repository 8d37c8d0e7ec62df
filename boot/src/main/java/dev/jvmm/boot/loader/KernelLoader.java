package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
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
        /**
         * A bzImage is decompressed on the host and entered at 64 bits; a vmlinux at its PVH entry if it has one, else
         * at 64 bits.
         */
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

    /** The kinds of kernel file jvmm boots. */
    public enum Format {
        BZIMAGE,
        MULTIBOOT,
        ELF
    }

    /**
     * A kernel and its initrd read from disk and recognised, before any VM exists: a file that is missing or not a
     * kernel is what a user hears of first, whatever else is wrong on the host.
     */
    public record KernelImage(Path path, Format format, byte[] image, byte[] initrd, BootPath bootPath) {}

    private KernelLoader() {}

    public static KernelImage read(Path kernel, Optional<Path> initrd, BootPath bootPath) {
        byte[] image = readFile(kernel, "kernel");
        byte[] rd = initrd.map(p -> readFile(p, "initrd")).orElse(null);
        return recognise(kernel, image, rd, bootPath);
    }

    /** Recognises a kernel file's contents (read from {@code kernel}, which messages name); the fuzz targets' entry. */
    static KernelImage recognise(Path kernel, byte[] image, byte[] rd, BootPath bootPath) {
        Format format;
        if (LinuxLoader.isBzImage(image)) format = Format.BZIMAGE;
        else if (MultibootLoader.findHeader(image).isPresent()) format = Format.MULTIBOOT;
        else if (Elf.isElf(image)) format = Format.ELF;
        else
            throw new BootException(
                    Kind.NOT_A_KERNEL,
                    kernel
                            + " is not a kernel jvmm can boot"
                            + " (not a Linux bzImage, an ELF vmlinux or a multiboot kernel)");
        if (format == Format.MULTIBOOT && bootPath != BootPath.AUTO)
            throw new BootException(
                    Kind.BOOT_PATH_UNSUPPORTED,
                    "--boot-path applies to Linux kernels; " + kernel + " is a multiboot kernel");
        return new KernelImage(kernel, format, image, rd, bootPath);
    }

    public static LoadedKernel load(GuestMemory memory, Request request) {
        return load(memory, read(request.kernel(), request.initrd(), request.bootPath()), request.cmdline());
    }

    public static LoadedKernel load(GuestMemory memory, KernelImage k, String cmdline) {
        try {
            return switch (k.format()) {
                case BZIMAGE -> LinuxLoader.loadBzImage(memory, k.image(), k.initrd(), cmdline, k.bootPath());
                case MULTIBOOT -> MultibootLoader.load(memory, k.image(), k.initrd(), cmdline);
                case ELF -> LinuxLoader.loadVmlinux(memory, k.image(), k.initrd(), cmdline, k.bootPath());
            };
        } catch (GuestMemoryException e) {
            throw new BootException(
                    Kind.KERNEL_DOES_NOT_FIT,
                    k.path() + " does not fit in guest RAM (" + e.getMessage() + "); give the guest more --memory",
                    e);
        }
    }

    static byte[] readFile(Path p, String what) {
        try {
            if (Files.isDirectory(p))
                throw new BootException(Kind.FILE_INACCESSIBLE, what + " " + p + " is a directory");
            long size = Files.size(p);
            if (size > Integer.MAX_VALUE - 16)
                throw new BootException(Kind.FILE_INACCESSIBLE, what + " " + p + " is too large (" + size + " bytes)");
            return Files.readAllBytes(p);
        } catch (NoSuchFileException e) {
            throw new BootException(Kind.FILE_NOT_FOUND, what + " " + p + " does not exist");
        } catch (java.nio.file.AccessDeniedException e) {
            throw new BootException(Kind.FILE_INACCESSIBLE, what + " " + p + " is not readable (permission denied)");
        } catch (IOException e) {
            throw new BootException(Kind.FILE_INACCESSIBLE, "cannot read " + what + " " + p + ": " + e.getMessage(), e);
        }
    }
}
