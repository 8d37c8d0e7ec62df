package dev.jvmm.cli;

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
 * each with an optional {@code transport=pci|mmio} (default pci) and rate limits {@code rx-bps=SIZE},
 * {@code tx-bps=SIZE}, {@code rx-pps=N}, {@code tx-pps=N} (bytes and frames a second towards and from the guest,
 * {@link RateLimits}). {@code none}: no NIC, not even the default one.
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
        RateLimits.Builder rx = new RateLimits.Builder(value), tx = new RateLimits.Builder(value);
        for (String part : value.split(",", -1)) {
            int eq = part.indexOf('=');
            String key = eq < 0 ? part : part.substring(0, eq), val = eq < 0 ? null : part.substring(eq + 1);
            switch (key) {
                case "rx-bps" -> rx.bytesPerSecond(val);
                case "tx-bps" -> tx.bytesPerSecond(val);
                case "rx-pps" -> rx.opsPerSecond(key, val);
                case "tx-pps" -> tx.opsPerSecond(key, val);
                default -> {}
            }
            if (key.matches("[rt]x-[bp]ps")) continue;
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
            NetConfig backend = NetConfig.parse(String.join(",", rest));
            return new NetOption(Optional.of(new NicConfig(backend, transport, rx.build(), tx.build())));
        } catch (NetConfigException e) {
            throw new CommandLine.TypeConversionException(e.getMessage());
        }
    }
}
