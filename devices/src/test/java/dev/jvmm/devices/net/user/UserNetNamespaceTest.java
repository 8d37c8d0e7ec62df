package dev.jvmm.devices.net.user;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.testing.FakeDnsServer;
import dev.jvmm.devices.net.FramePump;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetNamespace;
import dev.jvmm.devices.net.tap.TapBackend;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The user-mode stack against Linux's own TCP/IP: a namespace holds a TAP interface whose other end is the
 * stack, so the namespace's kernel plays the guest (DHCP with busybox udhcpc, sockets made inside it).
 */
@Tag("netns")
@Timeout(value = 100, unit = TimeUnit.SECONDS)
class UserNetNamespaceTest {
    static final int GUEST_PORT = 7070;
    static final long BIG = 100L << 20;

    static NetNamespace ns;
    static TapBackend tap;
    static UserNetBackend user;
    static FramePump pump;
    static ServerSocket hostServer;
    static FakeDnsServer fakeResolver;
    static Path dhcpResult;

    @BeforeAll
    static void setUp() throws Exception {
        NetNamespace.requireTools();
        fakeResolver = new FakeDnsServer(Map.of("jvmm.test", (Inet4Address) InetAddress.getByName("192.0.2.7")));
        ns = NetNamespace.create("jvmm-user");
        try {
            tap = ns.call(() -> TapBackend.open(new NetConfig.Tap("tap0", Optional.empty(), Optional.empty(), 1)));
            user = UserNetBackend.start(new NetConfig.User(
                    List.of(new NetConfig.HostForward(
                            NetConfig.Protocol.TCP, InetAddress.getLoopbackAddress(), 0, Optional.empty(), GUEST_PORT)),
                    List.of(),
                    false,
                    true,
                    Optional.empty(),
                    Optional.of(fakeResolver.address())));
            pump = new FramePump(tap, user);
            dhcpResult = Files.createTempFile("udhcpc", ".env");
            Path script = Files.createTempFile("udhcpc", ".sh");
            Files.writeString(script, """
                    #!/bin/sh
                    case "$1" in
                      bound|renew)
                        ip addr flush dev "$interface"
                        ip addr add "$ip/24" dev "$interface"
                        ip route add default via "$router" dev "$interface"
                        echo "ip=$ip subnet=$subnet router=$router dns=$dns lease=$lease serverid=$serverid" > %s
                        ;;
                    esac
                    """.formatted(dhcpResult));
            Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"));
            ns.exec(
                    30,
                    "busybox",
                    "udhcpc",
                    "-i",
                    "tap0",
                    "-f",
                    "-q",
                    "-n",
                    "-t",
                    "5",
                    "-T",
                    "2",
                    "-s",
                    script.toString());
            Files.delete(script);
            hostServer = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        } catch (Throwable e) {
            tearDown();
            throw e;
        }
    }

    @AfterAll
    static void tearDown() throws Exception {
        // Each resource is closed once even when setUp's failure path already ran this.
        if (pump != null) pump.close();
        pump = null;
        if (user != null) user.close();
        user = null;
        if (tap != null) tap.close();
        tap = null;
        if (ns != null) ns.close();
        ns = null;
        if (hostServer != null) hostServer.close();
        hostServer = null;
        if (fakeResolver != null) fakeResolver.close();
        fakeResolver = null;
        if (dhcpResult != null) Files.deleteIfExists(dhcpResult);
        dhcpResult = null;
    }

    @Test
    void dhcpGivesTheGuestItsAddressRouterAndDns() throws IOException {
        String env = Files.readString(dhcpResult);
        assertTrue(env.contains("ip=10.0.2.15 "), env);
        assertTrue(env.contains("subnet=255.255.255.0 "), env);
        assertTrue(env.contains("router=10.0.2.2 "), env);
        assertTrue(env.contains("dns=10.0.2.3 "), env);
        assertTrue(env.contains("lease=86400 "), env);
        assertTrue(ns.exec(10, "ip", "-4", "addr", "show", "tap0").contains("10.0.2.15/24"));
    }

    @Test
    void pingTheGateway() {
        String out = ns.exec(15, "busybox", "ping", "-c", "2", "-W", "3", "10.0.2.2");
        assertTrue(out.contains("2 packets received"), out);
    }

    @Test
    void dnsQueryThroughTheForwarder() throws Exception {
        byte[] query = {
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 'j', 'v', 'm', 'm', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1
        };
        byte[] reply = ns.call(() -> {
            try (DatagramSocket s = new DatagramSocket()) {
                s.setSoTimeout(5000);
                s.send(new DatagramPacket(query, query.length, new InetSocketAddress("10.0.2.3", 53)));
                DatagramPacket r = new DatagramPacket(new byte[512], 512);
                s.receive(r);
                assertEquals(new InetSocketAddress("10.0.2.3", 53), r.getSocketAddress());
                return Arrays.copyOf(r.getData(), r.getLength());
            }
        });
        assertEquals(0x12, reply[0]);
        assertEquals(0x34, reply[1]);
        assertEquals(1, reply[7]);
        assertArrayEquals(new byte[] {(byte) 192, 0, 2, 7}, Arrays.copyOfRange(reply, reply.length - 4, reply.length));
        // busybox's resolver agrees (it takes the same path as any guest program).
        String out = ns.exec(15, "busybox", "nslookup", "jvmm.test", "10.0.2.3");
        assertTrue(out.contains("192.0.2.7"), out);
    }

