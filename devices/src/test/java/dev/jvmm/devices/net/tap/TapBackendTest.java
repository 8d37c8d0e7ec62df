package dev.jvmm.devices.net.tap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.GuestPorts;
import dev.jvmm.devices.net.NetBackendException;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetNamespace;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The TAP backend on a bridge inside a namespace, with a peer namespace on the same bridge answering ARP and
 * ping: frames go both ways through the kernel, as they would for a guest.
 */
@Tag("netns")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TapBackendTest {
    static final long GUEST_MAC = 0x525400abcdefL;
    static final int GUEST_IP = 0xc0a84d01, PEER_IP = 0xc0a84d02; // 192.168.77.1 and .2

    @Test
    void framesCrossABridgeToAPeerNamespaceAndBack() throws Exception {
        NetNamespace.requireTools();
        try (NetNamespace host = NetNamespace.create("jvmm-tap");
                NetNamespace peer = NetNamespace.create("jvmm-peer")) {
            host.exec(10, "ip", "link", "add", "br0", "type", "bridge");
            host.exec(10, "ip", "link", "set", "br0", "up");
            host.exec(10, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", peer.name());
            host.exec(10, "ip", "link", "set", "veth0", "master", "br0", "up");
            peer.exec(10, "ip", "addr", "add", "192.168.77.2/24", "dev", "veth1");
            peer.exec(10, "ip", "link", "set", "veth1", "up");

            NetBackendException noBridge = assertThrows(
                    NetBackendException.class,
                    () -> host.call(() ->
                            TapBackend.open(new NetConfig.Tap("jtap1", Optional.of("nosuchbr"), Optional.empty(), 1))));
            assertTrue(noBridge.getMessage().contains("bridge=nosuchbr"), noBridge.getMessage());

            try (TapBackend tap = host.call(
                    () -> TapBackend.open(new NetConfig.Tap("jtap0", Optional.of("br0"), Optional.empty(), 1)))) {
                assertEquals("jtap0", tap.ifname());
                String link = host.exec(10, "ip", "link", "show", "jtap0");
                assertTrue(link.contains("master br0") && link.contains("UP"), link);
                assertEquals(EnumSet.allOf(NetOffload.class), tap.capabilities().fromGuest());

                LinkedBlockingQueue<byte[]> received = new LinkedBlockingQueue<>();
                NetQueue q = tap.activate(NetLinkConfig.plain(), List.of(GuestPorts.collecting(received)))
                        .get(0);
                byte[] reply = null;
                for (int attempt = 0;
                        attempt < 20 && reply == null;
                        attempt++) { // the bridge port may still be coming up
                    assertEquals(TxResult.SENT, q.transmit(MemorySegment.ofArray(arpRequest())));
                    reply = next(received, f -> type(f) == 0x0806 && f[21] == 2, 500);
                }
                assertNotNull(reply, "no ARP reply from the peer namespace");
                long peerMac = ByteBuffer.wrap(reply).getLong(22 - 2) & 0xffffffffffffL;
                assertEquals(GUEST_MAC, ByteBuffer.wrap(reply).getLong(0) >>> 16);

                assertEquals(TxResult.SENT, q.transmit(MemorySegment.ofArray(echo(peerMac))));
                byte[] pong = next(received, f -> type(f) == 0x0800 && f[23] == 1 && f[34] == 0, 3000);
                assertNotNull(pong, "no echo reply from the peer namespace");
                assertEquals(PEER_IP, ByteBuffer.wrap(pong).getInt(26));

                assertEquals(TxResult.DROPPED, q.transmit(MemorySegment.ofArray(new byte[6])), "a runt frame");
                assertTrue(tap.droppedFrames() >= 1);
                tap.deactivate();
                assertEquals(TxResult.DROPPED, q.transmit(MemorySegment.ofArray(arpRequest())), "after deactivate");
                // Offloads the guest accepts reach TUNSETOFFLOAD; a second activation with them works.
                tap.activate(
                        new NetLinkConfig(12, Set.of(NetOffload.CSUM, NetOffload.TSO4, NetOffload.USO)),
                        List.of(new GuestPort() {
                            @Override
                            public boolean deliver(MemorySegment frame) {
                                return true;
                            }

                            @Override
                            public void txReady() {}

                            @Override
                            public void backendFailed(String where, Throwable cause) {}
                        }));
            }
            assertTrue(
                    !host.exec(10, "ip", "link", "show").contains("jtap0"), "the tap we created goes away with its fd");
        }
    }

    static int type(byte[] f) {
        return f.length < 14 ? -1 : ((f[12] & 0xff) << 8) | (f[13] & 0xff);
    }

    static byte[] next(LinkedBlockingQueue<byte[]> q, java.util.function.Predicate<byte[]> p, long millis)
            throws InterruptedException {
        long end = System.currentTimeMillis() + millis;
        for (long left = millis; left > 0; left = end - System.currentTimeMillis()) {
            byte[] f = q.poll(left, TimeUnit.MILLISECONDS);
            if (f == null) return null;
            if (p.test(f)) return f;
        }
        return null;
    }

    static byte[] arpRequest() {
        ByteBuffer b = ByteBuffer.allocate(42);
        b.putShort((short) 0xffff)
                .putInt(-1)
                .putShort((short) (GUEST_MAC >>> 32))
                .putInt((int) GUEST_MAC)
                .putShort((short) 0x0806);
        b.putShort((short) 1)
                .putShort((short) 0x0800)
                .put((byte) 6)
                .put((byte) 4)
                .putShort((short) 1);
        b.putShort((short) (GUEST_MAC >>> 32)).putInt((int) GUEST_MAC).putInt(GUEST_IP);
        b.putShort((short) 0).putInt(0).putInt(PEER_IP);
        return b.array();
    }

    static byte[] echo(long dstMac) {
        ByteBuffer b = ByteBuffer.allocate(14 + 20 + 16);
        b.putShort((short) (dstMac >>> 32))
                .putInt((int) dstMac)
                .putShort((short) (GUEST_MAC >>> 32))
                .putInt((int) GUEST_MAC)
                .putShort((short) 0x0800);
        b.put((byte) 0x45)
                .put((byte) 0)
                .putShort((short) 36)
                .putInt(0)
                .put((byte) 64)
                .put((byte) 1)
                .putShort((short) 0)
                .putInt(GUEST_IP)
                .putInt(PEER_IP);
        b.put((byte) 8)
                .put((byte) 0)
                .putShort((short) 0)
                .putShort((short) 9)
                .putShort((short) 1)
                .putLong(42);
        byte[] f = b.array();
        int ipSum = sum(f, 14, 20), icmpSum = sum(f, 34, 16);
        f[24] = (byte) (ipSum >>> 8);
        f[25] = (byte) ipSum;
        f[36] = (byte) (icmpSum >>> 8);
        f[37] = (byte) icmpSum;
        return f;
    }

    static int sum(byte[] b, int off, int len) {
        long s = 0;
        for (int i = 0; i < len; i += 2) s += ((b[off + i] & 0xff) << 8) | (b[off + i + 1] & 0xff);
        while ((s >>> 16) != 0) s = (s & 0xffff) + (s >>> 16);
        return (int) (~s & 0xffff);
    }
}
