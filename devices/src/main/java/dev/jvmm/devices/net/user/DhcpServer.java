package dev.jvmm.devices.net.user;

/**
 * A DHCP server for one guest: it always hands out 10.0.2.15 with the gateway 10.0.2.2 and DNS 10.0.2.3. Works on
 * the BOOTP payload alone, so it can be tested without the rest of the stack.
 */
final class DhcpServer {
    static final int SERVER_PORT = 67, CLIENT_PORT = 68;
    static final int LEASE_SECONDS = 86400;
    static final int DISCOVER = 1, OFFER = 2, REQUEST = 3, DECLINE = 4, ACK = 5, NAK = 6, RELEASE = 7, INFORM = 8;
    private static final int FIXED = 236, COOKIE = 0x63825363, MIN_REQUEST = FIXED + 4;
    private static final int OPT_PAD = 0,
            OPT_END = 255,
            OPT_MASK = 1,
            OPT_ROUTER = 3,
            OPT_DNS = 6,
            OPT_REQUESTED_IP = 50,
            OPT_LEASE = 51,
            OPT_MESSAGE_TYPE = 53,
            OPT_SERVER_ID = 54;

    private DhcpServer() {}

    /** The reply to a BOOTP request, or null if none is due (not a request, malformed, RELEASE, another server's). */
    static byte[] reply(byte[] req) {
        if (req.length < MIN_REQUEST || req[0] != 1 || req[1] != 1 || req[2] != 6 || getInt(req, FIXED) != COOKIE)
            return null;
        int type = -1, requested = 0, serverId = 0;
        int i = MIN_REQUEST;
        while (i < req.length) {
            int code = req[i] & 0xff;
            if (code == OPT_END) break;
            if (code == OPT_PAD) {
                i++;
                continue;
            }
            if (i + 1 >= req.length) return null;
            int len = req[i + 1] & 0xff;
            int v = i + 2;
            if (v + len > req.length) return null;
            switch (code) {
                case OPT_MESSAGE_TYPE -> {
                    if (len != 1) return null;
                    type = req[v] & 0xff;
                }
                case OPT_REQUESTED_IP -> {
                    if (len != 4) return null;
                    requested = getInt(req, v);
                }
                case OPT_SERVER_ID -> {
                    if (len != 4) return null;
                    serverId = getInt(req, v);
                }
                default -> {}
            }
            i = v + len;
        }
        int ciaddr = getInt(req, 12);
        int answer;
        switch (type) {
            case DISCOVER -> answer = OFFER;
            case REQUEST -> {
                if (serverId != 0 && serverId != Inet.GATEWAY) return null; // the client chose another server
                int wanted = requested != 0 ? requested : ciaddr;
                answer = wanted == 0 || wanted == Inet.GUEST ? ACK : NAK;
            }
            case INFORM -> answer = ACK;
            default -> {
                return null;
            }
        }
        byte[] r = new byte[FIXED + 4 + 3 + 6 + 6 + 6 + 6 + 6 + 1];
        r[0] = 2;
        r[1] = 1;
        r[2] = 6;
        System.arraycopy(req, 4, r, 4, 4); // xid
        System.arraycopy(req, 10, r, 10, 2); // flags
        System.arraycopy(req, 12, r, 12, 4); // ciaddr
        if (answer != NAK && type != INFORM) putInt(r, 16, Inet.GUEST);
        putInt(r, 20, Inet.GATEWAY);
        System.arraycopy(req, 24, r, 24, 4 + 16); // giaddr, chaddr
        putInt(r, FIXED, COOKIE);
        int o = FIXED + 4;
        r[o++] = (byte) OPT_MESSAGE_TYPE;
        r[o++] = 1;
        r[o++] = (byte) answer;
        o = option(r, o, OPT_SERVER_ID, Inet.GATEWAY);
        if (answer != NAK) {
            if (type != INFORM) o = option(r, o, OPT_LEASE, LEASE_SECONDS);
            o = option(r, o, OPT_MASK, Inet.NETMASK);
            o = option(r, o, OPT_ROUTER, Inet.GATEWAY);
            o = option(r, o, OPT_DNS, Inet.DNS);
        }
        r[o++] = (byte) OPT_END;
        return java.util.Arrays.copyOf(r, o);
    }

    private static int option(byte[] r, int o, int code, int value) {
        r[o] = (byte) code;
        r[o + 1] = 4;
        putInt(r, o + 2, value);
        return o + 6;
    }

    static int getInt(byte[] b, int o) {
        return ((b[o] & 0xff) << 24) | ((b[o + 1] & 0xff) << 16) | ((b[o + 2] & 0xff) << 8) | (b[o + 3] & 0xff);
    }

    private static void putInt(byte[] b, int o, int v) {
        b[o] = (byte) (v >>> 24);
        b[o + 1] = (byte) (v >>> 16);
        b[o + 2] = (byte) (v >>> 8);
        b[o + 3] = (byte) v;
    }
}
