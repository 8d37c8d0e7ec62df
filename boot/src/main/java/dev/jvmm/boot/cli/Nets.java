package dev.jvmm.boot.cli;

import dev.jvmm.boot.MachineConfig.DiskConfig;
import dev.jvmm.boot.MachineConfig.NicConfig;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetConfigException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import picocli.CommandLine;

/**
 * {@code --net user[,hostfwd=...][,guestfwd=...][,hostloopback=on][,restrict=on][,mac=...][,resolver=IP[:PORT]]
 * | tap,ifname=NAME[,bridge=BR][,mac=...][,queues=N] | none},
 * each with an optional {@code transport=pci|mmio} (default pci). {@code none}: no NIC, not even the default one.
 */
public final class Nets implements CommandLine.ITypeConverter<Nets.NetOption> {
    /** One --net value: a NIC, or none. */
    public record NetOption(Optional<NicConfig> nic) {}

    @Override
    public NetOption convert(String value) {
        return parse(value);
    }

    public static NetOption parse(String value) {
        if (value.equals("none")) return new NetOption(Optional.empty());
        DiskConfig.Transport transport = DiskConfig.Transport.PCI;
        List<String> rest = new ArrayList<>();
        for (String part : value.split(",", -1)) {
            if (!part.startsWith("transport=")) {
                rest.add(part);
                continue;
            }
            String t = part.substring("transport=".length());
            if (t.equals("pci")) transport = DiskConfig.Transport.PCI;
            else if (t.equals("mmio")) transport = DiskConfig.Transport.MMIO;
            else
                throw new CommandLine.TypeConversionException(
                        "'" + value + "': transport must be pci or mmio, not '" + t + "'");
        }
        try {
            return new NetOption(Optional.of(new NicConfig(NetConfig.parse(String.join(",", rest)), transport)));
        } catch (NetConfigException e) {
            throw new CommandLine.TypeConversionException(e.getMessage());
        }
    }
}
