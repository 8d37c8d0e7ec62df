package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.user.Inet.GUEST;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.net.GuestPorts;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.kvm.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Echo forwarding through the stack, against a fake host: what is sent where, and how replies come back. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class IcmpForwardTest {
    static final int FAR = Inet.ip(192, 0, 2, 1), FAR2 = Inet.ip(198, 51, 100, 9);
    final LinkedBlockingQueue<byte[]> toGuest = new LinkedBlockingQueue<>();
    final List<FakeHost> hosts = new CopyOnWriteArrayList<>();
    volatile int refuseOpenWith, failSendWith;
    /** Thrown by the next send, once: a bug or an Error in the stack's code rather than a host failure. */
    volatile Error errorOnSend;

    final List<Throwable> failures = new CopyOnWriteArrayList<>();
    final AtomicInteger opens = new AtomicInteger();
    UserNetBackend user;
    NetQueue queue;

    record Sent(long socket, int dst, byte[] icmp) {}

    /** Records sends; the test plays the host's replies through {@link #replies}. */
    final class FakeHost implements EchoHost {
        final Replies replies;
        final LinkedBlockingQueue<Sent> sent = new LinkedBlockingQueue<>();
        final ConcurrentLinkedQueue<Long> closedSockets = new ConcurrentLinkedQueue<>();
        volatile boolean closed;
        long next = 100;

        FakeHost(Replies replies) {
            this.replies = replies;
        }

        @Override
        public long open() {
            opens.incrementAndGet();
            return refuseOpenWith != 0 ? -refuseOpenWith : next++;
        }

        @Override
        public int send(long socket, int dst, ByteBuf icmp) {
            byte[] b = new byte[icmp.readableBytes()];
            icmp.getBytes(icmp.readerIndex(), b);
            Error e = errorOnSend;
            errorOnSend = null;
            if (e != null) throw e;
            sent.add(new Sent(socket, dst, b));
            return failSendWith != 0 ? -failSendWith : 0;
        }

        @Override
        public void close(long socket) {
            closedSockets.add(socket);
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    void start(boolean restrict) {
        user = UserNetBackend.start(
                new NetConfig.User(
                        List.of(),
                        List.of(),
                        restrict,
                        false,
                        Optional.empty(),
                        Optional.of(new InetSocketAddress(InetAddress.getLoopbackAddress(), 9))),
                replies -> {
                    FakeHost h = new FakeHost(replies);
                    hosts.add(h);
                    return h;
                });
        queue = user.activate(NetLinkConfig.plain(), List.of(GuestPorts.collecting(toGuest, () -> true, failures)))
                .get(0);
    }

    @AfterEach
    void stop() {
        if (user != null) user.close();
    }

    void send(byte[] frame) {
        assertEquals(TxResult.SENT, queue.transmit(MemorySegment.ofArray(frame)));
    }

    Frames.Out nextIcmp(long millis) throws InterruptedException {
        long end = System.currentTimeMillis() + millis;
        for (long left = millis; left > 0; left = end - System.currentTimeMillis()) {
            byte[] f = toGuest.poll(left, TimeUnit.MILLISECONDS);
            if (f == null) return null;
            Frames.Out o = Frames.Out.parse(f);
            if (o.protocol() == 1) return o;
        }
        return null;
    }

    static byte[] echoReply(int hostId, int seq, long data) {
        return ByteBuffer.allocate(16)
                .put((byte) 0)
                .put((byte) 0)
                .putShort((short) 0x1234)
                .putShort((short) hostId)
                .putShort((short) seq)
                .putLong(data)
                .array();
    }

    /** The one echo host, made by the stack's thread when the first echo arrived there. */
    FakeHost host() throws InterruptedException {
        for (int i = 0; i < 500 && hosts.isEmpty(); i++) Thread.sleep(10);
        assertEquals(1, hosts.size());
        return hosts.get(0);
    }

    static int u16(byte[] b, int o) {
        return ((b[o] & 0xff) << 8) | (b[o + 1] & 0xff);
    }

    void assertUnreachable(Frames.Out r, int code, int to) {
        assertNotNull(r, "an ICMP error for the guest");
        assertEquals(3, r.payload()[0]);
        assertEquals(code, r.payload()[1]);
        assertEquals(to, ByteBuffer.wrap(r.payload()).getInt(8 + 16), "quotes the guest's packet");
        assertTrue(r.checksumOk());
    }

    @Test
    void echoLeavesThroughAHostSocketAndTheReplyComesBackWithTheGuestsIdentifier() throws Exception {
        start(false);
        send(Frames.icmpEcho(GUEST, FAR, 0x4242, 7));
        Sent s = host().sent.poll(5, TimeUnit.SECONDS);
        assertNotNull(s);
        assertEquals(FAR, s.dst());
        assertEquals(8, s.icmp()[0]);
        assertEquals(7, u16(s.icmp(), 6));
        assertEquals(
                0x0102030405060708L, ByteBuffer.wrap(s.icmp()).getLong(8), "the data goes out as the guest wrote it");

        host().replies.reply(s.socket(), FAR, Unpooled.wrappedBuffer(echoReply(0x9999, 7, 0x0102030405060708L)));
        Frames.Out r = nextIcmp(5000);
        assertNotNull(r);
        assertEquals(FAR, r.src());
        assertEquals(GUEST, r.dst());
        assertEquals(0, r.payload()[0]);
        assertEquals(0x4242, u16(r.payload(), 4), "the host socket's identifier is replaced by the guest's");
        assertEquals(7, u16(r.payload(), 6));
        assertEquals(0x0102030405060708L, ByteBuffer.wrap(r.payload()).getLong(8));
        assertTrue(r.checksumOk());
        assertEquals(1, user.flowCounts()[2]);
    }

    @Test
    void oneSocketPerGuestIdentifierAndRepliesOnlyFromPingedHosts() throws Exception {
        start(false);
        send(Frames.icmpEcho(GUEST, FAR, 1, 1));
        send(Frames.icmpEcho(GUEST, FAR2, 1, 2));
        send(Frames.icmpEcho(GUEST, FAR, 2, 1));
        Sent a = host().sent.poll(5, TimeUnit.SECONDS),
                b = host().sent.poll(5, TimeUnit.SECONDS),
                c = host().sent.poll(5, TimeUnit.SECONDS);
        assertNotNull(c);
        assertEquals(a.socket(), b.socket(), "one identifier, one socket, whatever the destination");
        assertNotEquals(a.socket(), c.socket());
        assertEquals(2, opens.get());
        assertEquals(2, user.flowCounts()[2]);

        // Identifier 2 pinged only FAR: a reply on its socket from FAR2 is dropped; identifier 1's from FAR2 passes.
        host().replies.reply(c.socket(), FAR2, Unpooled.wrappedBuffer(echoReply(77, 1, 5)));
        assertNull(nextIcmp(300));
        host().replies.reply(a.socket(), FAR2, Unpooled.wrappedBuffer(echoReply(77, 2, 5)));
        Frames.Out r = nextIcmp(5000);
        assertNotNull(r);
        assertEquals(FAR2, r.src());
        assertEquals(1, u16(r.payload(), 4));
        assertEquals(2, u16(r.payload(), 6));
        // Not an echo reply, or a socket the stack does not know: dropped.
        byte[] notReply = echoReply(77, 3, 5);
        notReply[0] = 8;
        host().replies.reply(a.socket(), FAR, Unpooled.wrappedBuffer(notReply));
        host().replies.reply(12345, FAR, Unpooled.wrappedBuffer(echoReply(77, 4, 5)));
        host().replies.reply(a.socket(), FAR, Unpooled.wrappedBuffer(new byte[4]));
        assertNull(nextIcmp(300));
    }

    @Test
    void refusedDestinationsAreProhibitedWithoutTouchingTheHost() throws Exception {
        start(false);
        for (int dst : new int[] {Inet.LOOPBACK, Inet.ip(10, 0, 2, 77), Inet.ip(169, 254, 169, 254)}) {
            send(Frames.icmpEcho(GUEST, dst, 5, 1));
            assertUnreachable(nextIcmp(5000), IcmpStage.CODE_ADMIN_PROHIBITED, dst);
        }
        // No ICMP error answers a broadcast or multicast (RFC 1122 3.2.2): it would come from that address.
        for (int dst : new int[] {Inet.ip(224, 0, 0, 1), Inet.LIMITED_BROADCAST, Inet.BROADCAST}) {
            send(Frames.icmpEcho(GUEST, dst, 5, 1));
            assertNull(nextIcmp(300), "an answer to a ping of " + Inet.text(dst));
        }
        assertEquals(0, opens.get());
    }

    @Test
    void restrictOnProhibitsEchoBeyondTheGatewayButTheGatewayStillAnswers() throws Exception {
        start(true);
        send(Frames.icmpEcho(GUEST, FAR, 5, 1));
        assertUnreachable(nextIcmp(5000), IcmpStage.CODE_ADMIN_PROHIBITED, FAR);
        send(Frames.icmpEcho(GUEST, Inet.GATEWAY, 5, 2));
        Frames.Out r = nextIcmp(5000);
        assertNotNull(r);
        assertEquals(0, r.payload()[0]);
        assertEquals(0, opens.get());
    }

    @Test
    void aHostWithoutPingSocketsGivesProhibitedAndIsNotAskedAgainAtOnce() throws Exception {
        refuseOpenWith = Errno.EACCES;
        start(false);
        send(Frames.icmpEcho(GUEST, FAR, 5, 1));
        assertUnreachable(nextIcmp(5000), IcmpStage.CODE_ADMIN_PROHIBITED, FAR);
        send(Frames.icmpEcho(GUEST, FAR, 6, 1));
        assertUnreachable(nextIcmp(5000), IcmpStage.CODE_ADMIN_PROHIBITED, FAR);
        assertEquals(1, opens.get(), "a refusal is remembered for a while, not retried per packet");
        assertEquals(0, user.flowCounts()[2]);
    }

    @Test
    void sendErrorsBecomeTheMatchingIcmpError() throws Exception {
        start(false);
        failSendWith = Errno.ENETUNREACH;
        send(Frames.icmpEcho(GUEST, FAR, 5, 1));
        assertUnreachable(nextIcmp(5000), IcmpStage.CODE_NET_UNREACHABLE, FAR);
        failSendWith = Errno.EHOSTUNREACH;
        send(Frames.icmpEcho(GUEST, FAR, 5, 2));
        assertUnreachable(nextIcmp(5000), IcmpStage.CODE_HOST_UNREACHABLE, FAR);
        failSendWith = Errno.EAGAIN;
        send(Frames.icmpEcho(GUEST, FAR, 5, 3));
        assertNull(nextIcmp(300), "a transient failure loses the packet, as a busy link would");
    }

    @Test
    void socketsAreBoundedAndAllClosedWhenTheGuestDriverGoes() throws Exception {
        start(false);
        int n = IcmpStage.MAX_FLOWS + 8;
        for (int id = 0; id < n; id++) send(Frames.icmpEcho(GUEST, FAR, id, 1));
        for (int i = 0; i < n; i++) assertNotNull(host().sent.poll(5, TimeUnit.SECONDS));
        assertEquals(n, opens.get());
        assertEquals(IcmpStage.MAX_FLOWS, user.flowCounts()[2]);
        assertEquals(8, host().closedSockets.size(), "the least recently used identifiers gave their sockets back");
        user.deactivate();
        assertEquals(n, host().closedSockets.size());
        assertTrue(host().closed);
    }

    @Test
    void hostileEchoIsDropped() throws Exception {
        start(false);
        byte[] f = Frames.icmpEcho(GUEST, FAR, 5, 1);
        f[14 + 20 + 2] ^= 1; // bad ICMP checksum
        send(f);
        byte[] code = Frames.icmpEcho(GUEST, FAR, 5, 1);
        code[14 + 20 + 1] = 1; // echo with a code other than 0: fix the checksum so only the code is wrong
        code[14 + 20 + 2] = code[14 + 20 + 3] = 0;
        int c = Frames.checksum(code, 34, code.length - 34, 0);
        code[36] = (byte) (c >>> 8);
        code[37] = (byte) c;
        send(code);
        assertNull(nextIcmp(300));
        assertEquals(0, opens.get());
        assertTrue(user.droppedFrames() >= 2);
    }

    @Test
    void tooManyDestinationsForOneIdentifierAreDropped() throws Exception {
        start(false);
        for (int i = 0; i < IcmpStage.MAX_PEERS_PER_FLOW + 1; i++)
            send(Frames.icmpEcho(GUEST, Inet.ip(192, 0, 2, 10 + i), 5, i));
        for (int i = 0; i < IcmpStage.MAX_PEERS_PER_FLOW; i++)
            assertNotNull(host().sent.poll(5, TimeUnit.SECONDS));
        assertNull(host().sent.poll(300, TimeUnit.MILLISECONDS));
        assertArrayEquals(new int[] {0, 0, 1}, user.flowCounts());
    }

    @Test
    void anErrorInTheStackIsReportedToTheDeviceOnceAndTheStackGoesOn() throws Exception {
        start(false);
        errorOnSend = new OutOfMemoryError("test: no heap for this echo");
        send(Frames.icmpEcho(GUEST, FAR, 1, 1));
        for (int i = 0; i < 500 && failures.isEmpty(); i++) Thread.sleep(10);
        assertEquals(1, failures.size(), "the device hears of it");
        assertTrue(failures.get(0) instanceof OutOfMemoryError);
        // The frames after it are still taken and answered: the stack's thread and its queue are not wedged.
        send(Frames.icmpEcho(GUEST, FAR, 1, 2));
        assertNotNull(host().sent.poll(5, TimeUnit.SECONDS));
        send(Frames.icmpEcho(GUEST, Inet.GATEWAY, 7, 1));
        assertNotNull(nextIcmp(5000), "the gateway still answers");
        assertEquals(1, failures.size(), "one report per activation");
    }
}
