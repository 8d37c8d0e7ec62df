package dev.jvmm.devices.net.user;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class DhcpServerTest {
    static byte[] request(int type, int... options) {
        byte[] b = new byte[300];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4] = 0x11;
        b[5] = 0x22;
        b[6] = 0x33;
        b[7] = 0x44; // xid
        b[10] = (byte) 0x80; // broadcast flag
        for (int i = 0; i < 6; i++) b[28 + i] = (byte) (0x52 + i);
        b[236] = 0x63;
        b[237] = (byte) 0x82;
        b[238] = 0x53;
        b[239] = 0x63;
        int o = 240;
        b[o++] = 53;
        b[o++] = 1;
        b[o++] = (byte) type;
        for (int v : options) b[o++] = (byte) v;
        b[o] = (byte) 255;
        return b;
    }

    static Map<Integer, byte[]> options(byte[] reply) {
        Map<Integer, byte[]> m = new HashMap<>();
        int i = 240;
        while ((reply[i] & 0xff) != 255) {
            int len = reply[i + 1] & 0xff;
            m.put(reply[i] & 0xff, Arrays.copyOfRange(reply, i + 2, i + 2 + len));
            i += 2 + len;
        }
        return m;
    }

    @Test
    void discoverGetsAnOfferWithRouterDnsAndLease() {
        byte[] r = DhcpServer.reply(request(DhcpServer.DISCOVER));
        assertEquals(2, r[0]);
        assertArrayEquals(new byte[] {0x11, 0x22, 0x33, 0x44}, Arrays.copyOfRange(r, 4, 8));
        assertEquals(Inet.GUEST, DhcpServer.getInt(r, 16));
        assertArrayEquals(Arrays.copyOfRange(request(1), 28, 34), Arrays.copyOfRange(r, 28, 34));
        Map<Integer, byte[]> o = options(r);
        assertArrayEquals(new byte[] {DhcpServer.OFFER}, o.get(53));
        assertArrayEquals(new byte[] {10, 0, 2, 2}, o.get(54));
        assertArrayEquals(new byte[] {10, 0, 2, 2}, o.get(3));
        assertArrayEquals(new byte[] {10, 0, 2, 3}, o.get(6));
        assertArrayEquals(new byte[] {(byte) 255, (byte) 255, (byte) 255, 0}, o.get(1));
        assertArrayEquals(new byte[] {0, 1, 0x51, (byte) 0x80}, o.get(51));
    }

    @Test
    void requestForTheOfferedAddressIsAckedOthersNakedOtherServersIgnored() {
        byte[] ack = DhcpServer.reply(request(DhcpServer.REQUEST, 50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2));
        assertArrayEquals(new byte[] {DhcpServer.ACK}, options(ack).get(53));
        byte[] nak = DhcpServer.reply(request(DhcpServer.REQUEST, 50, 4, 10, 0, 2, 99));
        assertArrayEquals(new byte[] {DhcpServer.NAK}, options(nak).get(53));
        assertEquals(0, DhcpServer.getInt(nak, 16));
        assertNull(DhcpServer.reply(request(DhcpServer.REQUEST, 50, 4, 10, 0, 2, 15, 54, 4, 192, 168, 1, 1)));
        assertNull(DhcpServer.reply(request(DhcpServer.RELEASE)));
        assertNull(DhcpServer.reply(request(DhcpServer.DECLINE)));
    }

    @Test
    void hostileRequestsGetNoReplyAndNoException() {
        byte[] good = request(DhcpServer.DISCOVER);
        assertNull(DhcpServer.reply(Arrays.copyOf(good, 239)), "shorter than the cookie");
        byte[] cookie = good.clone();
        cookie[239] = 0;
        assertNull(DhcpServer.reply(cookie), "wrong magic cookie");
        byte[] reply = good.clone();
        reply[0] = 2;
        assertNull(DhcpServer.reply(reply), "a BOOTREPLY");
        byte[] hlen = good.clone();
        hlen[2] = 16;
        assertNull(DhcpServer.reply(hlen), "not Ethernet");
        assertNull(DhcpServer.reply(Arrays.copyOf(good, 242)), "option length runs off the end");
        byte[] badLen = request(DhcpServer.REQUEST, 50, 200, 10, 0, 2, 15);
        assertNull(DhcpServer.reply(Arrays.copyOf(badLen, 250)), "option longer than the packet");
        byte[] typeLen = good.clone();
        typeLen[241] = 2;
        assertNull(DhcpServer.reply(typeLen), "message type of length 2");
        byte[] noType = good.clone();
        noType[240] = 0;
        noType[241] = 0;
        noType[242] = 0;
        assertNull(DhcpServer.reply(noType), "no message type");
        Random random = new Random(7);
        for (int i = 0; i < 20000; i++) {
            byte[] fuzz = good.clone();
            int n = 240 + random.nextInt(60);
            for (int k = 0; k < 8; k++) fuzz[240 + random.nextInt(fuzz.length - 240)] = (byte) random.nextInt();
            DhcpServer.reply(Arrays.copyOf(fuzz, n)); // must return, never throw
        }
    }
}
