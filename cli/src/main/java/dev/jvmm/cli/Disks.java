package dev.jvmm.cli;

import dev.jvmm.boot.MachineConfig.DiskConfig;
import java.nio.file.Path;
import java.util.Optional;
import picocli.CommandLine;

/**
 * {@code --disk PATH[,readonly][,serial=ID][,transport=mmio|pci][,format=raw|qcow2][,backing=any]}. Everything after
 * the first comma is an option, so a path with a comma cannot be given. {@code backing=any} lets a qcow2 image's
 * backing files lie anywhere; by default they must be in the image's directory or below. {@code bps=SIZE} and
 * {@code iops=N} limit the guest's bytes and requests a second ({@link RateLimits}).
 */
public final class Disks implements CommandLine.ITypeConverter<DiskConfig> {
    @Override
    public DiskConfig convert(String value) {
        return parse(value);
    }

    public static DiskConfig parse(String value) {
        String[] parts = value.split(",", -1);
        if (parts[0].isEmpty()) throw fail(value, "the disk image path is missing");
        boolean readOnly = false;
        Optional<String> serial = Optional.empty();
        DiskConfig.Transport transport = DiskConfig.Transport.MMIO;
        DiskConfig.Format format = DiskConfig.Format.AUTO;
        DiskConfig.BackingFiles backing = DiskConfig.BackingFiles.IMAGE_DIRECTORY;
        RateLimits.Builder limit = new RateLimits.Builder(value);
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            int eq = p.indexOf('=');
            String key = eq < 0 ? p : p.substring(0, eq), val = eq < 0 ? null : p.substring(eq + 1);
            switch (key) {
                case "readonly", "ro" -> {
                    if (val != null) throw fail(value, "readonly takes no value");
                    readOnly = true;
                }
                case "serial" -> {
                    if (val == null || val.isEmpty()) throw fail(value, "serial needs a value (serial=ID)");
                    if (val.length() > 20 || !val.chars().allMatch(c -> c >= 0x20 && c < 0x7f))
                        throw fail(value, "the serial must be at most 20 printable ASCII characters");
                    serial = Optional.of(val);
                }
                case "transport" -> {
                    if ("mmio".equals(val)) transport = DiskConfig.Transport.MMIO;
                    else if ("pci".equals(val)) transport = DiskConfig.Transport.PCI;
                    else throw fail(value, "transport must be mmio or pci, not '" + val + "'");
                }
                case "format" -> {
                    if ("raw".equals(val)) format = DiskConfig.Format.RAW;
                    else if ("qcow2".equals(val)) format = DiskConfig.Format.QCOW2;
                    else throw fail(value, "format must be raw or qcow2, not '" + val + "'");
                }
                case "backing" -> {
                    if ("any".equals(val)) backing = DiskConfig.BackingFiles.ANY;
                    else if ("dir".equals(val)) backing = DiskConfig.BackingFiles.IMAGE_DIRECTORY;
                    else
                        throw fail(
                                value,
                                "backing must be any (backing files anywhere)"
                                        + " or dir (in the image's directory, the default), not '"
                                        + val + "'");
                }
                case "bps" -> limit.bytesPerSecond(val);
                case "iops" -> limit.opsPerSecond(key, val);
                default ->
                    throw fail(
                            value,
                            "unknown option '" + p
                                    + "' (use readonly, serial=ID, transport=mmio|pci, format=raw|qcow2, backing=any,"
                                    + " bps=SIZE, iops=N)");
            }
        }
        return new DiskConfig(Path.of(parts[0]), readOnly, serial, transport, format, backing, limit.build());
    }

    private static CommandLine.TypeConversionException fail(String value, String why) {
        return new CommandLine.TypeConversionException("'" + value + "': " + why);
    }
}
