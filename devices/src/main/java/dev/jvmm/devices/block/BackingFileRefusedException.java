package dev.jvmm.devices.block;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A qcow2 image whose format was probed has a backing file, and the options let only images of a named format
 * follow one ({@link DiskImage.BackingFiles#ONLY_IF_FORMAT_NAMED}). Nothing of the backing file was read.
 */
public final class BackingFileRefusedException extends IOException {
    private final Path image;

    public BackingFileRefusedException(Path image) {
        super(image + " is a qcow2 image with a backing file, and its format was probed; name the format (qcow2) to follow the backing file");
        this.image = image;
    }

    public Path image() {
        return image;
    }
}
