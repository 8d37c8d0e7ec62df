package dev.jvmm.devices.block;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A qcow2 image's backing file was not followed, for a {@link Reason} the options chose; nothing of the backing
 * file was read. The message is the library's; a front end maps the reason to its own option names.
 */
public final class BackingFileRefusedException extends IOException {
    public enum Reason {
        /** The image's format was probed ({@link DiskImage.BackingFiles#ONLY_IF_FORMAT_NAMED}). */
        FORMAT_PROBED,
        /**
         * The backing file lies outside the opened image's directory ({@link DiskImage.BackingPaths#IMAGE_DIRECTORY}).
         */
        OUTSIDE_IMAGE_DIRECTORY
    }

    private final Path image;
    private final Reason reason;
    private final String backingFile;

    public BackingFileRefusedException(Path image) {
        super(image + " is a qcow2 image with a backing file, and its format was probed; if it is a raw disk, name"
                + " the format raw; if it is a qcow2 image, name the format qcow2 (its backing files must then lie in"
                + " its directory or below, unless backing files are allowed anywhere)");
        this.image = image;
        this.reason = Reason.FORMAT_PROBED;
        this.backingFile = null;
    }

    public BackingFileRefusedException(Path image, String backingFile, Path directory) {
        super(image + " names backing file " + backingFile + ", which lies outside " + directory
                + "; backing files are followed only in the image's directory or below unless allowed anywhere");
        this.image = image;
        this.reason = Reason.OUTSIDE_IMAGE_DIRECTORY;
        this.backingFile = backingFile;
    }

    /** The image whose backing file was refused (in a chain, the one that names it). */
    public Path image() {
        return image;
    }

    public Reason reason() {
        return reason;
    }

    /** The backing file's name as the image states it; null for {@link Reason#FORMAT_PROBED}. */
    public String backingFile() {
        return backingFile;
    }
}
