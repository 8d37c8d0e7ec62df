package dev.jvmm.devices.net.user;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** Hand-built Ethernet frames (no vnet header) for feeding the stack, with correct checksums unless told. */
final class Frames {
    /** Transmits as a device would: BUSY means try again once the backend has room. */
    static void transmit(NetQueue queue, byte[] frame) throws InterruptedException {
        TxResult r;
        for (int i = 0; (r = queue.transmit(MemorySegment.ofArray(frame))) == TxResult.BUSY && i < 500; i++)
            Thread.sleep(10);
        assertEquals(TxResult.SENT, r);
    }

    /** The next frame to the guest that {@code what} accepts within {@code millis}, or null. */
    static Out next(BlockingQueue<byte[]> toGuest, Predicate<Out> what, long millis) throws InterruptedException {
        long end = System.currentTimeMillis() + millis;
        for (long left = millis; left > 0; left = end - System.currentTimeMillis()) {
            byte[] f = toGuest.poll(left, TimeUnit.MILLISECONDS);
            if (f == null) return null;
            Out o = Out.parse(f);
            if (what.test(o)) return o;
        }
        return null;
    }

    static final long GUEST_MAC = 0x525400123456L;

    private Frames() {}

    static int checksum(byte[] b, int off, int len, long initial) {
        long s = initial;
        for (int i = 0; i + 1 < len; i += 2) s += ((b[off + i] & 0xff) << 8) | (b[off + i + 1] & 0xff);
        if ((len & 1) != 0) s += (b[off + len - 1] & 0xff) << 8;
        while ((s >>> 16) != 0) s = (s & 0xffff) + (s >>> 16);
        return (int) (~s & 0xffff);
    }

    static byte[] ethernet(long dst, int type, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(14 + payload.length);
        b.putShort((short) (dst >>> 32)).putInt((int) dst);
        b.putShort((short) (GUEST_MAC >>> 32)).putInt((int) GUEST_MAC);
        b.putShort((short) type).put(payload);
        return b.array();
    }

    static byte[] arpRequest(int senderIp, int targetIp) {
        ByteBuffer b = ByteBuffer.allocate(28);
        b.putShort((short) 1)
                .putShort((short) 0x0800)
                .put((byte) 6)
                .put((byte) 4)
                .putShort((short) 1);
        b.putShort((short) (GUEST_MAC >>> 32)).putInt((int) GUEST_MAC).putInt(senderIp);
        b.putShort((short) 0).putInt(0).putInt(targetIp);
        return ethernet(EthernetStage.BROADCAST_MAC, 0x0806, b.array());
    }

    static byte[] ipv4(int src, int dst, int protocol, byte[] l4) {
        byte[] p = new byte[20 + l4.length];
        ByteBuffer b = ByteBuffer.wrap(p);
        b.put((byte) 0x45)
                .put((byte) 0)
                .putShort((short) p.length)
                .putShort((short) 1)
                .putShort((short) 0x4000);
        b.put((byte) 64)
                .put((byte) protocol)
                .putShort((short) 0)
                .putInt(src)
                .putInt(dst)
                .put(l4);
        int c = checksum(p, 0, 20, 0);
        p[10] = (byte) (c >>> 8);
        p[11] = (byte) c;
        return p;
    }

    static long pseudo(int src, int dst, int proto, int len) {
        return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
    }

    static byte[] tcp(
            int src,
            int dst,
            int srcPort,
            int dstPort,
            int seq,
            int ack,
            int flags,
            int window,
            byte[] options,
            byte[] data) {
        int hl = 20 + options.length;
        byte[] t = new byte[hl + data.length];
        ByteBuffer b = ByteBuffer.wrap(t);
        b.putShort((short) srcPort).putShort((short) dstPort).putInt(seq).putInt(ack);
        b.put((byte) ((hl / 4) << 4))
                .put((byte) flags)
                .putShort((short) window)
                .putShort((short) 0)
                .putShort((short) 0);
        b.put(options).put(data);
        int c = checksum(t, 0, t.length, pseudo(src, dst, 6, t.length));
        t[16] = (byte) (c >>> 8);
        t[17] = (byte) c;
        return ethernet(EthernetStage.GATEWAY_MAC, 0x0800, ipv4(src, dst, 6, t));
    }

