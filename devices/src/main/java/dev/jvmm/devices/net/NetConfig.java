package dev.jvmm.devices.net;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A network backend as the user wrote it:
 * {@code user[,hostfwd=...][,guestfwd=...][,hostloopback=on][,restrict=on][,mac=...][,resolver=...]} or
 * {@code tap,ifname=NAME[,bridge=BR][,mac=...][,queues=N]}.
 */
public sealed interface NetConfig permits NetConfig.User, NetConfig.Tap {
    Optional<MacAddress> mac();

    enum Protocol {
        TCP,
        UDP
    }

    /**
     * {@code hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT}: connections to the host's
     * HOSTADDR:HOSTPORT reach the guest's GUESTPORT. An empty HOSTADDR means all addresses; HOSTPORT 0 picks a
     * free port; an empty GUESTADDR means the address DHCP hands out (10.0.2.15).
     */
    record HostForward(
            Protocol protocol,
            InetAddress hostAddress,
            int hostPort,
            Optional<InetAddress> guestAddress,
            int guestPort) {}

    /**
     * QEMU's {@code guestfwd=[tcp]:[GUESTADDR]:GUESTPORT-[tcp:]HOSTADDR:HOSTPORT}: the guest's TCP connections to
     * GUESTADDR:GUESTPORT (an otherwise unused address of 10.0.2.0/24; empty means 10.0.2.4, as in QEMU) reach the
     * host's HOSTADDR:HOSTPORT, whatever hostloopback says: one host service, opened on purpose.
     */
    record GuestForward(InetAddress guestAddress, int guestPort, InetAddress hostAddress, int hostPort) {}

    /**
     * User-mode networking. The guest reaches the host itself (10.0.2.2 as the host's loopback, the host's own
     * addresses) only with {@code hostLoopback}, or through {@code guestForwards}. {@code resolver} overrides
     * where the DNS forwarder at 10.0.2.3 sends queries (default: the first nameserver in /etc/resolv.conf).
     */
    record User(
            List<HostForward> forwards,
            List<GuestForward> guestForwards,
            boolean restrict,
            boolean hostLoopback,
            Optional<MacAddress> mac,
            Optional<InetSocketAddress> resolver)
            implements NetConfig {
        public User {
            forwards = List.copyOf(forwards);
            guestForwards = List.copyOf(guestForwards);
        }

        public static User defaults() {
            return new User(List.of(), List.of(), false, false, Optional.empty(), Optional.empty());
        }
    }

    /**
     * A TAP interface, created if missing, optionally added to {@code bridge}; {@code queues} fds (IFF_MULTI_QUEUE if
     * above 1).
     */
    record Tap(String ifname, Optional<String> bridge, Optional<MacAddress> mac, int queues) implements NetConfig {}

    Pattern FORWARD = Pattern.compile("(?:(tcp|udp)?:)?([^:]*):(\\d+)-([^:]*):(\\d+)");
    Pattern GUEST_FORWARD = Pattern.compile("(?:([a-z]*):)?([^:-]*):(\\d+)-(.*)");
    Pattern GUEST_FORWARD_TARGET = Pattern.compile("(?:tcp:)?([^:]+):(\\d+)");

