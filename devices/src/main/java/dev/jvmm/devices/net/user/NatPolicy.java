package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.NetBackendException;
import dev.jvmm.devices.net.NetConfig;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntPredicate;

/**
 * Where a guest's flow may go, decided before a host socket is opened. The host itself is closed by default,
 * since user-mode networking is what a Linux guest gets without asking and local services (databases, a
 * container engine's API) often trust whatever reaches them: 10.0.2.2 answers ARP, ping and DHCP as the gateway,
 * but its ports are the host's loopback only with hostloopback=on, which also opens the host's own addresses.
 * A guestfwd opens one host service at an address of the virtual network. Link-local (169.254/16) and the
 * cloud metadata services outside it stay closed whatever the options: they hand out the host's credentials.
 * 10.0.2.3:53 goes to the resolver the user configured (loopback included): the user chose it, not the guest.
 * With restrict=on only guestfwd remains (QEMU's restrict); port forwards toward the guest are not flows here.
 */
final class NatPolicy {
    /** Why a guest flow is refused: the log line says what would allow it. */
    enum Refusal {
        /** restrict=on: the user asked for it. */
        RESTRICTED,
        /** 10.0.2.2 without hostloopback=on. */
        HOST_LOOPBACK,
        /** An address of one of this host's interfaces, without hostloopback=on. */
        HOST_ADDRESS,
        /** Link-local or a cloud metadata service: never. */
        METADATA,
        /** Nowhere a flow goes: loopback, 0/8, the rest of the virtual network, multicast, broadcast, port 0. */
        UNROUTABLE
    }

    /** Alibaba Cloud's metadata service, outside link-local. */
    static final int ALIBABA_METADATA = Inet.ip(100, 100, 100, 200);
    /** Azure's WireServer (the VM agent's endpoint, with its certificates), outside link-local. */
    static final int AZURE_WIRESERVER = Inet.ip(168, 63, 129, 16);
    /** The guest address the log line suggests for a guestfwd. */
    static final String SUGGESTED_FORWARD_ADDRESS = "10.0.2.100";

    private final boolean restrict, hostLoopback;
    private final InetSocketAddress resolver;
    private final IntPredicate hostAddress;
    /** guestfwd by guest address and port ({@link #key}). */
    private final Map<Long, InetSocketAddress> guestForwards = new HashMap<>();

    private final int[] guestForwardAddresses;

    /** {@code hostAddress} tells whether an address belongs to this host ({@link HostAddresses} outside tests). */
    NatPolicy(NetConfig.User config, InetSocketAddress resolver, IntPredicate hostAddress) {
        this.restrict = config.restrict();
        this.hostLoopback = config.hostLoopback();
        this.resolver = resolver;
        this.hostAddress = hostAddress;
        List<NetConfig.GuestForward> forwards = config.guestForwards();
        for (NetConfig.GuestForward g : forwards) {
            guestForwards.put(
                    key(Inet.ip(g.guestAddress()), g.guestPort()),
                    new InetSocketAddress(g.hostAddress(), g.hostPort()));
        }
        this.guestForwardAddresses = forwards.stream()
                .mapToInt(g -> Inet.ip(g.guestAddress()))
                .distinct()
                .toArray();
    }

    private static long key(int ip, int port) {
        return ((ip & 0xffffffffL) << 16) | port;
    }

    boolean restrict() {
        return restrict;
    }

    /** Whether {@code ip} is a guestfwd address: the stack answers ARP and ping for it as for the gateway. */
    boolean isGuestForwardAddress(int ip) {
        for (int a : guestForwardAddresses) if (a == ip) return true;
        return false;
    }

    /** The host address a guest flow to {@code dst:port} goes to, or null if refused ({@link #refusal} says why). */
    InetSocketAddress translate(NetConfig.Protocol protocol, int dst, int port) {
        if (protocol == NetConfig.Protocol.TCP && !guestForwards.isEmpty()) {
            InetSocketAddress forward = guestForwards.get(key(dst, port));
            if (forward != null) return forward;
        }
        if (refusal(dst, port) != null) return null;
        if (dst == Inet.GATEWAY) return new InetSocketAddress(Inet.address(Inet.LOOPBACK), port);
        if (dst == Inet.DNS) return resolver;
        return new InetSocketAddress(Inet.address(dst), port);
    }