    @Test
    void refusedPortOnTheHostGivesConnectionRefused() throws Exception {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = s.getLocalPort();
        }
        Exception e = ns.call(() -> {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("10.0.2.2", closedPort), 5000);
                return null;
            } catch (IOException x) {
                return x;
            }
        });
        assertTrue(e instanceof ConnectException && e.getMessage().contains("refused"), String.valueOf(e));
    }

    /**
     * The default policy against the same kernel: a second namespace on a backend without hostloopback, with one
     * guestfwd, addressed by hand (DHCP is checked above). The host's loopback and its own addresses refuse the
     * guest; DNS and the guestfwd service answer. The first namespace (hostloopback=on) reaches the host's address.
     */
    @Test
    void byDefaultTheHostIsClosedButDnsAndGuestfwdAnswer() throws Exception {
        int lan = Arrays.stream(HostAddresses.interfaces())
                .filter(ip -> (ip >>> 24) != 127)
                .findFirst()
                .orElse(0);
        try (ServerSocket service = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
                ServerSocket onLan = lan == 0 ? null : new ServerSocket(0, 50, Inet.address(lan));
                NetNamespace closedNs = NetNamespace.create("jvmm-closed");
                TapBackend closedTap = closedNs.call(
                        () -> TapBackend.open(new NetConfig.Tap("tap0", Optional.empty(), Optional.empty(), 1)));
                UserNetBackend closed = UserNetBackend.start((NetConfig.User) NetConfig.parse(
                        "user,guestfwd=tcp:10.0.2.100:8080-127.0.0.1:" + service.getLocalPort() + ",resolver=127.0.0.1:"
                                + fakeResolver.address().getPort()));
                FramePump closedPump = new FramePump(closedTap, closed)) {
            closedNs.exec(10, "ip", "addr", "add", "10.0.2.15/24", "dev", "tap0");
            closedNs.exec(10, "ip", "route", "add", "default", "via", "10.0.2.2");
            Exception e =
                    closedNs.call(() -> connectFails(new InetSocketAddress("10.0.2.2", hostServer.getLocalPort())));
            assertTrue(
                    e instanceof ConnectException && e.getMessage().contains("refused"),
                    "10.0.2.2 without hostloopback: " + e);
            if (onLan != null) {
                InetSocketAddress host = new InetSocketAddress(onLan.getInetAddress(), onLan.getLocalPort());
                e = closedNs.call(() -> connectFails(host));
                assertTrue(
                        e instanceof ConnectException && e.getMessage().contains("refused"),
                        host + " without hostloopback: " + e);
                assertEquals(null, ns.call(() -> connectFails(host)), host + " with hostloopback=on");
                onLan.accept().close();
            }
            String out = closedNs.exec(15, "busybox", "nslookup", "jvmm.test", "10.0.2.3");
            assertTrue(out.contains("192.0.2.7"), "DNS through a resolver on the host's loopback: " + out);
            CompletableFuture<String> serverSide = NetNamespace.async(() -> {
                try (Socket c = service.accept()) {
                    c.getOutputStream().write("hello guest".getBytes(StandardCharsets.US_ASCII));
                    return new String(c.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
                }
            });
            String reply = closedNs.call(() -> {
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress("10.0.2.100", 8080), 5000);
                    s.setSoTimeout(10_000);
                    s.getOutputStream().write("hello host".getBytes(StandardCharsets.US_ASCII));
                    s.shutdownOutput();
                    return new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
                }
            });
            assertEquals("hello guest", reply);
            assertEquals("hello host", serverSide.get(10, TimeUnit.SECONDS));
        }
    }

    /** Connects and closes; the exception if the connection failed, else null. */
    static Exception connectFails(InetSocketAddress to) {
        try (Socket s = new Socket()) {
            s.connect(to, 5000);
            return null;
        } catch (IOException x) {
            return x;
        }
    }

    @Test
    void bigUploadToTheHostArrivesIntactAndHalfCloseWorks() throws Exception {
        CompletableFuture<byte[]> serverSide = NetNamespace.async(() -> {
            try (Socket c = hostServer.accept()) {
                byte[] digest = sha256(c.getInputStream(), BIG); // reads to EOF: the guest's FIN arrives as EOF
                c.getOutputStream().write(digest); // the half-closed connection still carries the answer back
                c.shutdownOutput();
                return digest;
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        byte[][] sent = ns.call(() -> {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("10.0.2.2", hostServer.getLocalPort()), 5000);
                byte[] mine = writeRandom(s.getOutputStream(), BIG, 1);
                s.shutdownOutput();
                byte[] theirs = s.getInputStream().readAllBytes();
                return new byte[][] {mine, theirs};
            }
        });
        assertArrayEquals(sent[0], serverSide.get(60, TimeUnit.SECONDS));
        assertArrayEquals(sent[0], sent[1]);
    }

    @Test
    void bigDownloadFromTheHostArrivesIntact() throws Exception {
        CompletableFuture<byte[]> serverSide = NetNamespace.async(() -> {
            try (Socket c = hostServer.accept()) {
                byte[] d = writeRandom(c.getOutputStream(), BIG, 2);
                c.shutdownOutput();
                return d;
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        byte[] received = ns.call(() -> {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("10.0.2.2", hostServer.getLocalPort()), 5000);
                return sha256(s.getInputStream(), BIG);
            }
        });
        assertArrayEquals(serverSide.get(60, TimeUnit.SECONDS), received);
    }

    @Test
    void hostForwardReachesAServerInTheGuestBothWaysWithHalfClose() throws Exception {
        ServerSocket guestServer = ns.call(() -> new ServerSocket(GUEST_PORT));
        try (guestServer) {
            CompletableFuture<byte[]> guestSide = NetNamespace.async(() -> {
                try (Socket c = guestServer.accept()) {
                    byte[] request = c.getInputStream().readAllBytes(); // until the host client's FIN
                    byte[] d = writeRandom(c.getOutputStream(), 8 << 20, 3);
                    c.getOutputStream().write(request);
                    return d;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            try (Socket s = new Socket()) {
                s.connect(user.forwardAddresses().get(0), 5000);
                s.setSoTimeout(30_000);
                s.getOutputStream().write("hello guest".getBytes(StandardCharsets.US_ASCII));
                s.shutdownOutput();
                InputStream in = s.getInputStream();
                byte[] digest = sha256(in, 8 << 20);
                byte[] tail = in.readAllBytes();
                assertArrayEquals(guestSide.get(30, TimeUnit.SECONDS), digest);
                assertEquals("hello guest", new String(tail, StandardCharsets.US_ASCII));
            }
        }
    }

    @Test
    void hostResetReachesTheGuestAsConnectionReset() throws Exception {
        CompletableFuture<Object> serverSide = NetNamespace.async(() -> {
            try (Socket c = hostServer.accept()) {
                c.getInputStream().readNBytes(5);
                c.setSoLinger(true, 0); // close sends RST
            }
            return null;
        });
        Exception e = ns.call(() -> {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("10.0.2.2", hostServer.getLocalPort()), 5000);
                s.setSoTimeout(10_000);
                s.getOutputStream().write("hello".getBytes(StandardCharsets.US_ASCII));
                return assertThrows(
                        SocketException.class, () -> s.getInputStream().read());
            }
        });
        serverSide.get(10, TimeUnit.SECONDS);
        assertTrue(e.getMessage().toLowerCase().contains("reset"), e.getMessage());
    }

    @Test
    void guestResetReachesTheHostAsConnectionReset() throws Exception {
        CompletableFuture<Exception> serverSide = NetNamespace.async(() -> {
            try (Socket c = hostServer.accept()) {
                c.setSoTimeout(10_000);
                c.getOutputStream().write(1);
                return assertThrows(
                        SocketException.class, () -> c.getInputStream().read());
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        ns.call(() -> {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("10.0.2.2", hostServer.getLocalPort()), 5000);
                s.getInputStream().read();
                s.setSoLinger(true, 0);
            }
            return null;
        });
        Exception e = serverSide.get(15, TimeUnit.SECONDS);
        assertTrue(e.getMessage().toLowerCase().contains("reset"), e.getMessage());
    }

    static byte[] writeRandom(OutputStream out, long total, long seed) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] buf = new byte[64 << 10];
        java.util.Random r = new java.util.Random(seed);
        for (long done = 0; done < total; done += buf.length) {
            r.nextBytes(buf);
            int n = (int) Math.min(buf.length, total - done);
            out.write(buf, 0, n);
            md.update(buf, 0, n);
        }
        out.flush();
        return md.digest();
    }

    static byte[] sha256(InputStream in, long expected) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] buf = new byte[64 << 10];
        long total = 0;
        while (total < expected) {
            int n = in.read(buf, 0, (int) Math.min(buf.length, expected - total));
            if (n < 0) break;
            md.update(buf, 0, n);
            total += n;
        }
        assertEquals(expected, total, "bytes received");
        return md.digest();
    }

    static int unused() {
        return ThreadLocalRandom.current().nextInt();
    }
}
