package dev.jvmm.devices.net;

import org.junit.jupiter.api.Test;

import java.net.InetAddress;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NetConfigTest {
    @Test
    void userWithForwardsAndRestrict() throws Exception {
        NetConfig.User u = (NetConfig.User) NetConfig.parse("user,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.15:53,restrict=on,mac=52:54:00:12:34:56");
        assertTrue(u.restrict());
        assertEquals(2, u.forwards().size());
        NetConfig.HostForward ssh = u.forwards().get(0);
        assertEquals(NetConfig.Protocol.TCP, ssh.protocol());
        assertEquals(InetAddress.getByName("127.0.0.1"), ssh.hostAddress());
        assertEquals(2222, ssh.hostPort());
        assertEquals(Optional.empty(), ssh.guestAddress());
        assertEquals(22, ssh.guestPort());
        NetConfig.HostForward dns = u.forwards().get(1);
        assertEquals(NetConfig.Protocol.UDP, dns.protocol());
        assertEquals(InetAddress.getByName("0.0.0.0"), dns.hostAddress());
        assertEquals(Optional.of(InetAddress.getByName("10.0.2.15")), dns.guestAddress());
        assertEquals("52:54:00:12:34:56", u.mac().orElseThrow().toString());
    }

    @Test
    void plainUserAndDefaultProtocol() {
        NetConfig.User u = (NetConfig.User) NetConfig.parse("user");
        assertFalse(u.restrict());
        assertTrue(u.forwards().isEmpty());
        NetConfig.User f = (NetConfig.User) NetConfig.parse("user,hostfwd=:127.0.0.1:8080-:80");
        assertEquals(NetConfig.Protocol.TCP, f.forwards().get(0).protocol());
    }

    @Test
    void tap() {
        NetConfig.Tap t = (NetConfig.Tap) NetConfig.parse("tap,ifname=tap0,bridge=br0,mac=52:54:00:00:00:01,queues=2");
        assertEquals("tap0", t.ifname());
        assertEquals(Optional.of("br0"), t.bridge());
        assertEquals(2, t.queues());
        assertEquals(Optional.empty(), ((NetConfig.Tap) NetConfig.parse("tap,ifname=x")).bridge());
    }

    @Test
    void everyMistakeIsOneLineNamingIt() {
        String[][] cases = {
                {"slirp", "'slirp'"},
                {"user,restrict=maybe", "restrict=maybe"},
                {"user,hostfwd=tcp:127.0.0.1:99999-:22", "99999"},
                {"user,hostfwd=tcp:localhost:2222-:22", "'localhost'"},
                {"user,hostfwd=tcp:1.2.3.256:2222-:22", "1.2.3.256"},
                {"user,hostfwd=2222:22", "hostfwd=2222:22"},
                {"user,hostfwd=tcp::2222-:0", "port '0'"},
                {"user,bogus=1", "'bogus'"},
                {"user,restrict", "'restrict'"},
                {"user,mac=01:00:5e:00:00:01", "multicast"},
                {"user,mac=52:54:00:12:34", "52:54:00:12:34"},
                {"user,restrict=on,restrict=off", "'restrict' given 2 times"},
                {"tap", "ifname"},
                {"tap,ifname=", "ifname="},
                {"tap,ifname=waytoolonginterfacename", "waytoolong"},
                {"tap,ifname=a/b", "a/b"},
                {"tap,ifname=t,queues=0", "queues=0"},
                {"tap,ifname=t,queues=x", "queues=x"},
                {"tap,ifname=t,hostfwd=tcp::1-:2", "'hostfwd'"},
        };
        for (String[] c : cases) {
            NetConfigException e = assertThrows(NetConfigException.class, () -> NetConfig.parse(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), c[0] + " -> " + e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }
}
