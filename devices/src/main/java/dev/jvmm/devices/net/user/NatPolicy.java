package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.NetBackendException;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

/**
 * Where a guest's flow may go. 10.0.2.2 is the host's loopback; 10.0.2.3:53 the host's resolver; the rest of the
 * virtual network, loopback, link-local (cloud metadata services live there), multicast and broadcast are refused.
 * With restrict=on everything is refused: only port forwards reach the guest.
 */
final class NatPolicy {
    private final boolean restrict;
    private final InetSocketAddress resolver;

    NatPolicy(boolean restrict, InetSocketAddress resolver) {
        this.restrict = restrict;
        this.resolver = resolver;
    }

    boolean restrict() {
        return restrict;
    }

    /** The host address a guest destination maps to, or null if the guest may not reach it. */
    InetSocketAddress translate(int dst, int port) {
        if (restrict || port == 0) return null;
        if (dst == Inet.GATEWAY) return new InetSocketAddress(Inet.address(Inet.LOOPBACK), port);
        if (dst == Inet.DNS) return port == 53 ? resolver : null;
        if (refused(dst)) return null;
        return new InetSocketAddress(Inet.address(dst), port);
    }

    /** Whether the guest's ICMP echo to {@code dst} may leave through a host ping socket (10.0.2.2/3 answer themselves). */
    boolean echoAllowed(int dst) {
        return !restrict && !refused(dst);
    }

    /** Destinations no guest flow may reach: the virtual network itself, this host, link-local, multicast, broadcast. */
    static boolean refused(int dst) {
        int first = dst >>> 24;
        return Inet.inNetwork(dst) || first == 0 || first == 127 || first >= 224 || (dst >>> 16) == ((169 << 8) | 254);
    }

    /** The first IPv4 nameserver of /etc/resolv.conf (systemd-resolved's 127.0.0.53 included: it is the host's). */
    static InetSocketAddress hostResolver(Path resolvConf) {
        List<String> lines;
        try {
            lines = Files.readAllLines(resolvConf);
        } catch (NoSuchFileException e) {
            throw new NetBackendException("user network: " + resolvConf + " does not exist; give the DNS server with resolver=IP");
        } catch (IOException e) {
            throw new NetBackendException("user network: cannot read " + resolvConf + " (" + e.getMessage() + "); give the DNS server with resolver=IP");
        }
        for (String line : lines) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 2 && f[0].equals("nameserver") && f[1].matches("\\d{1,3}(\\.\\d{1,3}){3}")) {
                return new InetSocketAddress(f[1], 53);
            }
        }
        throw new NetBackendException("user network: " + resolvConf + " names no IPv4 nameserver; give the DNS server with resolver=IP");
    }
}
