package dev.jvmm.devices.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class NetConfigTest {
    @Test
    void userWithForwardsAndRestrict() throws Exception {
        NetConfig.User u = (NetConfig.User) NetConfig.parse(
                "user,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.15:53,restrict=on,mac=52:54:00:12:34:56");
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
        assertFalse(u.hostLoopback(), "the host itself is closed unless asked");
        assertTrue(u.forwards().isEmpty());
        assertTrue(u.guestForwards().isEmpty());
        assertEquals(NetConfig.User.defaults(), u);
        NetConfig.User f = (NetConfig.User) NetConfig.parse("user,hostfwd=:127.0.0.1:8080-:80");
        assertEquals(NetConfig.Protocol.TCP, f.forwards().get(0).protocol());
    }

    @Test
    void hostLoopback() {
        assertTrue(((NetConfig.User) NetConfig.parse("user,hostloopback=on")).hostLoopback());
        assertTrue(((NetConfig.User) NetConfig.parse("user,hostloopback=yes")).hostLoopback());
        assertFalse(((NetConfig.User) NetConfig.parse("user,hostloopback=off")).hostLoopback());
    }

    @Test
    void guestForwardsInQemuSyntax() throws Exception {
        NetConfig.User u = (NetConfig.User) NetConfig.parse("user,guestfwd=tcp:10.0.2.100:8080-127.0.0.1:8080,"
                + "guestfwd=:10.0.2.101:5432-tcp:192.168.1.5:5433,"
                + "guestfwd=tcp::25-127.0.0.1:2525");
        assertEquals(
                List.of(
                        new NetConfig.GuestForward(
                                InetAddress.getByName("10.0.2.100"), 8080, InetAddress.getByName("127.0.0.1"), 8080),
                        new NetConfig.GuestForward(
                                InetAddress.getByName("10.0.2.101"), 5432, InetAddress.getByName("192.168.1.5"), 5433),
                        new NetConfig.GuestForward(
                                InetAddress.getByName("10.0.2.4"), 25, InetAddress.getByName("127.0.0.1"), 2525)),
                u.guestForwards());
        assertFalse(u.hostLoopback(), "a guestfwd opens its one service, not the host");
        NetConfig.User r = (NetConfig.User) NetConfig.parse("user,restrict=on,guestfwd=10.0.2.100:53-127.0.0.53:53");
        assertTrue(r.restrict(), "restrict=on keeps explicit forwards, as in QEMU");
        assertEquals(1, r.guestForwards().size());
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
            {"user,hostloopback=maybe", "hostloopback=maybe must be on or off"},
            {"user,hostloopback", "'hostloopback'"},
            {"user,hostloopback=on,hostloopback=off", "'hostloopback' given 2 times"},
            {"user,hostloopback=on,restrict=on", "hostloopback=on opens nothing with restrict=on"},
            {
                "user,guestfwd=tcp:10.0.2.100:1234-cmd:netcat 10.10.1.1 4321",
                "cmd: (a command per connection) is not supported"
            },
            {"user,guestfwd=udp:10.0.2.100:53-127.0.0.1:53", "TCP only, not 'udp'"},
            {"user,guestfwd=tcp:10.0.2.100:1234-unix:/run/x.sock", "'unix:/run/x.sock' is not [tcp:]HOSTADDR:HOSTPORT"},
            {"user,guestfwd=tcp:10.0.2.100:1234-127.0.0.1", "'127.0.0.1' is not [tcp:]HOSTADDR:HOSTPORT"},
            {"user,guestfwd=tcp:10.0.2.100:1234-localhost:80", "'localhost' is not an IPv4 address"},
            {"user,guestfwd=tcp:10.0.2.100:1234-127.0.0.1:0", "port '0'"},
            {"user,guestfwd=tcp:10.0.2.100:0-127.0.0.1:80", "port '0'"},
            {"user,guestfwd=tcp:10.0.2.100:99999-127.0.0.1:80", "port '99999'"},
            {"user,guestfwd=tcp:10.0.2.100-127.0.0.1:80", "is not [tcp]:[GUESTADDR]:GUESTPORT-HOSTADDR:HOSTPORT"},
            {"user,guestfwd=tcp:10.0.2.2:80-127.0.0.1:80", "not 10.0.2.2"},
            {"user,guestfwd=tcp:10.0.2.3:53-127.0.0.1:53", "not 10.0.2.3"},
            {"user,guestfwd=tcp:10.0.2.15:80-127.0.0.1:80", "not 10.0.2.15"},
            {"user,guestfwd=tcp:10.0.2.255:80-127.0.0.1:80", "not 10.0.2.255"},
            {"user,guestfwd=tcp:192.168.1.1:80-127.0.0.1:80", "not 192.168.1.1"},
            {
                "user,guestfwd=tcp:10.0.2.100:80-127.0.0.1:80,guestfwd=tcp:10.0.2.100:80-127.0.0.1:81",
                "10.0.2.100:80 is forwarded twice"
            },
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
