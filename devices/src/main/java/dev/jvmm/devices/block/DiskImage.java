package dev.jvmm.devices.block;

import dev.jvmm.devices.block.qcow2.Qcow2Exception;
import dev.jvmm.devices.block.qcow2.Qcow2Header;
import dev.jvmm.devices.block.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Objects;
import java.util.Set;

/**
 * Opens disk images: the one place that decides a file's format (by its magic, unless the caller names it),
 * whether a qcow2 backing file may be followed, and how a backing chain is walked. The VMM's disks, the
 * images {@code jvmm img} reads and every backing file are opened here.
 */
public final class DiskImage {
    private DiskImage() {}

    private static final int MAX_CHAIN_DEPTH = 64;

    public enum Format {
        AUTO,
        RAW,
        QCOW2
    }

    /** Whether a qcow2 image's backing file is followed. */
    public enum BackingFiles {
        /** Always, in the format the image names for it (probed where it names none): qemu-img's rule. */
        FOLLOW,
        /**
         * Only when the caller named the image's format: a probed qcow2 image with a backing file is refused
         * ({@link BackingFileRefusedException}). Otherwise a guest that wrote a qcow2 header into its raw disk
         * could make the next boot read any host file as its backing file (QEMU's format-probing hole).
         */
        ONLY_IF_FORMAT_NAMED
    }

    /**
     * Where a qcow2 image's backing files may lie. A backing file name is the image's to choose, and the image
     * may be hostile (downloaded, or written by a guest): named freely, it lets the guest read any file the
     * VMM can.
     */
    public enum BackingPaths {
        /**
         * In the directory of the image that was opened, or below it, after symbolic links are resolved; a
         * name with {@code ..} that leaves it, or an absolute path elsewhere, is refused
         * ({@link BackingFileRefusedException.Reason#OUTSIDE_IMAGE_DIRECTORY}). The whole chain stays there.
         */
        IMAGE_DIRECTORY,
        /** Anywhere on the host: qemu-img's rule, for images whose origin is trusted. */
        ANY
    }

    /** What a raw file that ends inside a 512-byte sector shows. */
    public enum RawSize {
        /** Whole sectors only (the tail is not visible): what a guest can address. */
        WHOLE_SECTORS,
        /** Every byte, the size then not a multiple of 512: for reading an image end to end. */
        WHOLE_FILE
    }

    /**
     * How to open an image. Backing files are always opened read-only.
     *
     * @param format       the format, or AUTO to probe it
     * @param readOnly     whether writes are refused (and the file is opened read-only)
     * @param backingFiles whether a qcow2 image's backing file is followed
     * @param backingPaths where backing files may lie
     * @param rawSize      what a raw image that is not whole sectors shows
     */
    public record Options(
            Format format, boolean readOnly, BackingFiles backingFiles, BackingPaths backingPaths, RawSize rawSize) {
        /**
         * A guest's disk: format probed, read-write, backing files only where the format is named and only in the
         * image's directory.
         */
        public static final Options DEFAULT = new Options(
                Format.AUTO,
                false,
                BackingFiles.ONLY_IF_FORMAT_NAMED,
                BackingPaths.IMAGE_DIRECTORY,
                RawSize.WHOLE_SECTORS);
        /**
         * An image read end to end (a conversion source): format probed, read-only, backing files followed
         * wherever they are, as qemu-img does.
         */
        public static final Options SOURCE =
                new Options(Format.AUTO, true, BackingFiles.FOLLOW, BackingPaths.ANY, RawSize.WHOLE_FILE);

        public Options {
            Objects.requireNonNull(format, "format");
            Objects.requireNonNull(backingFiles, "backingFiles");
            Objects.requireNonNull(backingPaths, "backingPaths");
            Objects.requireNonNull(rawSize, "rawSize");
        }

        public Options withFormat(Format v) {
            return new Options(v, readOnly, backingFiles, backingPaths, rawSize);
        }

        public Options withReadOnly(boolean v) {
            return new Options(format, v, backingFiles, backingPaths, rawSize);
        }

        public Options withBackingFiles(BackingFiles v) {
            return new Options(format, readOnly, v, backingPaths, rawSize);
        }

        public Options withBackingPaths(BackingPaths v) {
            return new Options(format, readOnly, backingFiles, v, rawSize);
        }

        public Options withRawSize(RawSize v) {
            return new Options(format, readOnly, backingFiles, backingPaths, v);
        }
    }

