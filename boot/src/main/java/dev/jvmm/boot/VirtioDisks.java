package dev.jvmm.boot;

import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.devices.block.BackingFileRefusedException;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.DiskImage;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import java.io.IOException;
import java.util.List;

/** Attaches the configured virtio-blk disks (vda, vdb, ...) where {@link VirtioSlots} places them. */
final class VirtioDisks {
    private VirtioDisks() {}

    /**
     * Opens the image in its format. A probed qcow2 image with a backing file is refused unless the user named
     * the format: otherwise a guest that wrote a qcow2 header into its raw disk could make the next boot read
     * any host file as its backing file (QEMU's format-probing hole). Backing files must lie in the image's
     * directory unless backing=any: a named format must not open that hole again for a hostile image.
     */
    static BlockBackend open(MachineConfig.DiskConfig d) {
        DiskImage.Format format = switch (d.format()) {
            case AUTO -> DiskImage.Format.AUTO;
            case RAW -> DiskImage.Format.RAW;
            case QCOW2 -> DiskImage.Format.QCOW2;
        };
        DiskImage.BackingPaths paths = switch (d.backingFiles()) {
            case IMAGE_DIRECTORY -> DiskImage.BackingPaths.IMAGE_DIRECTORY;
            case ANY -> DiskImage.BackingPaths.ANY;
        };
        try {
            return DiskImage.open(
                    d.path(),
                    DiskImage.Options.DEFAULT
                            .withFormat(format)
                            .withReadOnly(d.readOnly())
                            .withBackingFiles(DiskImage.BackingFiles.ONLY_IF_FORMAT_NAMED)
                            .withBackingPaths(paths));
        } catch (BackingFileRefusedException e) {
            throw new BootException(
                    Kind.BACKING_FILE_UNCONFIRMED,
                    switch (e.reason()) {
                        case FORMAT_PROBED ->
                            "--disk " + d.path() + " looks like a qcow2 image with a backing file: if it is a raw disk,"
                                    + " add format=raw; if it is a qcow2 image, add format=qcow2"
                                    + " (its backing files must then lie in its directory or below,"
                                    + " or add backing=any)";
                        case OUTSIDE_IMAGE_DIRECTORY ->
                            "--disk " + d.path() + ": " + e.image().getFileName() + " names backing file "
                                    + e.backingFile() + ", outside "
                                    + d.path().toAbsolutePath().normalize().getParent()
                                    + "; add backing=any to follow it";
                    });
        } catch (java.nio.file.NoSuchFileException e) {
            if (java.nio.file.Files.exists(d.path()))
                throw new BootException(
                        Kind.FILE_NOT_FOUND,
                        "--disk " + d.path() + ": backing file " + e.getFile() + " does not exist");
            throw new BootException(Kind.FILE_NOT_FOUND, "--disk " + d.path() + " does not exist");
        } catch (IOException e) {
            throw new BootException(Kind.DISK_UNUSABLE, "--disk " + d.path() + ": " + e.getMessage());
        }
    }

    /** Opens every disk, in order; if one fails, those already open are closed again. */
    static List<BlockBackend> open(List<MachineConfig.DiskConfig> disks) {
        List<BlockBackend> open = new java.util.ArrayList<>();
        try {
            for (MachineConfig.DiskConfig d : disks) open.add(open(d));
            return open;
        } catch (RuntimeException e) {
            closeAll(open);
            throw e;
        }
    }

    static void closeAll(List<BlockBackend> backends) {
        for (BlockBackend b : backends) {
            try {
                b.close();
            } catch (IOException | RuntimeException e) {
                // already failing: the first error is the one to report
            }
        }
    }

    /** The name of the {@code index}th disk: vda, vdb, ... */
    static String name(int index) {
        return "vd" + (char) ('a' + Math.min(index, 25));
    }

    /** Attaches the opened disks (the VM owns them already) as vda, vdb, ...; returns the devices in that order. */
    static List<VirtioBlock> attach(
            VirtioSlots slots, List<MachineConfig.DiskConfig> disks, List<BlockBackend> backends) {
        List<VirtioBlock> devices = new java.util.ArrayList<>();
        for (int i = 0; i < disks.size(); i++) {
            MachineConfig.DiskConfig d = disks.get(i);
            String name = name(i);
            VirtioBlock.Options options;
            try {
                options = VirtioBlock.Options.DEFAULT
                        .withReadOnly(d.readOnly())
                        .withSerial(d.serial().orElse(""))
                        .withRateLimit(d.rateLimit());
            } catch (IllegalArgumentException e) {
                throw new BootException(Kind.BAD_OPTION, "--disk " + d.path() + ": " + e.getMessage());
            }
            VirtioBlock device = new VirtioBlock(backends.get(i), options);
            slots.attach(name, device, d.transport(), "--disk " + d.path());
            devices.add(device);
        }
        return List.copyOf(devices);
    }
}
