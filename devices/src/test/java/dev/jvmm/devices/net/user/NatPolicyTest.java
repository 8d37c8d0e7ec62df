package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.NetConfig.Protocol.TCP;
import static dev.jvmm.devices.net.NetConfig.Protocol.UDP;
import static dev.jvmm.devices.net.user.NatPolicy.Refusal.HOST_ADDRESS;
import static dev.jvmm.devices.net.user.NatPolicy.Refusal.HOST_LOOPBACK;
import static dev.jvmm.devices.net.user.NatPolicy.Refusal.METADATA;
import static dev.jvmm.devices.net.user.NatPolicy.Refusal.RESTRICTED;
import static dev.jvmm.devices.net.user.NatPolicy.Refusal.UNROUTABLE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.net.NetConfig;
import java.net.InetSocketAddress;
import org.junit.jupiter.api.Test;

/** Each rule of the user network's policy, on --net user options as a user writes them. */
class NatPolicyTest {
    static final int HOST_LAN = Inet.ip(192, 168, 1, 5), ELSEWHERE = Inet.ip(93, 184, 216, 34);
    static final InetSocketAddress RESOLVER = new InetSocketAddress("127.0.0.53", 53);

    /** A policy for {@code user,OPTIONS}, on a host whose only addresses are 127.0.0.1 and 192.168.1.5. */
    static NatPolicy policy(String options) {
        return policy(options, RESOLVER);
    }

    static NatPolicy policy(String options, InetSocketAddress resolver) {
        NetConfig.User config = (NetConfig.User) NetConfig.parse(options.isEmpty() ? "user" : "user," + options);
        return new NatPolicy(config, resolver, ip -> ip == Inet.LOOPBACK || ip == HOST_LAN);
    }

    static InetSocketAddress at(String ip, int port) {
        return new InetSocketAddress(ip, port);
    }

    @Test
    void theGatewaysPortsAreClosedByDefault() {
        NatPolicy p = policy("");
        assertNull(p.translate(TCP, Inet.GATEWAY, 8080));
        assertNull(p.translate(UDP, Inet.GATEWAY, 5353));
        assertEquals(HOST_LOOPBACK, p.refusal(Inet.GATEWAY, 8080));
    }

    @Test
    void hostLoopbackMakesTheGatewayTheHostsLoopback() {
        NatPolicy p = policy("hostloopback=on");
        assertEquals(at("127.0.0.1", 8080), p.translate(TCP, Inet.GATEWAY, 8080));
        assertEquals(at("127.0.0.1", 5353), p.translate(UDP, Inet.GATEWAY, 5353));
        assertNull(p.refusal(Inet.GATEWAY, 8080));
    }

    @Test
    void theDnsForwarderReachesTheConfiguredResolverWhereverItIs() {
        for (String options : new String[] {"", "hostloopback=on"}) {
            NatPolicy p = policy(options);
            assertEquals(
                    RESOLVER,
                    p.translate(UDP, Inet.DNS, 53),
                    "systemd-resolved's 127.0.0.53: the user's resolver, not the guest's pick");
            assertEquals(RESOLVER, p.translate(TCP, Inet.DNS, 53));
            assertNull(p.translate(TCP, Inet.DNS, 80), "10.0.2.3 serves DNS only");
            assertEquals(UNROUTABLE, p.refusal(Inet.DNS, 80));
        }
        InetSocketAddress gce = at("169.254.169.254", 53); // Google Cloud's resolver is its metadata server
        assertEquals(gce, policy("", gce).translate(UDP, Inet.DNS, 53));
    }

    @Test
    void theHostsOwnAddressesAreClosedUnlessHostLoopbackIsOn() {
        NatPolicy closed = policy("");
        assertNull(closed.translate(TCP, HOST_LAN, 5432));
        assertNull(closed.translate(UDP, HOST_LAN, 5432));
        assertEquals(HOST_ADDRESS, closed.refusal(HOST_LAN, 5432));
        assertFalse(closed.echoAllowed(HOST_LAN));
        NatPolicy open = policy("hostloopback=on");
        assertEquals(at("192.168.1.5", 5432), open.translate(TCP, HOST_LAN, 5432));
        assertTrue(open.echoAllowed(HOST_LAN));
    }

    @Test
    void otherHostsAreReachable() {
        NatPolicy p = policy("");
        assertEquals(at("93.184.216.34", 443), p.translate(TCP, ELSEWHERE, 443));
        assertEquals(at("93.184.216.34", 123), p.translate(UDP, ELSEWHERE, 123));
        assertTrue(p.echoAllowed(ELSEWHERE));
        assertEquals(
                at("100.100.100.201", 80),
                p.translate(TCP, Inet.ip(100, 100, 100, 201), 80),
                "only the metadata address itself");
        assertEquals(at("168.63.129.17", 80), p.translate(TCP, Inet.ip(168, 63, 129, 17), 80));
    }

