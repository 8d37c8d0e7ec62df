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

    public enum Format { AUTO, RAW, QCOW2 }

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
     * @param rawSize      what a raw image that is not whole sectors shows
     */
    public record Options(Format format, boolean readOnly, BackingFiles backingFiles, RawSize rawSize) {
        /** A guest's disk: format probed, read-write, backing files only where the format is named. */
        public static final Options DEFAULT = new Options(Format.AUTO, false, BackingFiles.ONLY_IF_FORMAT_NAMED, RawSize.WHOLE_SECTORS);
        /** An image read end to end (a conversion source): format probed, read-only, backing files followed. */
        public static final Options SOURCE = new Options(Format.AUTO, true, BackingFiles.FOLLOW, RawSize.WHOLE_FILE);

        public Options {
            Objects.requireNonNull(format, "format");
            Objects.requireNonNull(backingFiles, "backingFiles");
            Objects.requireNonNull(rawSize, "rawSize");
        }

        public Options withFormat(Format v) { return new Options(v, readOnly, backingFiles, rawSize); }
        public Options withReadOnly(boolean v) { return new Options(format, v, backingFiles, rawSize); }
        public Options withBackingFiles(BackingFiles v) { return new Options(format, readOnly, v, rawSize); }
        public Options withRawSize(RawSize v) { return new Options(format, readOnly, backingFiles, v); }
    }

    /**
     * Opens an image: a {@link RawFileBackend} or a {@link Qcow2Image} with its backing chain.
     *
     * @throws NoSuchFileException where the image (or, for qcow2, a backing file) does not exist
     * @throws BackingFileRefusedException where the options do not let a probed image's backing file be followed
     * @throws IOException where the file cannot be opened or read, or is a corrupt or unsupported image
     */
    public static BlockBackend open(Path path, Options options) throws IOException {
        Format format = options.format() == Format.AUTO ? probe(path) : options.format();
        if (format == Format.RAW) return RawFileBackend.open(path, options.readOnly(), options.rawSize());
        Qcow2Image.BackingOpener backing = options.format() == Format.AUTO && options.backingFiles() == BackingFiles.ONLY_IF_FORMAT_NAMED
                ? (image, header) -> { throw new BackingFileRefusedException(image); }
                : new Chain();
        return Qcow2Image.open(path, options.readOnly(), null, backing);
    }

    /** The file's format by its magic: QCOW2 or RAW (anything else, a file too short for a magic included). */
    public static Format probe(Path path) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ByteBuffer magic = ByteBuffer.allocate(4);
            while (magic.hasRemaining() && ch.read(magic, magic.position()) >= 0) { }
            return Qcow2Header.hasMagic(magic.array()) ? Format.QCOW2 : Format.RAW; // a short file's missing bytes stay zero
        }
    }

    /**
     * Follows backing files for one top image: each in the format its image names (probed where it names none),
     * loops and chains deeper than 64 refused. For {@link Qcow2Image}'s own opens.
     */
    public static Qcow2Image.BackingOpener backingChain() {
        return new Chain();
    }

    /** One image's backing chain, as it is opened: the files in it so far, to refuse loops. */
    private static final class Chain implements Qcow2Image.BackingOpener {
        private final Set<Path> files = new HashSet<>();

        @Override
        public BlockBackend open(Path image, Qcow2Header header) throws IOException {
            if (files.isEmpty()) files.add(image.toRealPath());
            String name = header.backingFile;
            if (name.startsWith("json:")) throw new Qcow2Exception(image + ": json: backing file names are not supported");
            Path p = Path.of(name.startsWith("file:") ? name.substring(5) : name);
            Path dir = image.toAbsolutePath().getParent();
            if (!p.isAbsolute() && dir != null) p = dir.resolve(p);
            if (!Files.exists(p)) throw new NoSuchFileException(p.toString(), null, "backing file of " + image + " not found");
            Format format = header.backingFormat == null ? probe(p) : switch (header.backingFormat) {
                case "qcow2" -> Format.QCOW2;
                case "raw", "file" -> Format.RAW;
                default -> throw new Qcow2Exception(image + ": unsupported backing file format '" + header.backingFormat + "'");
            };
            if (format == Format.RAW) {
                if (!files.add(p.toRealPath())) throw new Qcow2Exception(image + ": backing chain loop at " + p);
                return RawFileBackend.open(p, true, RawSize.WHOLE_FILE);
            }
            if (!files.add(p.toRealPath())) throw new Qcow2Exception(p + ": backing chain loop (the file is its own ancestor)");
            if (files.size() - 1 > MAX_CHAIN_DEPTH) throw new Qcow2Exception(p + ": backing chain deeper than " + MAX_CHAIN_DEPTH);
            return Qcow2Image.open(p, true, null, this);
        }
    }
}
