package dev.jvmm.devices.block;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Another process (QEMU, qemu-img, another jvmm), or another open in this one, holds the image in a way that
 * conflicts with this open: it writes the image, or reads it and does not let others write. Nothing was read.
 */
public final class ImageLockedException extends IOException {
    private final Path image;

    public ImageLockedException(Path image, String why) {
        super("disk image " + image + " is in use: " + why);
        this.image = image;
    }

    public Path image() {
        return image;
    }
}
