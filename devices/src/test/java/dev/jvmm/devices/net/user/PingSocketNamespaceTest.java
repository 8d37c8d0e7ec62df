package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.user.Inet.GUEST;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.net.FramePump;
import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.GuestPorts;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetNamespace;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.devices.net.tap.TapBackend;
import dev.jvmm.kvm.Errno;
import io.netty.buffer.PooledByteBufAllocator;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Echo through real ping sockets. The sockets are opened in a namespace this test makes ("far"), where
 * 192.0.2.1 sits on the loopback interface and the test sets net.ipv4.ping_group_range (a per-namespace sysctl;
 * a new namespace starts with "1 0": ping sockets refused, even to root). The guest is either hand-built frames
 * or Linux itself in a second namespace behind a TAP.
 */
@Tag("netns")
@Timeout(value = 100, unit = TimeUnit.SECONDS)
class PingSocketNamespaceTest {
    static final int FAR = Inet.ip(192, 0, 2, 1);
    static NetNamespace far;

    @BeforeAll
    static void setUp() {
        NetNamespace.requireTools();
        far = NetNamespace.create("jvmm-ping");
        far.exec(10, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo");
    }

    @AfterAll
    static void tearDown() {
        if (far != null) far.close();
        far = null;
    }

    static void pingGroupRange(String range) {
        far.exec(10, "sh", "-c", "echo '" + range + "' > /proc/sys/net/ipv4/ping_group_range");
    }

    /** Opens each ping socket on a thread inside the far namespace. */
    static final IntSupplier OPEN_IN_FAR = () -> {
        try {
            return far.call(PingSocketHost::openInCurrentNamespace);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    };

    static UserNetBackend start() {
        return UserNetBackend.start(
                new NetConfig.User(
                        List.of(),
                        List.of(),
                        false,
                        false,
                        Optional.empty(),
                        Optional.of(new InetSocketAddress(InetAddress.getLoopbackAddress(), 9))),
                PingSocketHost.factory(PooledByteBufAllocator.DEFAULT, OPEN_IN_FAR));
    }

    /** The guest's side: every frame it is given, in order; a failure the backend reports fails the test. */
    static final class Guest {
        final LinkedBlockingQueue<byte[]> frames = new LinkedBlockingQueue<>();
        final GuestPort port = GuestPorts.collecting(frames, () -> true, (where, cause) -> {
            throw new AssertionError("the backend failed in " + where, cause);
        });

        Frames.Out nextIcmp() throws InterruptedException {
            for (byte[] f; (f = frames.poll(5, TimeUnit.SECONDS)) != null; ) {
                Frames.Out o = Frames.Out.parse(f);
                if (o.protocol() == 1) return o;
            }
            return null;
        }
    }

    static int u16(byte[] b, int o) {
        return ((b[o] & 0xff) << 8) | (b[o + 1] & 0xff);
    }

    @Test
    void echoThroughAPingSocketIsAnsweredWithTheGuestsIdentifierAndRefusedWhereTheSysctlSaysNo() throws Exception {
        pingGroupRange("1 0");
        assertEquals(
                -Errno.EACCES,
                (int) far.call(PingSocketHost::openInCurrentNamespace),
                "no ping sockets for gid 0 with the range 1 0");
        try (UserNetBackend user = start()) {
            Guest guest = new Guest();
            NetQueue q =
                    user.activate(NetLinkConfig.plain(), List.of(guest.port)).get(0);
            assertEquals(TxResult.SENT, q.transmit(MemorySegment.ofArray(Frames.icmpEcho(GUEST, FAR, 0x4242, 1))));
            Frames.Out refused = guest.nextIcmp();
            assertNotNull(refused);
            assertEquals(3, refused.payload()[0]);
            assertEquals(IcmpStage.CODE_ADMIN_PROHIBITED, refused.payload()[1]);
        }

        pingGroupRange("0 2147483647");
        try (UserNetBackend user = start()) {
            Guest guest = new Guest();
            NetQueue q =
                    user.activate(NetLinkConfig.plain(), List.of(guest.port)).get(0);
            for (int seq = 1; seq <= 3; seq++) {
                assertEquals(
                        TxResult.SENT, q.transmit(MemorySegment.ofArray(Frames.icmpEcho(GUEST, FAR, 0x4242, seq))));
                Frames.Out r = guest.nextIcmp();
                assertNotNull(r, "echo reply " + seq);
                assertEquals(0, r.payload()[0], "an echo reply");
                assertEquals(FAR, r.src());
                assertEquals(GUEST, r.dst());
                assertEquals(0x4242, u16(r.payload(), 4));
                assertEquals(seq, u16(r.payload(), 6));
                assertEquals(0x0102030405060708L, ByteBuffer.wrap(r.payload()).getLong(8));
                assertTrue(r.checksumOk());
            }
            assertEquals(1, user.flowCounts()[2], "one socket served the identifier's three echoes");
        }
    }

    @Test
    void linuxAsTheGuestPingsAHostBeyondTheGateway() throws Exception {
        pingGroupRange("0 2147483647");
        try (NetNamespace guestNs = NetNamespace.create("jvmm-pingg");
                TapBackend tap = guestNs.call(
                        () -> TapBackend.open(new NetConfig.Tap("tap0", Optional.empty(), Optional.empty(), 1)));
                UserNetBackend user = start();
                FramePump pump = new FramePump(tap, user)) {
            guestNs.exec(10, "ip", "link", "set", "tap0", "up");
            guestNs.exec(10, "ip", "addr", "add", "10.0.2.15/24", "dev", "tap0");
            guestNs.exec(10, "ip", "route", "add", "default", "via", "10.0.2.2");
            String out = guestNs.exec(30, "busybox", "ping", "-c", "3", "-W", "5", "192.0.2.1");
            assertTrue(out.contains("3 packets received"), out);
            String refused = execAllowingFailure(guestNs, "busybox", "ping", "-c", "1", "-W", "3", "169.254.169.254");
            assertTrue(refused.contains("0 packets received"), refused);
        }
    }

    /** busybox ping exits 1 when nothing answers; the output is what counts. */
    static String execAllowingFailure(NetNamespace ns, String... command) {
        try {
            return ns.exec(30, command);
        } catch (AssertionError e) {
            return e.getMessage();
        }
    }
}
