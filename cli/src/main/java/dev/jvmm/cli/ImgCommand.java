package dev.jvmm.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.DiskImage;
import dev.jvmm.devices.block.qcow2.Qcow2Checker;
import dev.jvmm.devices.block.qcow2.Qcow2Creator;
import dev.jvmm.devices.block.qcow2.Qcow2Header;
import dev.jvmm.devices.block.qcow2.Qcow2Image;
import dev.jvmm.devices.block.qcow2.Snapshot;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code jvmm img}: qemu-img's everyday commands for qcow2 and raw images.
 *
 * <p>Exit codes: 0 success; 1 bad input or an error (one line on stderr, "jvmm img: ..."); for {@code check}
 * as qemu-img: 2 the image has errors (corruption), 3 only leaked clusters were found.
 */
@Command(
        name = "img",
        mixinStandardHelpOptions = true,
        description = "Create, inspect, convert, check and resize disk images (qcow2 and raw), like qemu-img.",
        subcommands = {
            ImgCommand.Create.class,
            ImgCommand.Info.class,
            ImgCommand.Convert.class,
            ImgCommand.Check.class,
            ImgCommand.Resize.class,
            ImgCommand.SnapshotCmd.class
        })
public final class ImgCommand implements Callable<Integer> {
    public static final int EXIT_OK = 0, EXIT_ERROR = 1, EXIT_CORRUPT = 2, EXIT_LEAKS = 3;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getOut());
        return EXIT_OK;
    }

    /** Runs a body, turning the errors a user can cause into one line and exit code 1. */
    abstract static class Sub implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        PrintWriter out() {
            return spec.commandLine().getOut();
        }

        PrintWriter err() {
            return spec.commandLine().getErr();
        }

        @Override
        public final Integer call() {
            try {
                return run();
            } catch (NoSuchFileException e) {
                err().println("jvmm img: " + e.getFile() + ": no such file"
                        + (e.getReason() != null && !e.getReason().equals("no such file")
                                ? " (" + e.getReason() + ")"
                                : ""));
            } catch (IOException | IllegalArgumentException | UnsupportedOperationException e) {
                err().println("jvmm img: " + (e.getMessage() != null ? e.getMessage() : e.toString()));
            }
            err().flush();
            return EXIT_ERROR;
        }

        abstract int run() throws IOException;
    }

    static long parseSize(String s) {
        try {
            return Sizes.parse(s, 1);
        } catch (CommandLine.TypeConversionException e) {
            throw new IllegalArgumentException(e.getMessage());
        }
    }

    /** -o key=value,key=value as qemu-img takes it. */
    static Map<String, String> parseOptions(List<String> opts) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String group : opts) {
            for (String kv : group.split(",")) {
                if (kv.isBlank()) continue;
                int eq = kv.indexOf('=');
                m.put(eq < 0 ? kv : kv.substring(0, eq), eq < 0 ? "on" : kv.substring(eq + 1));
            }
        }
        return m;
    }

    static boolean onOff(String key, String v) {
        return switch (v) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new IllegalArgumentException("option " + key + "=" + v + ": expected on or off");
        };
    }

    static Qcow2Creator.Options qcow2Options(long size, Map<String, String> o, String backing, String backingFmt) {
        Qcow2Creator.Options c = Qcow2Creator.Options.of(size);
        for (var e : o.entrySet()) {
            String k = e.getKey(), v = e.getValue();
            switch (k) {
                case "cluster_size" -> c = c.withClusterSize((int) parseSize(v));
                case "compat" ->
                    c = c.withVersion(
                            switch (v) {
                                case "0.10", "v2" -> 2;
                                case "1.1", "v3" -> 3;
                                default -> throw new IllegalArgumentException("compat=" + v + ": expected 0.10 or 1.1");
                            });
                case "refcount_bits" -> c = c.withRefcountBits(Integer.parseInt(v));
                case "extended_l2" -> c = c.withExtendedL2(onOff(k, v));
                case "lazy_refcounts" -> c = c.withLazyRefcounts(onOff(k, v));
                case "compression_type" -> c = c.withCompression(v);
                case "preallocation" ->
                    c = c.withPreallocateMetadata(
                            switch (v) {
                                case "off" -> false;
                                case "metadata" -> true;
                                default ->
                                    throw new IllegalArgumentException(
                                            "preallocation=" + v + ": jvmm supports off and metadata");
                            });
                case "backing_file" -> backing = v;
                case "backing_fmt" -> backingFmt = v;
                default ->
                    throw new IllegalArgumentException("unknown qcow2 option '" + k
                            + "' (cluster_size, compat, refcount_bits, extended_l2, lazy_refcounts, "
                            + "compression_type, preallocation, backing_file, backing_fmt)");
            }
        }
        if (backing != null) c = c.withBacking(backing, backingFmt);
        return c;
    }

    static BlockBackend openSource(Path p, String format) throws IOException {
        requireExists(p);
        DiskImage.Format f = format == null ? DiskImage.Format.AUTO : parseFormat(format);
        return DiskImage.open(p, DiskImage.Options.SOURCE.withFormat(f));
    }

    /** -f qcow2 or -f raw. */
    static DiskImage.Format parseFormat(String format) {
        return switch (format) {
            case "qcow2" -> DiskImage.Format.QCOW2;
            case "raw" -> DiskImage.Format.RAW;
            default -> throw new IllegalArgumentException("unknown format '" + format + "' (qcow2 or raw)");
        };
    }

    static void requireExists(Path file) throws NoSuchFileException {
        if (!Files.exists(file)) throw new NoSuchFileException(file.toString());
    }

    /** Refuses a file that is not a qcow2 image; {@code rawHas} says what a raw image lacks for the command. */
    static void requireQcow2(Path file, String rawHas) throws IOException {
        requireExists(file);
        if (DiskImage.probe(file) != DiskImage.Format.QCOW2)
            throw new IllegalArgumentException(file + ": not a qcow2 image; raw images have " + rawHas);
    }

    /** A new, empty file where {@code file} is (an existing one is truncated). */
    static FileChannel createFile(Path file) throws IOException {
        return FileChannel.open(
                file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
    }

    /** Makes the file {@code size} bytes long, the new part a hole, by writing its last byte. */
    static void extendSparse(FileChannel ch, long size) throws IOException {
        ch.write(ByteBuffer.allocate(1), size - 1);
    }

    static String humanSize(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        if (u == 0) return bytes + " B";
        String s = String.format(Locale.ROOT, "%.3g", v);
        if (s.contains(".")) s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        return s + " " + units[u];
    }

    // ------------------------------------------------------------------ create

    @Command(name = "create", mixinStandardHelpOptions = true, description = "Create a new image.")
    static final class Create extends Sub {
        @Option(names = "-f", description = "format: qcow2 (default) or raw")
        String format = "qcow2";

        @Option(
                names = "-o",
                description = "options: cluster_size, compat, refcount_bits, extended_l2, lazy_refcounts, "
                        + "compression_type, preallocation=off|metadata, backing_file, backing_fmt")
        List<String> options = new ArrayList<>();

        @Option(names = "-b", description = "backing file (relative names are relative to the new image)")
        String backing;

        @Option(names = "-F", description = "backing file format")
        String backingFormat;

        @Option(names = "-q", description = "quiet")
        boolean quiet;

        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Parameters(
                index = "1",
                paramLabel = "SIZE",
                arity = "0..1",
                description = "size, with optional k, M, G, T suffix")
        String size;

        @Override
        int run() throws IOException {
            long bytes = size == null ? 0 : parseSize(size);
            if (size == null && backing == null && !parseOptions(options).containsKey("backing_file")) {
                throw new IllegalArgumentException("create: a size is needed unless a backing file gives it");
            }
            switch (parseFormat(format)) {
                case QCOW2 -> {
                    Qcow2Creator.Options o = qcow2Options(bytes, parseOptions(options), backing, backingFormat);
                    Qcow2Creator.create(file, o);
                    if (!quiet) {
                        long actual = Qcow2Image.readHeader(file).size;
                        out().println("Formatting '" + file + "', fmt=qcow2 cluster_size=" + o.clusterSize()
                                + " compression_type=" + o.compression() + " size=" + actual
                                + (o.backingFile() != null ? " backing_file=" + o.backingFile() : "")
                                + (o.backingFormat() != null ? " backing_fmt=" + o.backingFormat() : "")
                                + " lazy_refcounts=" + (o.lazyRefcounts() ? "on" : "off") + " refcount_bits="
                                + o.refcountBits());
                    }
                }
                default -> {
                    if (backing != null) throw new IllegalArgumentException("raw images have no backing file");
                    try (FileChannel ch = createFile(file)) {
                        ch.truncate(0);
                        if (bytes > 0) extendSparse(ch, (bytes + 511) & ~511L);
                    }
                    if (!quiet) out().println("Formatting '" + file + "', fmt=raw size=" + bytes);
                }
            }
            return EXIT_OK;
        }
    }

    // ------------------------------------------------------------------ info

    @Command(name = "info", mixinStandardHelpOptions = true, description = "Show information about an image.")
    static final class Info extends Sub {
        @Option(names = "--output", description = "human (default) or json")
        String output = "human";

        @Option(names = "-f", description = "format (probed if not given)")
        String format;

        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Override
        int run() throws IOException {
            if (!output.equals("human") && !output.equals("json")) {
                throw new IllegalArgumentException("--output=" + output + ": expected human or json");
            }
            requireExists(file);
            Map<String, Object> info = new LinkedHashMap<>();
            boolean qcow2 = format != null ? format.equals("qcow2") : DiskImage.probe(file) == DiskImage.Format.QCOW2;
            long actual = actualSize(file);
            List<Snapshot> snaps = List.of();
            Qcow2Header h = null;
            if (qcow2) {
                try (Qcow2Image img = Qcow2Image.open(file, true)) {
                    h = img.header();
                    snaps = img.snapshots();
                }
            }
            if (h != null && !snaps.isEmpty()) {
                List<Map<String, Object>> list = new ArrayList<>();
                for (Snapshot s : snaps) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("icount", s.icount() >= 0 ? s.icount() : null);
                    m.put("vm-clock-nsec", s.vmClockNanos() % 1_000_000_000L);
                    m.put("name", s.name());
                    m.put("date-sec", s.dateSeconds());
                    m.put("date-nsec", s.dateNanos());
                    m.put("vm-clock-sec", s.vmClockNanos() / 1_000_000_000L);
                    m.put("id", s.id());
                    m.put("vm-state-size", s.vmStateSize());
                    if (s.icount() < 0) m.remove("icount");
                    list.add(m);
                }
                info.put("snapshots", list);
            }
            info.put("virtual-size", h != null ? h.size : Files.size(file));
            info.put("filename", file.toString());
            if (h != null) info.put("cluster-size", h.clusterSize());
            info.put("format", qcow2 ? "qcow2" : "raw");
            info.put("actual-size", actual);
            Map<String, Object> formatSpecific = new LinkedHashMap<>();
            if (h != null) {
                formatSpecific.put("compat", h.version >= 3 ? "1.1" : "0.10");
                if (h.version >= 3) {
                    formatSpecific.put("compression-type", h.compressionType == 1 ? "zstd" : "zlib");
                    formatSpecific.put("lazy-refcounts", h.lazyRefcounts());
                }
                formatSpecific.put("refcount-bits", h.refcountBits());
                if (h.version >= 3) {
                    formatSpecific.put("corrupt", h.corrupt());
                    formatSpecific.put("extended-l2", h.extendedL2());
                }
                info.put("format-specific", Map.of("type", "qcow2", "data", formatSpecific));
                if (h.backingFile != null) {
                    Path full = Path.of(h.backingFile);
                    Path dir = file.toAbsolutePath().getParent();
                    if (!full.isAbsolute() && dir != null)
                        full = dir.resolve(full); // not normalized, as qemu-img prints it
                    info.put("full-backing-filename", full.toString());
                    info.put("backing-filename", h.backingFile);
                    if (h.backingFormat != null) info.put("backing-filename-format", h.backingFormat);
                }
                info.put("dirty-flag", h.dirty());
            } else {
                info.put("dirty-flag", false);
            }
            if (output.equals("json")) {
                out().println(new ObjectMapper()
                        .enable(SerializationFeature.INDENT_OUTPUT)
                        .writeValueAsString(info));
                return EXIT_OK;
            }
            PrintWriter o = out();
            long vsize = (Long) info.get("virtual-size");
            o.println("image: " + file);
            o.println("file format: " + info.get("format"));
            o.println("virtual size: " + humanSize(vsize) + " (" + vsize + " bytes)");
            o.println("disk size: " + humanSize(actual));
            if (h != null) {
                o.println("cluster_size: " + h.clusterSize());
                if (h.backingFile != null) {
                    o.println("backing file: " + h.backingFile + " (actual path: " + info.get("full-backing-filename")
                            + ")");
                    if (h.backingFormat != null) o.println("backing file format: " + h.backingFormat);
                }
                if (!snaps.isEmpty()) printSnapshots(o, snaps);
                o.println("Format specific information:");
                // The JSON names with spaces for dashes, as qemu-img prints them.
                formatSpecific.forEach((key, value) -> o.println("    " + key.replace('-', ' ') + ": " + value));
            }
            return EXIT_OK;
        }
    }

    /** Bytes the file occupies on disk: the sum of its data extents (SEEK_DATA/SEEK_HOLE), holes excluded. */
    static long actualSize(Path file) throws IOException {
        long size = Files.size(file);
        int fd;
        try {
            fd = dev.jvmm.kvm.Libc.open(file.toString(), dev.jvmm.kvm.Libc.O_RDONLY, 0);
        } catch (RuntimeException e) {
            return size;
        }
        try {
            long total = 0, pos = 0;
            while (pos < size) {
                long data = dev.jvmm.kvm.Libc.lseekRaw(fd, pos, dev.jvmm.kvm.Libc.SEEK_DATA);
                if (data < 0) break;
                long hole = dev.jvmm.kvm.Libc.lseekRaw(fd, data, dev.jvmm.kvm.Libc.SEEK_HOLE);
                if (hole < 0) hole = size;
                total += hole - data;
                pos = hole;
            }
            return total;
        } finally {
            dev.jvmm.kvm.Libc.close(fd);
        }
    }

    static void printSnapshots(PrintWriter o, List<Snapshot> snaps) {
        o.println("Snapshot list:");
        o.println(String.format(
                Locale.ROOT, "%-10s%-17s%7s%21s%13s%11s", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"));
        DateTimeFormatter df =
                DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());
        for (Snapshot s : snaps) {
            long clock = s.vmClockNanos();
            String vmClock = String.format(
                    Locale.ROOT,
                    "%04d:%02d:%02d.%03d",
                    clock / 3_600_000_000_000L,
                    clock / 60_000_000_000L % 60,
                    clock / 1_000_000_000L % 60,
                    clock / 1_000_000L % 1000);
            o.println(String.format(
                    Locale.ROOT,
                    "%-9s %-16s %7s %19s %s %10s",
                    s.id(),
                    s.name(),
                    humanSize(s.vmStateSize()),
                    df.format(Instant.ofEpochSecond(s.dateSeconds())),
                    vmClock,
                    s.icount() >= 0 ? String.valueOf(s.icount()) : "--"));
        }
    }

    // ------------------------------------------------------------------ convert

    @Command(
            name = "convert",
            mixinStandardHelpOptions = true,
            description = "Copy an image to a new file, flattening its backing chain (or rebasing it with -B).")
    static final class Convert extends Sub {
        @Option(names = "-f", description = "source format (probed if not given)")
        String sourceFormat;

        @Option(names = "-O", description = "output format: raw (default) or qcow2")
        String outputFormat = "raw";

        @Option(names = "-c", description = "compress the output clusters (qcow2)")
        boolean compress;

        @Option(names = "-B", description = "backing file of the output: only data differing from it is written")
        String backing;

        @Option(names = "-F", description = "format of the -B backing file")
        String backingFormat;

        @Option(names = "-o", description = "qcow2 output options, as for create")
        List<String> options = new ArrayList<>();

        @Option(names = "-p", description = "show progress (default on a terminal)")
        boolean progress;

        @Option(names = "-q", description = "quiet: no progress")
        boolean quiet;

        @Parameters(index = "0", paramLabel = "SOURCE")
        Path source;

        @Parameters(index = "1", paramLabel = "OUTPUT")
        Path output;

        @Override
        int run() throws IOException {
            if (!outputFormat.equals("raw") && !outputFormat.equals("qcow2")) {
                throw new IllegalArgumentException("-O " + outputFormat + ": expected raw or qcow2");
            }
            if (compress && !outputFormat.equals("qcow2")) throw new IllegalArgumentException("-c needs -O qcow2");
            if (backing != null && !outputFormat.equals("qcow2"))
                throw new IllegalArgumentException("-B needs -O qcow2");
            boolean showProgress = !quiet
                    && (progress
                            || (System.console() != null && System.console().isTerminal()));
            try (BlockBackend src = openSource(source, sourceFormat)) {
                long size = src.size();
                if (outputFormat.equals("raw")) {
                    convertToRaw(src, size, showProgress);
                } else {
                    Qcow2Creator.create(output, qcow2Options(size, parseOptions(options), backing, backingFormat));
                    try (Qcow2Image dst = Qcow2Image.open(output, false)) {
                        convertToQcow2(src, dst, size, showProgress);
                        dst.flush();
                    }
                }
            } catch (IOException | RuntimeException e) {
                throw e;
            }
            if (showProgress) {
                err().println();
            }
            return EXIT_OK;
        }

        private void convertToRaw(BlockBackend src, long size, boolean showProgress) throws IOException {
            int chunk = 1 << 20;
            byte[] buf = new byte[chunk];
            try (FileChannel ch = createFile(output)) {
                for (long off = 0; off < size; off += chunk) {
                    int n = (int) Math.min(chunk, size - off);
                    src.read(off, MemorySegment.ofArray(buf).asSlice(0, n));
                    // Zero 64 KiB pieces stay holes, so the output is sparse like qemu-img's.
                    for (int p = 0; p < n; p += 65536) {
                        int len = Math.min(65536, n - p);
                        if (!isZero(buf, p, len)) {
                            ByteBuffer bb = ByteBuffer.wrap(buf, p, len);
                            long at = off + p;
                            while (bb.hasRemaining()) at += ch.write(bb, at);
                        }
                    }
                    progress(showProgress, off + n, size);
                }
                ch.truncate(size);
                if (ch.size() < size) extendSparse(ch, size);
                ch.force(true);
            }
        }

        private void convertToQcow2(BlockBackend src, Qcow2Image dst, long size, boolean showProgress)
                throws IOException {
            int cs = dst.clusterSize();
            int chunk = Math.max(cs, 1 << 20);
            byte[] buf = new byte[chunk];
            byte[] base = dst.backing() != null ? new byte[chunk] : null;
            for (long off = 0; off < size; off += chunk) {
                int n = (int) Math.min(chunk, size - off);
                src.read(off, MemorySegment.ofArray(buf).asSlice(0, n));
                if (base != null) {
                    // What the output already shows through its backing file need not be written.
                    dst.read(off, MemorySegment.ofArray(base).asSlice(0, n));
                }
                for (int p = 0; p < n; p += cs) {
                    int len = Math.min(cs, n - p);
                    if (base != null) {
                        if (java.util.Arrays.equals(buf, p, p + len, base, p, p + len)) continue;
                        if (isZero(buf, p, len)) {
                            dst.writeZeroes(off + p, len, false);
                            continue;
                        }
                    } else if (isZero(buf, p, len)) {
                        continue;
                    }
                    if (compress) {
                        byte[] cluster = java.util.Arrays.copyOfRange(buf, p, p + len);
                        dst.writeCompressed(off + p, cluster, len);
                    } else {
                        dst.write(off + p, MemorySegment.ofArray(buf).asSlice(p, len));
                    }
                }
                progress(showProgress, off + n, size);
            }
        }

        private void progress(boolean show, long done, long total) {
            if (!show) return;
            err().print(String.format(Locale.ROOT, "\r    (%.2f/100%%)", total == 0 ? 100.0 : 100.0 * done / total));
            err().flush();
        }
    }

    static boolean isZero(byte[] b, int off, int len) {
        ByteBuffer bb = ByteBuffer.wrap(b, off, len);
        int i = 0;
        for (; i + 8 <= len; i += 8) if (bb.getLong(off + i) != 0) return false;
        for (; i < len; i++) if (b[off + i] != 0) return false;
        return true;
    }

    // ------------------------------------------------------------------ check

    @Command(
            name = "check",
            mixinStandardHelpOptions = true,
            description = {
                "Check an image's consistency.",
                "Exit codes: 0 clean, 1 error, 2 corruption, 3 leaked clusters only."
            })
    static final class Check extends Sub {
        @Option(names = "-r", description = "repair: leaks (free leaked clusters) or all")
        String repair;

        @Option(names = "-q", description = "quiet")
        boolean quiet;

        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Override
        int run() throws IOException {
            Qcow2Checker.Repair mode = repair == null
                    ? Qcow2Checker.Repair.NONE
                    : switch (repair) {
                        case "leaks" -> Qcow2Checker.Repair.LEAKS;
                        case "all" -> Qcow2Checker.Repair.ALL;
                        default -> throw new IllegalArgumentException("-r " + repair + ": expected leaks or all");
                    };
            requireQcow2(file, "nothing to check");
            Qcow2Checker.Result r;
            try (Qcow2Image img = Qcow2Image.open(file, mode == Qcow2Checker.Repair.NONE)) {
                r = new Qcow2Checker(img).run(mode);
                if (mode != Qcow2Checker.Repair.NONE) img.flush();
            }
            PrintWriter o = out();
            if (!quiet) {
                for (String m : r.messages()) o.println(m);
                long leaksLeft = r.leaks() - r.leaksFixed(), errorsLeft = r.corruptions() - r.corruptionsFixed();
                if (r.leaksFixed() > 0 || r.corruptionsFixed() > 0) {
                    o.println("The following inconsistencies were found and repaired:\n");
                    o.println("    " + r.leaksFixed() + " leaked clusters");
                    o.println("    " + r.corruptionsFixed() + " corruptions\n");
                }
                if (errorsLeft > 0) {
                    o.println("\n" + errorsLeft + " errors were found on the image.");
                    o.println("Data may be corrupted, or further writes to the image may corrupt it.");
                }
                if (leaksLeft > 0) {
                    o.println("\n" + leaksLeft + " leaked clusters were found on the image.");
                    o.println("This means waste of disk space, but no harm to data.");
                }
                if (errorsLeft == 0 && leaksLeft == 0) o.println("No errors were found on the image.");
                if (r.guestClusters() > 0) {
                    o.println(String.format(
                            Locale.ROOT,
                            "%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters",
                            r.allocatedClusters(),
                            r.guestClusters(),
                            100.0 * r.allocatedClusters() / r.guestClusters(),
                            r.allocatedClusters() == 0 ? 0.0 : 100.0 * r.fragmentedClusters() / r.allocatedClusters(),
                            r.allocatedClusters() == 0 ? 0.0 : 100.0 * r.compressedClusters() / r.allocatedClusters()));
                }
                o.println("Image end offset: " + r.imageEndOffset());
            }
            if (r.corruptions() - r.corruptionsFixed() > 0) return EXIT_CORRUPT;
            if (r.leaks() - r.leaksFixed() > 0) return EXIT_LEAKS;
            return EXIT_OK;
        }
    }

    // ------------------------------------------------------------------ resize

    @Command(
            name = "resize",
            mixinStandardHelpOptions = true,
            description = "Grow an image's virtual size (SIZE or +SIZE).")
    static final class Resize extends Sub {
        @Option(names = "-q", description = "quiet")
        boolean quiet;

        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Parameters(index = "1", paramLabel = "SIZE")
        String size;

        @Override
        int run() throws IOException {
            requireExists(file);
            if (size.startsWith("-")) throw new IllegalArgumentException("shrinking is not supported");
            boolean relative = size.startsWith("+");
            long n = parseSize(relative ? size.substring(1) : size);
            if (DiskImage.probe(file) == DiskImage.Format.QCOW2) {
                try (Qcow2Image img = Qcow2Image.open(file, false)) {
                    img.resize(relative ? img.size() + n : n);
                }
            } else {
                long cur = Files.size(file);
                long target = relative ? cur + n : n;
                if (target < cur)
                    throw new IllegalArgumentException("shrinking is not supported (current size " + cur + ")");
                try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                    if (target > cur) extendSparse(ch, target);
                }
            }
            if (!quiet) out().println("Image resized.");
            return EXIT_OK;
        }
    }

    // ------------------------------------------------------------------ snapshot

    @Command(name = "snapshot", mixinStandardHelpOptions = true, description = "List internal snapshots (-l).")
    static final class SnapshotCmd extends Sub {
        @Option(names = "-l", required = true, description = "list the snapshots")
        boolean list;

        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Override
        int run() throws IOException {
            requireQcow2(file, "no snapshots");
            try (Qcow2Image img = Qcow2Image.open(file, true)) {
                if (!img.snapshots().isEmpty()) printSnapshots(out(), img.snapshots());
            }
            return EXIT_OK;
        }
    }
}