    static byte[] udp(int src, int dst, int srcPort, int dstPort, byte[] data) {
        byte[] u = new byte[8 + data.length];
        ByteBuffer b = ByteBuffer.wrap(u);
        b.putShort((short) srcPort)
                .putShort((short) dstPort)
                .putShort((short) u.length)
                .putShort((short) 0)
                .put(data);
        int c = checksum(u, 0, u.length, pseudo(src, dst, 17, u.length));
        u[6] = (byte) (c >>> 8);
        u[7] = (byte) c;
        return ethernet(EthernetStage.GATEWAY_MAC, 0x0800, ipv4(src, dst, 17, u));
    }

    static byte[] icmpEcho(int src, int dst, int id, int seq) {
        byte[] m = new byte[16];
        ByteBuffer b = ByteBuffer.wrap(m);
        b.put((byte) 8)
                .put((byte) 0)
                .putShort((short) 0)
                .putShort((short) id)
                .putShort((short) seq)
                .putLong(0x0102030405060708L);
        int c = checksum(m, 0, m.length, 0);
        m[2] = (byte) (c >>> 8);
        m[3] = (byte) c;
        return ethernet(EthernetStage.GATEWAY_MAC, 0x0800, ipv4(src, dst, 1, m));
    }

    /** A parsed frame for the guest: Ethernet type, IP protocol, ports, TCP fields, payload. */
    record Out(
            byte[] raw,
            int type,
            int protocol,
            int src,
            int dst,
            int srcPort,
            int dstPort,
            int seq,
            int ack,
            int flags,
            int window,
            byte[] payload) {
        static Out parse(byte[] f) {
            ByteBuffer b = ByteBuffer.wrap(f);
            int type = b.getShort(12) & 0xffff;
            if (type != 0x0800) return new Out(f, type, 0, 0, 0, 0, 0, 0, 0, 0, 0, new byte[0]);
            int ip = 14, ihl = (f[ip] & 0xf) * 4, total = b.getShort(ip + 2) & 0xffff;
            int proto = f[ip + 9] & 0xff, l4 = ip + ihl;
            int src = b.getInt(ip + 12), dst = b.getInt(ip + 16);
            if (proto == 6) {
                int hl = ((f[l4 + 12] & 0xff) >>> 4) * 4;
                byte[] data = java.util.Arrays.copyOfRange(f, l4 + hl, ip + total);
                return new Out(
                        f,
                        type,
                        proto,
                        src,
                        dst,
                        b.getShort(l4) & 0xffff,
                        b.getShort(l4 + 2) & 0xffff,
                        b.getInt(l4 + 4),
                        b.getInt(l4 + 8),
                        f[l4 + 13] & 0xff,
                        b.getShort(l4 + 14) & 0xffff,
                        data);
            }
            if (proto == 17) {
                return new Out(
                        f,
                        type,
                        proto,
                        src,
                        dst,
                        b.getShort(l4) & 0xffff,
                        b.getShort(l4 + 2) & 0xffff,
                        0,
                        0,
                        0,
                        0,
                        java.util.Arrays.copyOfRange(f, l4 + 8, ip + total));
            }
            return new Out(f, type, proto, src, dst, 0, 0, 0, 0, 0, 0, java.util.Arrays.copyOfRange(f, l4, ip + total));
        }

        /** The L4 checksum of this frame (TCP/UDP with pseudo header, ICMP without) verifies. */
        boolean checksumOk() {
            int ip = 14, ihl = (raw[ip] & 0xf) * 4;
            int total = ByteBuffer.wrap(raw).getShort(ip + 2) & 0xffff;
            int len = total - ihl;
            if (checksum(raw, ip, ihl, 0) != 0) return false;
            long init = protocol == 1 ? 0 : pseudo(src, dst, protocol, len);
            return checksum(raw, ip + ihl, len, init) == 0;
        }
    }
}
