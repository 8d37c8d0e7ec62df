package dev.jvmm.devices.net.user;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;

/**
 * Fuzzes {@link DhcpServer} on its own: any BOOTP payload gets either no reply or a well-formed BOOTREPLY (op 2,
 * the client's xid, flags, ciaddr, giaddr and chaddr echoed, the magic cookie, options that parse to END with
 * nothing after it, a message type, the server identifier 10.0.2.2, and an offered address that is the guest's
 * own in 10.0.2.0/24, or none for NAK and INFORM). Half the inputs are raw payloads; the other half are requests
 * built field by field ({@link #request}), for which the reply is also the one owed (an OFFER for a DISCOVER,
 * ACK or NAK as the requested address says, nothing for another server's REQUEST).
 *
 * <p>In a normal test run Jazzer replays the inputs under src/test/resources/.../DhcpServerFuzzTestInputs; {@link
 * #main} rewrites the hand-made ones there.
 */
class DhcpServerFuzzTest {
    static final int COOKIE = 0x63825363;
    static final int OPT_MASK = 1, OPT_ROUTER = 3, OPT_DNS = 6, OPT_REQUESTED = 50, OPT_LEASE = 51, OPT_TYPE = 53;
    static final int OPT_SERVER_ID = 54;

    /** A request payload, and the message type of the reply it is owed: 0 for none, -1 where not known. */
    record Request(byte[] payload, int owed) {}

    /**
     * A BOOTREQUEST from fields: message type (XOR 1: 0 is DISCOVER), xid, flags, ciaddr choice, chaddr, requested
     * address choice, server identifier choice, up to 7 more options (code, length, bytes), and the padding choice.
     */
    static Request request(FuzzBytes.Reader in) {
        int type = in.u8() ^ DhcpServer.DISCOVER;
        int xid = in.u32();
        int flags = in.u16();
        int ciaddr = switch (in.u8()) {
            case 1 -> Inet.GUEST;
            case 2 -> in.u32();
            default -> 0;
        };
        byte[] chaddr = Arrays.copyOf(in.bytes(6), 6);
        boolean clean = true;
        ByteBuffer o = ByteBuffer.allocate(1024);
        o.put((byte) OPT_TYPE).put((byte) 1).put((byte) type);
        int requested = 0, serverId = 0;
        switch (in.u8()) {
            case 0 -> {}
            case 1 -> requested = Inet.GUEST;
            case 2 -> requested = in.u32();
            default -> { // a requested address of three bytes: malformed
                o.put((byte) OPT_REQUESTED).put((byte) 3).put(in.bytes(3));
                clean = false;
            }
        }
        if (requested != 0) o.put((byte) OPT_REQUESTED).put((byte) 4).putInt(requested);
        switch (in.u8()) {
            case 0 -> {}
            case 1 -> serverId = Inet.GATEWAY;
            default -> serverId = in.u32();
        }
        if (serverId != 0) o.put((byte) OPT_SERVER_ID).put((byte) 4).putInt(serverId);
        int extra = in.u8() % 8;
        for (int k = 0; k < extra; k++) {
            int code = in.u8(), len = in.u8() % 16;
            byte[] v = Arrays.copyOf(in.bytes(len), len);
            o.put((byte) code).put((byte) len).put(v);
            // PAD and END change how what follows parses; the three options the server reads change its answer.
            if (code == 0 || code == 255 || code == OPT_TYPE || code == OPT_REQUESTED || code == OPT_SERVER_ID)
                clean = false;
        }
        int end = in.u8(); // 0: END and padding to 300 bytes (as clients send); 1: END, no padding; else cut short
        if (end <= 1) o.put((byte) 255);
        int length = 240 + o.position();
        if (end == 0) length = Math.max(length, 300);
        if (end > 1) {
            length = Math.max(0, length - end % 32);
            clean = false;
        }
        byte[] b = new byte[Math.max(length, 240 + o.position())];
        ByteBuffer r = ByteBuffer.wrap(b);
        r.put((byte) 1).put((byte) 1).put((byte) 6).put((byte) 0).putInt(xid);
        r.putShort((short) 0).putShort((short) flags).putInt(ciaddr);
        r.position(28);
        r.put(chaddr);
        r.position(236);
        r.putInt(COOKIE).put(o.array(), 0, o.position());
        b = Arrays.copyOf(b, length);
        int owed = -1;
        if (clean) {
            int wanted = requested != 0 ? requested : ciaddr;
            owed = switch (type) {
                case DhcpServer.DISCOVER -> DhcpServer.OFFER;
                case DhcpServer.REQUEST -> {
                    if (serverId != 0 && serverId != Inet.GATEWAY) yield 0;
                    yield wanted == 0 || wanted == Inet.GUEST ? DhcpServer.ACK : DhcpServer.NAK;
                }
                case DhcpServer.INFORM -> DhcpServer.ACK;
                default -> 0;
            };
        }
        return new Request(b, owed);
    }