    /** Why a guest flow to {@code dst:port} is refused, guestfwd aside; null if it is allowed. */
    Refusal refusal(int dst, int port) {
        if (restrict) return Refusal.RESTRICTED;
        if (port == 0) return Refusal.UNROUTABLE;
        if (dst == Inet.DNS) return port == 53 ? null : Refusal.UNROUTABLE;
        return refusal(dst);
    }

    /**
     * Whether the guest's ICMP echo to {@code dst} may leave through a host ping socket (10.0.2.2/3 answer themselves).
     */
    boolean echoAllowed(int dst) {
        return !restrict && refusal(dst) == null;
    }

    private Refusal refusal(int dst) {
        if (dst == Inet.GATEWAY) return hostLoopback ? null : Refusal.HOST_LOOPBACK;
        if (metadata(dst)) return Refusal.METADATA;
        if (unroutable(dst)) return Refusal.UNROUTABLE;
        if (!hostLoopback && hostAddress.test(dst)) return Refusal.HOST_ADDRESS;
        return null;
    }

    /** Link-local (where most clouds serve metadata) and the metadata services elsewhere. */
    static boolean metadata(int dst) {
        return (dst >>> 16) == ((169 << 8) | 254) || dst == ALIBABA_METADATA || dst == AZURE_WIRESERVER;
    }

    /**
     * Destinations no guest flow goes to: the virtual network itself, 0/8, loopback, multicast and above, broadcast.
     */
    static boolean unroutable(int dst) {
        int first = dst >>> 24;
        return Inet.inNetwork(dst) || first == 0 || first == 127 || first >= 224;
    }

    /**
     * The line logged when a guest flow is refused: where to, and the option that would allow it; null for
     * refusals not worth a line (restrict=on was asked for; the unroutable ones name no place a flow could go).
     */
    static String message(Refusal why, NetConfig.Protocol protocol, int dst, int port) {
        if (why == null) return null;
        boolean tcp = protocol == NetConfig.Protocol.TCP;
        String flow = "user network: guest " + (tcp ? "connection" : "datagram") + " to " + Inet.text(dst) + ":" + port;
        String guestfwd = " or guestfwd=tcp:" + SUGGESTED_FORWARD_ADDRESS + ":" + port + "-";
        return switch (why) {
            case HOST_LOOPBACK ->
                flow + " refused; hostloopback=on" + (tcp ? guestfwd + "127.0.0.1:" + port : "") + " allows it";
            case HOST_ADDRESS ->
                flow + " (an address of this host) refused; hostloopback=on"
                        + (tcp ? guestfwd + Inet.text(dst) + ":" + port : "") + " allows it";
            case METADATA ->
                flow
                        + " refused: link-local and cloud metadata addresses stay closed to the guest"
                        + " whatever the options";
            case RESTRICTED, UNROUTABLE -> null;
        };
    }

    /** The first IPv4 nameserver of /etc/resolv.conf (systemd-resolved's 127.0.0.53 included: it is the host's). */
    static InetSocketAddress hostResolver(Path resolvConf) {
        List<String> lines;
        try {
            lines = Files.readAllLines(resolvConf);
        } catch (NoSuchFileException e) {
            throw new NetBackendException(
                    "user network: " + resolvConf + " does not exist; give the DNS server with resolver=IP");
        } catch (IOException e) {
            throw new NetBackendException("user network: cannot read " + resolvConf + " (" + e.getMessage()
                    + "); give the DNS server with resolver=IP");
        }
        for (String line : lines) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 2 && f[0].equals("nameserver") && f[1].matches("\\d{1,3}(\\.\\d{1,3}){3}")) {
                return new InetSocketAddress(f[1], 53);
            }
        }
        throw new NetBackendException(
                "user network: " + resolvConf + " names no IPv4 nameserver; give the DNS server with resolver=IP");
    }
}