    /** Parses a --net value; every problem is a {@link NetConfigException} with one line naming it. */
    static NetConfig parse(String text) {
        String[] parts = text.split(",", -1);
        String kind = parts[0].trim();
        Map<String, List<String>> options = new LinkedHashMap<>();
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            int eq = p.indexOf('=');
            if (eq <= 0) throw new NetConfigException("--net " + kind + ": option '" + p + "' is not KEY=VALUE");
            options.computeIfAbsent(p.substring(0, eq), k -> new ArrayList<>()).add(p.substring(eq + 1));
        }
        return switch (kind) {
            case "user" -> parseUser(options);
            case "tap" -> parseTap(options);
            default -> throw new NetConfigException("--net '" + kind + "': unknown backend; use 'user' or 'tap'");
        };
    }

    private static String single(String kind, Map<String, List<String>> options, String key) {
        List<String> values = options.remove(key);
        if (values == null) return null;
        if (values.size() > 1)
            throw new NetConfigException(
                    "--net " + kind + ": option '" + key + "' given " + values.size() + " times; give it once");
        return values.get(0);
    }

    private static void rejectUnknown(String kind, Map<String, List<String>> options, String known) {
        if (!options.isEmpty()) {
            throw new NetConfigException("--net " + kind + ": unknown option '"
                    + options.keySet().iterator().next() + "'; known options: " + known);
        }
    }

    private static Optional<MacAddress> mac(String kind, Map<String, List<String>> options) {
        String v = single(kind, options, "mac");
        if (v == null) return Optional.empty();
        MacAddress mac;
        try {
            mac = MacAddress.parse(v);
        } catch (IllegalArgumentException e) {
            throw new NetConfigException("--net " + kind + ": " + e.getMessage());
        }
        if (mac.isMulticast() || mac.value() == 0) {
            throw new NetConfigException("--net " + kind + ": mac=" + v
                    + " is multicast or zero; use a unicast address such as 52:54:00:12:34:56");
        }
        return Optional.of(mac);
    }

    private static User parseUser(Map<String, List<String>> options) {
        List<HostForward> forwards = new ArrayList<>();
        List<String> fwd = options.remove("hostfwd");
        if (fwd != null) for (String f : fwd) forwards.add(parseForward(f));
        List<GuestForward> guestForwards = new ArrayList<>();
        List<String> gfwd = options.remove("guestfwd");
        if (gfwd != null) {
            for (String f : gfwd) {
                GuestForward g = parseGuestForward(f);
                for (GuestForward other : guestForwards) {
                    if (other.guestAddress().equals(g.guestAddress()) && other.guestPort() == g.guestPort()) {
                        throw new NetConfigException("--net user: guestfwd=" + f + ": "
                                + g.guestAddress().getHostAddress() + ":" + g.guestPort()
                                + " is forwarded twice; give each guest address and port once");
                    }
                }
                guestForwards.add(g);
            }
        }
        boolean restrict = flag(options, "restrict");
        boolean hostLoopback = flag(options, "hostloopback");
        if (restrict && hostLoopback) {
            throw new NetConfigException(
                    "--net user: hostloopback=on opens nothing with restrict=on (every outgoing flow is refused);"
                            + " drop one, or give guestfwd= for the host services the guest needs");
        }
        Optional<MacAddress> mac = mac("user", options);
        Optional<InetSocketAddress> resolver = Optional.empty();
        String res = single("user", options, "resolver");
        if (res != null) {
            int colon = res.lastIndexOf(':');
            String host = colon < 0 ? res : res.substring(0, colon);
            int port = colon < 0 ? 53 : port("user", "resolver=" + res, res.substring(colon + 1), false);
            resolver = Optional.of(new InetSocketAddress(literal("user", "resolver=" + res, host), port));
        }
        rejectUnknown("user", options, "hostfwd, guestfwd, hostloopback, restrict, mac, resolver");
        return new User(forwards, guestForwards, restrict, hostLoopback, mac, resolver);
    }

    /** An on/off option of --net user (QEMU also takes yes/no/y/n); false when absent. */
    private static boolean flag(Map<String, List<String>> options, String key) {
        String v = single("user", options, key);
        if (v == null) return false;
        return switch (v) {
            case "on", "yes", "y" -> true;
            case "off", "no", "n" -> false;
            default -> throw new NetConfigException("--net user: " + key + "=" + v + " must be on or off");
        };
    }

    private static GuestForward parseGuestForward(String f) {
        String what = "guestfwd=" + f;
        Matcher m = GUEST_FORWARD.matcher(f);
        if (!m.matches()) {
            throw new NetConfigException(
                    "--net user: " + what + " is not [tcp]:[GUESTADDR]:GUESTPORT-HOSTADDR:HOSTPORT,"
                            + " e.g. guestfwd=tcp:10.0.2.100:8080-127.0.0.1:8080");
        }
        if (m.group(1) != null && !m.group(1).isEmpty() && !m.group(1).equals("tcp")) {
            throw new NetConfigException(
                    "--net user: " + what + ": guestfwd forwards TCP only, not '" + m.group(1) + "'");
        }
        String target = m.group(4);
        if (target.startsWith("cmd:")) {
            throw new NetConfigException("--net user: " + what + ": cmd: (a command per connection) is not supported;"
                    + " forward to a host address instead, e.g. guestfwd=tcp:10.0.2.100:8080-127.0.0.1:8080");
        }
        Matcher t = GUEST_FORWARD_TARGET.matcher(target);
        if (!t.matches()) {
            throw new NetConfigException("--net user: " + what + ": '" + target + "' is not [tcp:]HOSTADDR:HOSTPORT"
                    + " (other character devices are not supported), e.g. guestfwd=tcp:10.0.2.100:8080-127.0.0.1:8080");
        }
        InetAddress guest = literal("user", what, m.group(2).isEmpty() ? "10.0.2.4" : m.group(2));
        byte[] g = guest.getAddress();
        int last = g[3] & 0xff;
        // QEMU (libslirp) refuses the gateway and the DNS address too; .15 is the guest's own, .0 and .255 not hosts.
        if (g[0] != 10 || g[1] != 0 || g[2] != 2 || last == 0 || last == 2 || last == 3 || last == 15 || last == 255) {
            throw new NetConfigException(
                    "--net user: " + what + ": the guest address must be an unused one of 10.0.2.0/24," + " not "
                            + guest.getHostAddress() + " (10.0.2.2, .3 and .15 are taken), e.g. 10.0.2.100");
        }
        int guestPort = port("user", what, m.group(3), false);
        InetAddress host = literal("user", what, t.group(1));
        int hostPort = port("user", what, t.group(2), false);
        return new GuestForward(guest, guestPort, host, hostPort);
    }

    private static HostForward parseForward(String f) {
        Matcher m = FORWARD.matcher(f);
        if (!m.matches()) {
            throw new NetConfigException("--net user: hostfwd=" + f
                    + " is not [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, e.g. "
                    + "hostfwd=tcp:127.0.0.1:2222-:22");
        }
        Protocol proto = "udp".equals(m.group(1)) ? Protocol.UDP : Protocol.TCP;
        String what = "hostfwd=" + f;
        InetAddress host = m.group(2).isEmpty() ? literal("user", what, "0.0.0.0") : literal("user", what, m.group(2));
        int hostPort = port("user", what, m.group(3), true);
        Optional<InetAddress> guest =
                m.group(4).isEmpty() ? Optional.empty() : Optional.of(literal("user", what, m.group(4)));
        int guestPort = port("user", what, m.group(5), false);
        return new HostForward(proto, host, hostPort, guest, guestPort);
    }

    private static int port(String kind, String what, String digits, boolean zeroAllowed) {
        int p;
        try {
            p = Integer.parseInt(digits);
        } catch (NumberFormatException e) {
            p = -1;
        }
        if (p < (zeroAllowed ? 0 : 1) || p > 65535) {
            throw new NetConfigException("--net " + kind + ": " + what + ": port '" + digits + "' must be "
                    + (zeroAllowed ? "0" : "1") + " to 65535");
        }
        return p;
    }

    /** An IPv4 literal only: a name here would make parsing depend on DNS. */
    private static InetAddress literal(String kind, String what, String text) {
        if (!text.matches("\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}")) {
            throw new NetConfigException(
                    "--net " + kind + ": " + what + ": '" + text + "' is not an IPv4 address like 127.0.0.1");
        }
        byte[] b = new byte[4];
        String[] octets = text.split("\\.");
        for (int i = 0; i < 4; i++) {
            int v = Integer.parseInt(octets[i]);
            if (v > 255)
                throw new NetConfigException(
                        "--net " + kind + ": " + what + ": '" + text + "' is not an IPv4 address like 127.0.0.1");
            b[i] = (byte) v;
        }
        try {
            return InetAddress.getByAddress(b);
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    private static Tap parseTap(Map<String, List<String>> options) {
        String ifname = single("tap", options, "ifname");
        if (ifname == null)
            throw new NetConfigException("--net tap: needs ifname=NAME (the TAP interface to use or create)");
        if (ifname.isEmpty() || ifname.length() > 15 || !ifname.matches("[A-Za-z0-9_.-]+")) {
            throw new NetConfigException(
                    "--net tap: ifname=" + ifname + " must be 1 to 15 letters, digits, '_', '.' or '-'");
        }
        String bridge = single("tap", options, "bridge");
        if (bridge != null && (bridge.isEmpty() || bridge.length() > 15 || !bridge.matches("[A-Za-z0-9_.-]+"))) {
            throw new NetConfigException(
                    "--net tap: bridge=" + bridge + " must be 1 to 15 letters, digits, '_', '.' or '-'");
        }
        Optional<MacAddress> mac = mac("tap", options);
        int queues = 1;
        String q = single("tap", options, "queues");
        if (q != null) {
            queues = q.matches("\\d{1,2}") ? Integer.parseInt(q) : -1;
            if (queues < 1 || queues > 16) throw new NetConfigException("--net tap: queues=" + q + " must be 1 to 16");
        }
        rejectUnknown("tap", options, "ifname, bridge, mac, queues");
        return new Tap(ifname, Optional.ofNullable(bridge), mac, queues);
    }
}