    /**
     * Opens an image: a {@link RawFileBackend} or a {@link Qcow2Image} with its backing chain.
     *
     * @throws NoSuchFileException where the image (or, for qcow2, a backing file) does not exist
     * @throws BackingFileRefusedException where the options do not let a backing file be followed: the image's
     *         format was probed, or the backing file lies outside the image's directory
     * @throws IOException where the file cannot be opened or read, or is a corrupt or unsupported image
     */
    public static BlockBackend open(Path path, Options options) throws IOException {
        Format format = options.format() == Format.AUTO ? probe(path) : options.format();
        if (format == Format.RAW) {
            return RawFileBackend.open(path, options.readOnly(), options.rawSize(), options.format() == Format.AUTO);
        }
        Qcow2Image.BackingOpener backing =
                options.format() == Format.AUTO && options.backingFiles() == BackingFiles.ONLY_IF_FORMAT_NAMED
                        ? (image, header) -> {
                            throw new BackingFileRefusedException(image);
                        }
                        : new Chain(options.backingPaths());
        return Qcow2Image.open(path, options.readOnly(), null, backing);
    }

    /** The file's format by its magic: QCOW2 or RAW (anything else, a file too short for a magic included). */
    public static Format probe(Path path) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ByteBuffer magic = ByteBuffer.allocate(4);
            while (magic.hasRemaining() && ch.read(magic, magic.position()) >= 0) {}
            return Qcow2Header.hasMagic(magic.array())
                    ? Format.QCOW2
                    : Format.RAW; // a short file's missing bytes stay zero
        }
    }

    /**
     * Follows backing files for one top image: each in the format its image names (probed where it names none),
     * wherever it lies (qemu-img's rule), loops and chains deeper than 64 refused. For {@link Qcow2Image}'s own
     * opens of images the user names.
     */
    public static Qcow2Image.BackingOpener backingChain() {
        return new Chain(BackingPaths.ANY);
    }

    /** As {@link #backingChain()}, with backing files only where {@code paths} lets them lie. */
    public static Qcow2Image.BackingOpener backingChain(BackingPaths paths) {
        return new Chain(paths);
    }

    /** One image's backing chain, as it is opened: the files in it so far, to refuse loops. */
    private static final class Chain implements Qcow2Image.BackingOpener {
        private final Set<Path> files = new HashSet<>();
        private final BackingPaths paths;
        /** The opened (top) image's directory: the whole chain must stay in it for IMAGE_DIRECTORY. */
        private Path root;

        Chain(BackingPaths paths) {
            this.paths = paths;
        }

        @Override
        public BlockBackend open(Path image, Qcow2Header header) throws IOException {
            if (files.isEmpty()) {
                files.add(image.toRealPath());
                root = image.toAbsolutePath().normalize().getParent();
            }
            String name = header.backingFile;
            if (name.startsWith("json:"))
                throw new Qcow2Exception(image + ": json: backing file names are not supported");
            Path p = Path.of(name.startsWith("file:") ? name.substring(5) : name);
            Path dir = image.toAbsolutePath().getParent();
            if (!p.isAbsolute() && dir != null) p = dir.resolve(p);
            if (paths == BackingPaths.IMAGE_DIRECTORY) confine(image, name, p);
            if (!Files.exists(p))
                throw new NoSuchFileException(p.toString(), null, "backing file of " + image + " not found");
            Format format = header.backingFormat == null
                    ? probe(p)
                    : switch (header.backingFormat) {
                        case "qcow2" -> Format.QCOW2;
                        case "raw", "file" -> Format.RAW;
                        default ->
                            throw new Qcow2Exception(
                                    image + ": unsupported backing file format '" + header.backingFormat + "'");
                    };
            if (format == Format.RAW) {
                if (!files.add(p.toRealPath())) throw new Qcow2Exception(image + ": backing chain loop at " + p);
                return RawFileBackend.open(p, true, RawSize.WHOLE_FILE);
            }
            if (!files.add(p.toRealPath()))
                throw new Qcow2Exception(p + ": backing chain loop (the file is its own ancestor)");
            if (files.size() - 1 > MAX_CHAIN_DEPTH)
                throw new Qcow2Exception(p + ": backing chain deeper than " + MAX_CHAIN_DEPTH);
            return Qcow2Image.open(p, true, null, this);
        }

        /**
         * Refuses a backing file outside the root directory: by its name first (so a refused name says nothing of
         * whether such a file exists), then, where it exists, by its real path (a symbolic link leading out).
         */
        private void confine(Path image, String name, Path p) throws IOException {
            if (root == null) throw new BackingFileRefusedException(image, name, Path.of("/"));
            if (!p.toAbsolutePath().normalize().startsWith(root))
                throw new BackingFileRefusedException(image, name, root);
            if (Files.exists(p) && !p.toRealPath().startsWith(root.toRealPath())) {
                throw new BackingFileRefusedException(image, name, root);
            }
        }
    }
}