    @Test
    void linkLocalAndCloudMetadataStayClosedEvenWithHostLoopback() {
        int[] metadata = {
            Inet.ip(169, 254, 169, 254),
            Inet.ip(169, 254, 0, 1),
            Inet.ip(169, 254, 255, 255),
            NatPolicy.ALIBABA_METADATA,
            NatPolicy.AZURE_WIRESERVER
        };
        for (String options : new String[] {"", "hostloopback=on"}) {
            NatPolicy p = policy(options);
            for (int ip : metadata) {
                assertNull(p.translate(TCP, ip, 80), Inet.text(ip) + " with " + options);
                assertNull(p.translate(UDP, ip, 80), Inet.text(ip));
                assertEquals(METADATA, p.refusal(ip, 80), Inet.text(ip));
                assertFalse(p.echoAllowed(ip), Inet.text(ip));
            }
        }
    }

    @Test
    void loopbackTheVirtualNetworkMulticastBroadcastAndPortZeroAreUnroutable() {
        int[] nowhere = {
            Inet.ip(127, 0, 0, 1),
            Inet.ip(127, 1, 2, 3),
            0,
            Inet.ip(0, 1, 2, 3),
            Inet.GUEST,
            Inet.ip(10, 0, 2, 100),
            Inet.BROADCAST,
            Inet.ip(224, 0, 0, 251),
            Inet.ip(239, 1, 1, 1),
            Inet.ip(240, 0, 0, 1),
            Inet.LIMITED_BROADCAST
        };
        for (String options : new String[] {"", "hostloopback=on"}) {
            NatPolicy p = policy(options);
            for (int ip : nowhere) {
                assertNull(p.translate(TCP, ip, 80), Inet.text(ip));
                assertEquals(UNROUTABLE, p.refusal(ip, 80), Inet.text(ip));
                assertFalse(p.echoAllowed(ip), Inet.text(ip));
            }
            assertNull(p.translate(TCP, ELSEWHERE, 0));
            assertEquals(UNROUTABLE, p.refusal(ELSEWHERE, 0));
        }
    }

    @Test
    void guestfwdOpensOneTcpServiceAtItsAddressEvenUnderRestrict() {
        for (String options : new String[] {
            "guestfwd=tcp:10.0.2.100:8080-127.0.0.1:9090", "restrict=on,guestfwd=tcp:10.0.2.100:8080-127.0.0.1:9090"
        }) {
            NatPolicy p = policy(options);
            int forward = Inet.ip(10, 0, 2, 100);
            assertEquals(at("127.0.0.1", 9090), p.translate(TCP, forward, 8080), options);
            assertNull(p.translate(TCP, forward, 8081), "another port of the address");
            assertNull(p.translate(UDP, forward, 8080), "guestfwd is TCP only");
            assertNull(p.translate(TCP, Inet.GATEWAY, 9090), "the gateway stays closed");
            assertTrue(p.isGuestForwardAddress(forward));
            assertFalse(p.isGuestForwardAddress(Inet.ip(10, 0, 2, 101)));
        }
        NatPolicy chosen = policy("guestfwd=tcp:10.0.2.4:80-169.254.169.254:80");
        assertEquals(
                at("169.254.169.254", 80),
                chosen.translate(TCP, Inet.ip(10, 0, 2, 4), 80),
                "a target the user names is the user's choice");
    }

    @Test
    void restrictRefusesEveryFlowButGuestfwd() {
        NatPolicy p = policy("restrict=on");
        for (int ip : new int[] {Inet.GATEWAY, Inet.DNS, ELSEWHERE, HOST_LAN}) {
            assertNull(p.translate(TCP, ip, 53), Inet.text(ip));
            assertNull(p.translate(UDP, ip, 53), Inet.text(ip));
            assertEquals(RESTRICTED, p.refusal(ip, 53));
            assertFalse(p.echoAllowed(ip));
        }
        assertTrue(p.restrict());
    }

    @Test
    void theLogLineNamesTheOptionThatWouldAllowTheFlow() {
        assertEquals(
                "user network: guest connection to 10.0.2.2:8080 refused;"
                        + " hostloopback=on or guestfwd=tcp:10.0.2.100:8080-127.0.0.1:8080 allows it",
                NatPolicy.message(HOST_LOOPBACK, TCP, Inet.GATEWAY, 8080));
        assertEquals(
                "user network: guest datagram to 10.0.2.2:5353 refused; hostloopback=on allows it",
                NatPolicy.message(HOST_LOOPBACK, UDP, Inet.GATEWAY, 5353));
        assertEquals(
                "user network: guest connection to 192.168.1.5:5432 (an address of this host) refused;"
                        + " hostloopback=on or guestfwd=tcp:10.0.2.100:5432-192.168.1.5:5432 allows it",
                NatPolicy.message(HOST_ADDRESS, TCP, HOST_LAN, 5432));
        String metadata = NatPolicy.message(METADATA, TCP, Inet.ip(169, 254, 169, 254), 80);
        assertTrue(metadata.startsWith("user network: guest connection to 169.254.169.254:80 refused: "), metadata);
        assertFalse(metadata.contains("hostloopback"), "nothing opens it");
        assertNull(NatPolicy.message(RESTRICTED, TCP, ELSEWHERE, 80), "restrict=on was asked for");
        assertNull(NatPolicy.message(UNROUTABLE, TCP, Inet.ip(127, 0, 0, 1), 80));
        assertNull(NatPolicy.message(null, TCP, ELSEWHERE, 80));
    }
}
