package dev.jvmm.devices.virtio.vsock;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.devices.FuzzInput;
import dev.jvmm.devices.FuzzInput.Writer;
import dev.jvmm.devices.virtio.FuzzGuest;
import dev.jvmm.devices.virtio.FuzzGuest.Buf;
import dev.jvmm.devices.virtio.FuzzGuest.Chain;
import dev.jvmm.devices.virtio.FuzzGuest.Pending;
import dev.jvmm.devices.virtio.FuzzGuest.Ring;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.VirtqueueException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fuzzes virtio-vsock with a hostile driver and a host side that plays along or not: transmitted packets with fuzzed
 * header fields (CIDs, ports, types, ops, flags, lengths that lie, credit values), split over buffers or with stray
 * device-writable ones; receive and event buffers of any size; host programs that connect, send, stop reading, end
 * their streams, fail, or connect late; timeouts; transport resets; raw descriptors and available entries.
 *
 * <p>Checked, always: nothing but a {@link VirtqueueException} leaves processQueue, nothing leaves the host side's
 * callbacks, the device is never reported broken, and it never holds more connections than its limit. In contained
 * mode ({@link FuzzGuest}) also: the device writes guest RAM only in the writable buffers of available receive and
 * event chains and in used rings; it uses receive chains in order, each with a length from the 44-byte header to
 * the chain's writable size, holding a header to the guest's CID with a known op, a stream type for connection
 * packets, and a len that is the rest; it never sends a connection more payload than the guest's last buf_alloc and
 * fwd_cnt allow (5.10.6.3); events are 4 bytes of VIRTIO_VSOCK_EVENT_TRANSPORT_RESET; transmit chains are used with
 * length 0.
 *
 * <p>{@link #main} writes the seed inputs.
 */
class VirtioVsockFuzzTest {
    static final long CID = 3;
    static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VERSION_1);
    static final int MAX_OPS = 64;
    static final int TX = 0, RX_POST = 1, HOST = 2, EVENT = 3, RAW = 4, PORTS = 5;
    static final int[] OPS = {TX, TX, TX, TX, RX_POST, RX_POST, HOST, HOST, HOST, EVENT, RAW, PORTS};
    static final int[] PORT_CHOICES = {1000, 1001, 80, 81, VirtioVsock.FIRST_HOST_PORT, VirtioVsock.FIRST_HOST_PORT + 1
    };

    private static final FuzzGuest guest = new FuzzGuest();

    private FakeVsockBackend backend;
    private VirtioVsock vsock;
    private long features;
    private int queueSize, maxConnections;
    private final Ring[] rings = new Ring[3];
    private Virtqueue[] queues;
    private FuzzGuest.Driver[] drivers;
    private String failed;
    /** Per (guest port, host port): the guest's last buf_alloc and fwd_cnt, and the payload the device sent. */
    private final Map<Long, long[]> credit = new HashMap<>();
    /**
     * Whether {@link #credit} knows every packet the device took: raw available entries can make it take old chains
     * again, whose headers the oracle does not follow.
     */
    private boolean creditKnown;

    private final VirtioDevice.Context context = new VirtioDevice.Context() {
        @Override
        public void signalUsed(int queueIndex) {}

        @Override
        public void configChanged() {}

        @Override
        public void fail(String reason) {
            if (failed == null) failed = reason;
        }

        @Override
        public void broken(String where, Throwable cause) {
            throw new AssertionError("device broken: " + where, cause);
        }

        @Override
        public void kick() {}
    };

    /**
     * Input: configuration (u8: bit 0 wild mode, bits 1-2 connection limit 1 to 4, bit 3 buf_alloc 4 KiB rather
     * than 8 KiB; u8: bits 0-1 queue size 4..32, bits 2-3 driver's queue size shift; u64 accepted features), then
     * operations (u8, mapped by {@link #OPS}) with their operands.
     */
    @FuzzTest(maxDuration = "30s")
    void packets(byte[] input) {
        FuzzInput in = new FuzzInput(input);
        int cfg = in.u8(), cfg2 = in.u8();
        guest.reset((cfg & 1) == 0);
        maxConnections = 1 + ((cfg >>> 1) & 3);
        queueSize = 4 << (cfg2 & 3);
        backend = new FakeVsockBackend();
        vsock = new VirtioVsock(
                backend,
                new VirtioVsock.Options(
                        CID, queueSize, (cfg & 8) != 0 ? 4096 : 8192, maxConnections, Duration.ZERO, Duration.ZERO));
        features = vsock.deviceFeatures() & (in.u64() | VERSION_1);
        int driverSize = Math.max(1, queueSize >> ((cfg2 >>> 2) & 3));
        for (int i = 0; i < 3; i++) rings[i] = FuzzGuest.ring(i, driverSize);
        credit.clear();
        activate();
        for (int op = 0; op < MAX_OPS && in.more(); op++) {
            switch (OPS[in.u8() % OPS.length]) {
                case TX -> transmit(in);
                case RX_POST -> post(in, VirtioVsock.RX);
                case HOST -> host(in);
                case EVENT -> {
                    if (in.bool()) post(in, VirtioVsock.EVENT);
                    else {
                        observe(() -> vsock.transportReset(), -1);
                        service(VirtioVsock.EVENT); // the kick's service
                    }
                }
                case RAW -> raw(in);
                default -> {
                    int port = PORT_CHOICES[2 + in.u8() % 2];
                    switch (in.u8() % 3) {
                        case 0 -> backend.listening.add(port);
                        case 1 -> backend.listening.remove(port);
                        default -> {
                            if (!backend.slowConnect.add(port)) backend.slowConnect.remove(port);
                        }
                    }
                }
            }
            assertTrue(vsock.connections() <= maxConnections, "connections beyond the limit");
            if (failed != null) resetDevice();
        }
        vsock.reset();
    }

    private boolean indirect() {
        return VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
    }

    private void activate() {
        queues = new Virtqueue[3];
        drivers = new FuzzGuest.Driver[3];
        for (int i = 0; i < 3; i++) {
            queues[i] = FuzzGuest.queue(queueSize, rings[i]);
            queues[i].activate(guest.memory, features);
            drivers[i] = guest.new Driver(rings[i]);
        }
        failed = null;
        creditKnown = true;
        vsock.activate(guest.memory, features, List.of(queues), context);
    }

    private void resetDevice() {
        vsock.reset();
        for (int i = 0; i < 3; i++) {
            queues[i].reset();
            guest.memory.fill(rings[i].avail(), 6 + 2L * rings[i].size(), (byte) 0);
            guest.memory.fill(rings[i].used(), rings[i].usedBytes(), (byte) 0);
        }
        credit.clear();
        activate();
    }

    // ---- running something and checking what the device did to guest RAM

    /** Services queue {@code i} as the transport does on a notification. */
    private void service(int i) {
        Virtqueue q = queues[i];
        if (!q.isActive() || q.isBroken() || failed != null) return;
        observe(
                () -> {
                    try {
                        synchronized (q) { // as the transport holds it
                            int rounds = 0;
                            do {
                                q.disableNotification();
                                vsock.processQueue(i, q);
                                q.needsNotification();
                            } while (++rounds < 64 && vsock.canProcess(i) && q.enableNotification());
                        }
                    } catch (VirtqueueException e) {
                        if (failed == null) failed = "queue " + i + ": " + e.getMessage();
                    }
                },
                i);
    }

    /**
     * Runs {@code action} (a queue service or a host-side event) and checks, in contained mode, where the device
     * wrote and what it put in the receive and event queues. {@code serviced} is the queue serviced, or -1.
     */
    private void observe(Runnable action, int serviced) {
        Virtqueue rx = queues[VirtioVsock.RX], ev = queues[VirtioVsock.EVENT], tx = queues[VirtioVsock.TX];
        boolean contained = guest.contained() && failed == null;
        Pending rxPending = contained && rx.isActive() && !rx.isBroken()
                ? guest.pending(rings[VirtioVsock.RX], rx.nextAvail(), queueSize, indirect())
                : null;
        Pending evPending = contained && ev.isActive() && !ev.isBroken()
                ? guest.pending(rings[VirtioVsock.EVENT], ev.nextAvail(), queueSize, indirect())
                : null;
        int rxFrom = rx.nextUsed(), evFrom = ev.nextUsed(), txFrom = tx.nextUsed();
        guest.snapshot();
        action.run();
        if (!contained) return;
        List<long[]> allowed = new ArrayList<>();
        for (Ring r : rings) allowed.add(r.usedRange());
        if (rxPending != null) allowed.addAll(rxPending.writableRanges(rings[VirtioVsock.RX]));
        if (evPending != null) allowed.addAll(evPending.writableRanges(rings[VirtioVsock.EVENT]));
        long at = guest.changedOutside(allowed);
        if (at >= 0) fail("the device wrote guest RAM at 0x" + Long.toHexString(at));
        if (rxPending != null) checkReceived(rxPending, rxFrom);
        if (evPending != null) checkEvents(evPending, evFrom);
        if (serviced == VirtioVsock.TX)
            for (int k = 0, n = (tx.nextUsed() - txFrom) & 0xffff; k < Math.min(n, rings[1].size()); k++)
                assertEquals(0, drivers[1].used(txFrom + k)[1], "used length of a transmit chain");
    }

    private static boolean clobbersUsed(List<Chain> chains, Ring ring) {
        for (Chain c : chains)
            for (Buf b : c.bufs())
                if (b.len() > 0 && b.addr() < ring.used() + ring.usedBytes() && ring.used() < b.addr() + b.len())
                    return true;
        return false;
    }

    private void checkReceived(Pending pending, int usedFrom) {
        Virtqueue rx = queues[VirtioVsock.RX];
        int used = (rx.nextUsed() - usedFrom) & 0xffff;
        List<Chain> chains = pending.chains();
        assertTrue(used <= chains.size(), used + " receive chains used of " + chains.size() + " available");
        if (used > rings[0].size()) return; // a whole ring more: earlier entries were overwritten
        List<Chain> done = chains.subList(0, used);
        if (clobbersUsed(done, rings[0])) return;
        List<long[]> ranges = new ArrayList<>();
        for (Chain c : done)
            for (Buf b : c.writable()) if (b.len() > 0) ranges.add(new long[] {b.addr(), b.addr() + b.len()});
        boolean overlap = FuzzGuest.overlapping(ranges);
        for (int k = 0; k < used; k++) {
            int[] e = drivers[0].used(usedFrom + k);
            Chain c = done.get(k);
            assertEquals(c.head(), e[0], "receive chains are used in order");
            long len = Integer.toUnsignedLong(e[1]);
            assertTrue(len >= VsockHeader.SIZE && len <= c.writableLength(), "used length " + len + " of " + c);
            if (!overlap) checkPacket(gather(c, (int) len));
        }
    }

    private byte[] gather(Chain c, int len) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        long left = len;
        for (Buf b : c.writable()) {
            long n = Math.min(left, b.len());
            o.writeBytes(guest.now(b.addr(), n));
            left -= n;
        }
        return o.toByteArray();
    }

    /** One packet to the guest, against the rules and the guest's credit. */
    private void checkPacket(byte[] p) {
        VsockHeader h = VsockHeader.read(MemorySegment.ofArray(p));
        String what = "packet to the guest " + h;
        assertEquals(CID, h.dstCid(), what);
        assertEquals(p.length - VsockHeader.SIZE, Integer.toUnsignedLong(h.len()), what + ": len");
        VsockOp op = h.knownOp();
        assertTrue(op != null, what + ": op");
        if (op != VsockOp.RW) assertEquals(0, h.len(), what + ": payload on a control packet");
        assertTrue(Integer.toUnsignedLong(h.len()) <= TxPacket.MAX_PAYLOAD, what);
        if (op == VsockOp.RST && h.srcCid() != TxPacket.HOST_CID) return; // an answer to a packet for another CID
        assertEquals(TxPacket.HOST_CID, h.srcCid(), what);
        if (op != VsockOp.RST) assertEquals(VsockHeader.TYPE_STREAM, h.type(), what);
        long key = key(h.dstPort(), h.srcPort());
        long[] c = credit.computeIfAbsent(key, k -> new long[3]);
        switch (op) {
            case REQUEST -> {
                c[0] = 0;
                c[1] = 0;
                c[2] = 0;
            }
            case RESPONSE, RST -> c[2] = 0;
            case RW -> {
                c[2] += Integer.toUnsignedLong(h.len());
                long inFlight = (c[2] - c[1]) & 0xffff_ffffL;
                assertTrue(
                        !creditKnown || inFlight <= c[0],
                        what + ": beyond the guest's credit (buf_alloc " + c[0] + ", fwd_cnt " + c[1] + ", sent " + c[2]
                                + ")");
            }
            default -> {}
        }
    }

    private void checkEvents(Pending pending, int usedFrom) {
        Virtqueue ev = queues[VirtioVsock.EVENT];
        int used = (ev.nextUsed() - usedFrom) & 0xffff;
        assertTrue(used <= pending.chains().size() && used <= 1, used + " events");
        for (int k = 0; k < used; k++) {
            int[] e = drivers[2].used(usedFrom + k);
            Chain c = pending.chains().get(k);
            assertEquals(c.head(), e[0]);
            assertEquals(4, e[1], "an event is 4 bytes");
            if (!clobbersUsed(List.of(c), rings[2]))
                assertTrue(Arrays.equals(new byte[4], gather(c, 4)), "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET");
        }
    }

    private static long key(int guestPort, int hostPort) {
        return (long) guestPort << 32 | Integer.toUnsignedLong(hostPort);
    }

    // ---- the driver

    private int pickPort(FuzzInput in) {
        int k = in.u8() % 8;
        return k < PORT_CHOICES.length ? PORT_CHOICES[k] : in.u32();
    }

    private static int pickU32(FuzzInput in, int... choices) {
        int k = in.u8() % (choices.length + 1);
        return k < choices.length ? choices[k] : in.u32();
    }

    private void transmit(FuzzInput in) {
        int shape = in.u8();
        long src = (shape & 0x30) == 0x30 ? in.u64() : CID;
        long dst = (shape & 0xc0) == 0xc0 ? in.u64() : TxPacket.HOST_CID;
        int type = in.u8() % 8 == 7 ? in.u16() : VsockHeader.TYPE_STREAM;
        int opCode = in.u8() % 10;
        if (opCode > 7) opCode = opCode == 8 ? 0 : in.u16();
        int guestPort = pickPort(in), hostPort = pickPort(in);
        int flags = in.u8() % 4 == 3 ? in.u32() : in.u8() % 4;
        int bufAlloc = pickU32(in, 0, 100, 4096, 65536, 1 << 20);
        long[] c = credit.get(key(guestPort, hostPort));
        long sent = c == null ? 0 : c[2];
        int fwdCnt = switch (in.u8() % 4) {
            case 0 -> 0;
            case 1 -> (int) sent; // all consumed
            case 2 -> (int) (sent - in.u8()); // some consumed
            default -> in.u32();
        };
        int payload = switch (in.u8() % 6) {
            case 0, 1 -> 0;
            case 2 -> 1 + in.u8();
            case 3 -> in.u16() % 9000;
            case 4 -> TxPacket.MAX_PAYLOAD + in.u8() % 2;
            default -> in.u16();
        };
        int len = in.u8() % 8 == 7 ? pickU32(in, payload + 1, payload - 1, -1) : payload;
        byte[] bytes = new byte[VsockHeader.SIZE + payload];
        new VsockHeader(src, dst, guestPort, hostPort, len, type, opCode, flags, bufAlloc, fwdCnt)
                .write(MemorySegment.ofArray(bytes));
        byte[] data = FuzzGuest.patterned(payload, len);
        System.arraycopy(data, 0, bytes, VsockHeader.SIZE, payload);
        List<Buf> bufs = lay(in, bytes);
        boolean stray = (shape & 7) == 7;
        if (stray) bufs.add(new Buf(guest.alloc(64), 64, true));
        // The guest's credit as the device applies it (from a valid packet on a connection, a reset excepted), set
        // before the service: the device may send data on it in the same service.
        boolean valid = layFresh
                && !stray
                && src == CID
                && dst == TxPacket.HOST_CID
                && type == VsockHeader.TYPE_STREAM
                && opCode >= 1
                && opCode <= 7
                && opCode != VsockOp.RST.code
                && Integer.toUnsignedLong(len) <= Math.min(payload, TxPacket.MAX_PAYLOAD);
        if (valid) {
            long[] k = credit.computeIfAbsent(key(guestPort, hostPort), x -> new long[3]);
            k[0] = Integer.toUnsignedLong(bufAlloc);
            k[1] = Integer.toUnsignedLong(fwdCnt);
        }
        Virtqueue tx = queues[VirtioVsock.TX];
        int usedBefore = tx.nextUsed();
        int head = drivers[1].chain(bufs, indirect() && (shape & 8) != 0);
        drivers[1].publish(head);
        service(VirtioVsock.TX);
        boolean tookOnlyThis =
                tx.nextUsed() == ((usedBefore + 1) & 0xffff) && drivers[1].used(usedBefore)[0] == head;
        if (!tookOnlyThis) creditKnown = false; // the device took other chains, or not this one
    }

    /** Bytes as device-readable buffers, cut at fuzzed places; mostly fresh memory, sometimes fuzzed addresses. */
    private boolean layFresh;

    private List<Buf> lay(FuzzInput in, byte[] bytes) {
        layFresh = true;
        int cuts = in.u8() % 3;
        int[] at = new int[cuts + 2];
        at[cuts + 1] = bytes.length;
        for (int i = 1; i <= cuts; i++) at[i] = in.below(bytes.length + 1);
        Arrays.sort(at, 1, cuts + 1);
        List<Buf> bufs = new ArrayList<>();
        for (int i = 0; i <= cuts; i++) {
            int len = at[i + 1] - at[i];
            long addr;
            if (in.u8() % 16 != 15) {
                addr = guest.alloc(len);
                if (len > 0) guest.memory.write(addr, bytes, at[i], len);
            } else {
                addr = guest.pickAddress(in); // holds whatever is there, not these bytes
                layFresh = false;
            }
            bufs.add(new Buf(addr, len, false));
        }
        return bufs;
    }

    private long pickBufferSize(FuzzInput in) {
        return switch (in.u8() % 10) {
            case 0 -> 0;
            case 1 -> 4;
            case 2 -> VsockHeader.SIZE - 1;
            case 3 -> VsockHeader.SIZE;
            case 4 -> VsockHeader.SIZE + 1 + in.u8();
            case 5, 6 -> VsockHeader.SIZE + 4096;
            case 7 -> in.u16();
            default -> 64 + in.u8();
        };
    }

    private void post(FuzzInput in, int i) {
        int chains = 1 + in.below(4);
        for (int k = 0; k < chains; k++) {
            int shape = in.u8(), n = 1 + shape % 3;
            List<Buf> bufs = new ArrayList<>();
            for (int j = 0; j < n; j++) {
                long size = pickBufferSize(in);
                long addr = in.u8() % 16 != 15 ? guest.alloc(size) : guest.pickAddress(in);
                bufs.add(new Buf(addr, size, j > 0 || (shape & 0x30) != 0x30));
            }
            drivers[i].publish(drivers[i].chain(bufs, indirect() && (shape & 8) != 0));
        }
        service(i);
    }

    private void host(FuzzInput in) {
        int what = in.u8() % 9;
        if (what == 0) {
            int port = pickPort(in);
            observe(() -> backend.hostConnects(port), -1);
            return;
        }
        if (what == 1) {
            long now = System.nanoTime() + (in.bool() ? Duration.ofSeconds(10).toNanos() : 0);
            observe(() -> backend.host.tick(now), -1);
            return;
        }
        List<FakeVsockBackend.Stream> streams = backend.streams;
        if (streams.isEmpty()) return;
        FakeVsockBackend.Stream s = streams.get(in.below(streams.size()));
        if (s.listener == null) return; // refused
        switch (what) {
            case 2, 3 -> {
                byte[] b = FuzzGuest.patterned(1 + in.u16() % 9000, in.u8());
                observe(() -> s.send(b), -1);
            }
            case 4 -> {
                synchronized (s) {
                    s.eof = true;
                }
                observe(s.listener::readable, -1);
            }
            case 5 -> {
                synchronized (s) {
                    if (in.bool()) s.readError = true;
                    else s.writeError = true;
                }
                observe(in.bool() ? s.listener::readable : s.listener::writable, -1);
            }
            case 6 -> {
                synchronized (s) {
                    s.room = in.u8() % 4 == 0 ? -1 : in.u16();
                }
                observe(s.listener::writable, -1);
            }
            case 7 -> observe(s.listener::connected, -1);
            default -> observe(() -> s.listener.failed(new IOException("refused")), -1);
        }
    }

    private void raw(FuzzInput in) {
        creditKnown = false;
        int i = in.below(3);
        Ring ring = rings[i];
        switch (in.u8() % 4) {
            case 0 -> drivers[i].fuzzDescriptor(in);
            case 1 -> guest.fuzzIndirectDescriptor(in);
            case 2 -> {
                drivers[i].publish(FuzzGuest.pickIndex(in, ring.size()));
                service(i);
            }
            default -> {
                drivers[i].fuzzAvailIdx(in);
                service(i);
            }
        }
    }

    // ---- seed inputs

    /** Writes {@link #seeds} into the Inputs folder under the given src/test/resources (default: the cwd's). */
    public static void main(String[] args) throws IOException {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        FuzzInput.writeSeeds(resources, VirtioVsockFuzzTest.class, "packets", seeds());
    }

    private static int op(int o) {
        for (int i = 0; i < OPS.length; i++) if (OPS[i] == o) return i;
        throw new IllegalArgumentException("no op " + o);
    }

    /** Receive buffers: {@code count} chains of one header-and-4-KiB buffer each. */
    static Writer rx(Writer w, int count) {
        w.u8(op(RX_POST)).u8(count - 1);
        for (int i = 0; i < count; i++) w.u8(0).u8(5).u8(0);
        return w;
    }

    /**
     * A packet from the guest: op code, port choices (0-5: {@link #PORT_CHOICES}), flags, buf_alloc choice (0-4),
     * fwd_cnt choice (0: 0, 1: all sent), payload choice (0: none, 2: 1 + n bytes), len as the payload, one buffer.
     */
    static Writer tx(Writer w, int opCode, int guestPort, int hostPort, int flags, int bufAlloc, int fwd, int n) {
        w.u8(op(TX)).u8(0).u8(0).u8(opCode).u8(guestPort).u8(hostPort).u8(0).u8(flags);
        w.u8(bufAlloc).u8(fwd);
        if (n == 0) w.u8(0);
        else w.u8(2).u8(n - 1);
        return w.u8(0).u8(0).u8(0);
    }

    static Map<String, byte[]> seeds() {
        Map<String, byte[]> s = new LinkedHashMap<>();
        long all = -1L;
        int req = VsockOp.REQUEST.code, rw = VsockOp.RW.code, shut = VsockOp.SHUTDOWN.code;
        int response = VsockOp.RESPONSE.code, update = VsockOp.CREDIT_UPDATE.code;
        // The guest connects to host port 80 (listening), sends data; the host answers beyond a small credit.
        Writer w = new Writer().u8(6).u8(3).u64(all);
        w.u8(op(PORTS)).u8(0).u8(0); // port 80 listens
        rx(w, 4);
        tx(w, req, 0, 2, 0, 1, 0, 0);
        tx(w, rw, 0, 2, 0, 1, 0, 20);
        w.u8(op(HOST)).u8(2).u8(0).u16(500).u8(1); // the host program sends 501 bytes to a 100-byte credit
        tx(w, update, 0, 2, 0, 1, 1, 0);
        rx(w, 4);
        tx(w, shut, 0, 2, 3, 1, 1, 0);
        s.put("guest-connects-credit-and-shutdown", w.bytes());
        // A host program connects to guest port 1000; the guest accepts; data both ways; the host ends its stream.
        w = new Writer().u8(6).u8(3).u64(all);
        rx(w, 4);
        w.u8(op(HOST)).u8(0).u8(0);
        tx(w, response, 0, 4, 0, 3, 0, 0);
        w.u8(op(HOST)).u8(2).u8(0).u16(3000).u8(2);
        tx(w, rw, 0, 4, 0, 3, 1, 100);
        w.u8(op(HOST)).u8(4).u8(0);
        rx(w, 2);
        s.put("host-connects-data-and-eof", w.bytes());
        // A flood of requests past the connection limit, a slow host program, the guest over its credit, a timeout.
        w = new Writer().u8(0).u8(3).u64(all);
        w.u8(op(PORTS)).u8(0).u8(0).u8(op(PORTS)).u8(1).u8(0);
        for (int p = 0; p < 4; p++) tx(w, req, p % 2, 2 + p % 2, 0, 3, 0, 0);
        rx(w, 4);
        w.u8(op(HOST)).u8(6).u8(0).u8(1).u16(10);
        tx(w, rw, 0, 2, 0, 3, 0, 255);
        for (int k = 0; k < 40; k++) tx(w, rw, 0, 2, 0, 3, 0, 255);
        w.u8(op(HOST)).u8(1).u8(1);
        rx(w, 4);
        s.put("flood-slow-host-over-credit-timeout", w.bytes());
        // Lying lengths, unknown ops, spoofed CIDs, a transport reset with an event buffer.
        w = new Writer().u8(6).u8(3).u64(all);
        rx(w, 4);
        w.u8(op(TX))
                .u8(0x30)
                .u64(99)
                .u8(0)
                .u8(1)
                .u8(0)
                .u8(2)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0);
        w.u8(op(TX))
                .u8(0)
                .u8(0)
                .u8(9)
                .u16(0x4242)
                .u8(0)
                .u8(2)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0);
        w.u8(op(TX))
                .u8(0)
                .u8(0)
                .u8(5)
                .u8(0)
                .u8(2)
                .u8(0)
                .u8(0)
                .u8(3)
                .u8(0)
                .u8(2)
                .u8(9)
                .u8(7)
                .u8(0)
                .u8(0)
                .u8(0);
        w.u8(op(EVENT)).u8(1).u8(0).u8(0).u8(1).u8(0);
        w.u8(op(EVENT)).u8(0);
        s.put("hostile-headers-and-transport-reset", w.bytes());
        return s;
    }
}