    /**
     * Writes the fields {@link #request} reads (no extra options, padded), for seeds: the requested address and
     * server identifier choices 2 take {@code requested} and {@code serverId}.
     */
    static FuzzBytes.Writer request(
            FuzzBytes.Writer w,
            int type,
            int xid,
            int ciaddrChoice,
            int requestedChoice,
            int requested,
            int serverIdChoice,
            int serverId) {
        w.u8(type ^ DhcpServer.DISCOVER).u32(xid).u16(0x8000).u8(ciaddrChoice);
        w.bytes(new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x56});
        w.u8(requestedChoice);
        if (requestedChoice == 2) w.u32(requested);
        w.u8(serverIdChoice);
        if (serverIdChoice >= 2) w.u32(serverId);
        return w.u8(0).u8(0);
    }

    /** Input: a mode byte (even: a request built from fields; odd: the rest is the payload as it is). */
    @FuzzTest(maxDuration = "30s")
    void requests(byte[] input) {
        FuzzBytes.Reader in = new FuzzBytes.Reader(input);
        Request req = (in.u8() & 1) == 0 ? request(in) : new Request(in.bytes(input.length), -1);
        byte[] reply = DhcpServer.reply(req.payload());
        String what = "request " + HexFormat.of().formatHex(req.payload());
        if (req.owed() == 0) assertNull(reply, what + ": no reply is due");
        if (req.owed() > 0) {
            assertNotNull(reply, what + ": a reply is due");
            assertEquals(req.owed(), options(reply).get(OPT_TYPE)[0], what + ": the reply's message type");
        }
        if (reply != null) checkAnswers(req.payload(), reply);
    }

    /** A reply to {@code req} is well formed and echoes what the client needs to recognise it. */
    static void checkAnswers(byte[] req, byte[] reply) {
        String what = "reply " + HexFormat.of().formatHex(reply) + " to "
                + HexFormat.of().formatHex(req);
        checkWellFormed(reply);
        assertArrayEquals(Arrays.copyOfRange(req, 4, 8), Arrays.copyOfRange(reply, 4, 8), what + ": xid");
        assertArrayEquals(Arrays.copyOfRange(req, 10, 16), Arrays.copyOfRange(reply, 10, 16), what + ": flags, ciaddr");
        assertArrayEquals(
                Arrays.copyOfRange(req, 24, 44), Arrays.copyOfRange(reply, 24, 44), what + ": giaddr, chaddr");
    }

    /**
     * A BOOTREPLY as a client parses it: the fixed part, the cookie, options that parse to END, a message type of
     * OFFER, ACK or NAK, 10.0.2.2 as server and router, the guest's address (or none for NAK and INFORM's ACK).
     */
    static void checkWellFormed(byte[] reply) {
        String what = "reply " + HexFormat.of().formatHex(reply);
        assertTrue(reply.length >= 241, what + ": shorter than a BOOTP message with options");
        assertEquals(2, reply[0], what + ": op BOOTREPLY");
        assertEquals(1, reply[1], what + ": htype Ethernet");
        assertEquals(6, reply[2], what + ": hlen 6");
        assertEquals(0, reply[3], what + ": hops");
        assertEquals(COOKIE, DhcpServer.getInt(reply, 236), what + ": magic cookie");
        assertEquals(Inet.GATEWAY, DhcpServer.getInt(reply, 20), what + ": siaddr");
        Map<Integer, byte[]> opts = options(reply);
        byte[] type = opts.get(OPT_TYPE);
        assertNotNull(type, what + ": no message type");
        assertEquals(1, type.length, what + ": message type length");
        int t = type[0];
        assertTrue(t == DhcpServer.OFFER || t == DhcpServer.ACK || t == DhcpServer.NAK, what + ": message type " + t);
        assertArrayEquals(address(Inet.GATEWAY), opts.get(OPT_SERVER_ID), what + ": server identifier");
        int yiaddr = DhcpServer.getInt(reply, 16);
        if (t == DhcpServer.NAK) {
            assertEquals(0, yiaddr, what + ": NAK offers an address");
            for (int code : new int[] {OPT_LEASE, OPT_MASK, OPT_ROUTER, OPT_DNS})
                assertNull(opts.get(code), what + ": NAK carries option " + code);
            return;
        }
        if (yiaddr != 0 || t == DhcpServer.OFFER) {
            assertTrue(
                    Inet.inNetwork(yiaddr)
                            && yiaddr != Inet.NETWORK
                            && yiaddr != Inet.BROADCAST
                            && yiaddr != Inet.GATEWAY
                            && yiaddr != Inet.DNS,
                    what + ": offered " + Inet.text(yiaddr) + ", not a guest address of 10.0.2.0/24");
            assertEquals(Inet.GUEST, yiaddr, what + ": offered address");
            byte[] lease = opts.get(OPT_LEASE);
            assertNotNull(lease, what + ": an address without a lease time");
            assertEquals(4, lease.length, what + ": lease length");
            assertTrue(DhcpServer.getInt(lease, 0) != 0, what + ": lease of 0 s");
        }
        assertArrayEquals(address(Inet.NETMASK), opts.get(OPT_MASK), what + ": subnet mask");
        assertArrayEquals(address(Inet.GATEWAY), opts.get(OPT_ROUTER), what + ": router");
        assertArrayEquals(address(Inet.DNS), opts.get(OPT_DNS), what + ": DNS server");
    }

    /** The options of a reply, each code once, that parse to END as its last byte; fails otherwise. */
    static Map<Integer, byte[]> options(byte[] reply) {
        String what = "reply " + HexFormat.of().formatHex(reply);
        Map<Integer, byte[]> m = new HashMap<>();
        int i = 240;
        for (; ; ) {
            if (i >= reply.length) fail(what + ": options run past the end without END");
            int code = reply[i] & 0xff;
            if (code == 255) break;
            if (code == 0) {
                i++;
                continue;
            }
            if (i + 1 >= reply.length || i + 2 + (reply[i + 1] & 0xff) > reply.length)
                fail(what + ": option " + code + " at " + i + " runs past the end");
            int len = reply[i + 1] & 0xff;
            if (m.put(code, Arrays.copyOfRange(reply, i + 2, i + 2 + len)) != null)
                fail(what + ": option " + code + " twice");
            i += 2 + len;
        }
        assertEquals(reply.length - 1, i, what + ": bytes after END");
        return m;
    }

    private static byte[] address(int ip) {
        return ByteBuffer.allocate(4).putInt(ip).array();
    }

    /** Writes the hand-made seeds into the folder given (the Inputs folder of {@link #requests}). */
    public static void main(String[] args) throws IOException {
        Path dir = Files.createDirectories(Path.of(args[0]));
        Map<String, byte[]> seeds = new java.util.LinkedHashMap<>();
        seeds.put(
                "discover",
                request(new FuzzBytes.Writer().u8(0), 1, 0x11223344, 0, 0, 0, 0, 0)
                        .toByteArray());
        seeds.put(
                "request-selecting",
                request(new FuzzBytes.Writer().u8(0), 3, 0x11223344, 0, 1, 0, 1, 0)
                        .toByteArray());
        seeds.put(
                "request-renewing",
                request(new FuzzBytes.Writer().u8(0), 3, 7, 1, 0, 0, 0, 0).toByteArray());
        seeds.put(
                "request-other-address",
                request(new FuzzBytes.Writer().u8(0), 3, 7, 0, 2, Inet.ip(192, 168, 1, 9), 0, 0)
                        .toByteArray());
        seeds.put(
                "request-other-server",
                request(new FuzzBytes.Writer().u8(0), 3, 7, 0, 1, 0, 2, Inet.ip(10, 0, 2, 9))
                        .toByteArray());
        seeds.put(
                "inform",
                request(new FuzzBytes.Writer().u8(0), 8, 9, 1, 0, 0, 0, 0).toByteArray());
        seeds.put(
                "release",
                request(new FuzzBytes.Writer().u8(0), 7, 9, 1, 0, 0, 1, 0).toByteArray());
        for (Map.Entry<String, byte[]> s : seeds.entrySet()) Files.write(dir.resolve(s.getKey()), s.getValue());
        byte[] raw = DhcpServerTest.request(DhcpServer.DISCOVER, 55, 3, 1, 3, 6);
        Files.write(
                dir.resolve("raw-discover"),
                new FuzzBytes.Writer().u8(1).bytes(raw).toByteArray());
    }
}
