package dev.jvmm.cli;

import dev.jvmm.boot.MachineConfig.DiskConfig;
import dev.jvmm.boot.MachineConfig.VsockConfig;
import dev.jvmm.devices.vsock.UnixSocketBackend;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import picocli.CommandLine;

/** {@code --vsock cid=CID,uds=PATH[,transport=pci|mmio]}: Firecracker's vsock, its guest CID and Unix socket. */
public final class Vsocks implements CommandLine.ITypeConverter<VsockConfig> {
    @Override
    public VsockConfig convert(String value) {
        return parse(value);
    }

    public static VsockConfig parse(String value) {
        Long cid = null;
        Path uds = null;
        DiskConfig.Transport transport = DiskConfig.Transport.PCI;
        for (String part : value.split(",", -1)) {
            int eq = part.indexOf('=');
            String key = eq < 0 ? part : part.substring(0, eq), val = eq < 0 ? "" : part.substring(eq + 1);
            switch (key) {
                case "cid" -> {
                    try {
                        cid = Long.parseLong(val);
                    } catch (NumberFormatException e) {
                        throw fail(value, "cid must be a number from 3 to 4294967294, not '" + val + "'");
                    }
                }
                case "uds", "uds_path" -> {
                    if (val.isEmpty()) throw fail(value, "uds needs the path of a Unix socket (uds=PATH)");
                    try {
                        uds = Path.of(val);
                    } catch (InvalidPathException e) {
                        throw fail(value, "uds " + val + ": " + e.getReason());
                    }
                }
                case "transport" -> {
                    if ("pci".equals(val)) transport = DiskConfig.Transport.PCI;
                    else if ("mmio".equals(val)) transport = DiskConfig.Transport.MMIO;
                    else throw fail(value, "transport must be pci or mmio, not '" + val + "'");
                }
                default -> throw fail(value, "unknown option '" + key + "' (cid=, uds=, transport=)");
            }
        }
        if (cid == null) throw fail(value, "cid= is missing (the guest's context ID, e.g. cid=3)");
        if (uds == null) throw fail(value, "uds= is missing (the Unix socket host programs connect to)");
        VsockConfig config;
        try {
            config = new VsockConfig(cid, uds, transport);
        } catch (IllegalArgumentException e) {
            throw fail(value, e.getMessage());
        }
        // Said now rather than after the kernel is read; the machine checks again when it listens.
        String problem = UnixSocketBackend.pathProblem(uds);
        if (problem != null) throw fail(value, problem);
        return config;
    }

    private static CommandLine.TypeConversionException fail(String value, String why) {
        return new CommandLine.TypeConversionException("'" + value + "': " + why);
    }
}
