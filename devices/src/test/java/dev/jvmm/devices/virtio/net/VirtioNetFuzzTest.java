package dev.jvmm.devices.virtio.net;

import static dev.jvmm.devices.virtio.net.VirtioNet.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.devices.FuzzInput;
import dev.jvmm.devices.FuzzInput.Writer;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetCapabilities;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.VirtioNetHeader;
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
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Fuzzes virtio-net's transmit and receive paths (and its control queue, which changes what they do) with a hostile
 * driver and a backend that plays along: transmitted frames of any length with fuzzed virtio_net_hdr fields (offload
 * requests negotiated or not, offsets past the frame), split over descriptors, with stray device-writable buffers;
 * receive buffers of any size and layout, with or without mergeable buffers; frames of any length and destination
 * delivered by the backend; control commands (receive modes, MAC tables with lying counts, the MAC, queue pairs);
 * a backend that answers BUSY, the link going down; raw descriptors and available entries on any queue.
 *
 * <p>Checked, always: nothing but a {@link VirtqueueException} leaves processQueue and nothing at all leaves the
 * backend's deliver (a broken receive ring puts the device into DEVICE_NEEDS_RESET through {@code Context.fail});
 * the device is never reported broken; servicing a transmit or receive queue writes nothing but that queue's used
 * ring; every frame the backend gets has a length between a header plus an Ethernet header and the maximum, and a
 * header that asks only for what was negotiated (virtio 1.2, 5.1.6.2); the transmitted-frame counter counts them.
 * In contained mode ({@link FuzzGuest}) also: the transmit queue completes the chains made available in order, each
 * with used length 0, and holds one back only while the backend is busy; every frame sent is the readable bytes of a
 * chain it completed; delivering a frame writes only the writable buffers of available receive chains and the used
 * ring, uses one chain (without mergeable buffers) or as many as it fills, with lengths adding up to the frame and
 * each within its chain, and the bytes placed are the frame with num_buffers set; it fails the device only for a
 * broken ring or a buffer shorter than the header; a receive queue the backend waited on wakes it when the driver
 * posts buffers; control commands complete with used length 1 and an ack of OK or ERR, and write only their
 * device-writable buffers.
 *
 * <p>{@link #main} writes the seed inputs.
 */
class VirtioNetFuzzTest {
    static final long MAC = 0x525400123456L;
    static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VERSION_1);
    static final int MAX_OPS = 64;

    static final int TX = 0, RX_POST = 1, DELIVER = 2, CTRL = 3, RAW = 4, BACKEND = 5, LINK = 6;
    /** How an operation byte maps to operations, per target. */
    static final int[] TRANSMIT_OPS = {TX, TX, TX, TX, CTRL, RAW, BACKEND, BACKEND, LINK, RX_POST, DELIVER};

    static final int[] RECEIVE_OPS = {RX_POST, RX_POST, RX_POST, DELIVER, DELIVER, DELIVER, CTRL, RAW, LINK, TX};

    private static final FuzzGuest guest = new FuzzGuest();

    private FakeBackend backend;
    private VirtioNet net;
    private long features;
    private int queueSize, pairs, ctrlIndex, queueCount;
    private Ring[] rings;
    private Virtqueue[] queues;
    private FuzzGuest.Driver[] drivers;
    private String failed;
    /** Per pair: the transmit chain held back (BUSY) in contained mode. */
    private Chain[] held;
    /** Per pair: the backend's activation count when deliver last answered false, or -1. */
    private int[] waiting;

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
     * Input: configuration (u8: bit 0 wild mode, bit 1 checksum/segmentation offloads from the guest, bit 2 towards
     * it, bit 3 two queue pairs; u8: bits 0-1 queue size 4..32, bits 2-3 driver's queue size shift; u64 accepted
     * features), then operations (u8, mapped by {@link #TRANSMIT_OPS}) with their operands.
     */
    @FuzzTest(maxDuration = "30s")
    void transmit(byte[] input) {
        run(input, TRANSMIT_OPS);
    }

    /** As {@link #transmit}, with operations mapped by {@link #RECEIVE_OPS}. */
    @FuzzTest(maxDuration = "30s")
    void receive(byte[] input) {
        run(input, RECEIVE_OPS);
    }

    private void run(byte[] input, int[] ops) {
        FuzzInput in = new FuzzInput(input);
        int cfg = in.u8(), cfg2 = in.u8();
        guest.reset((cfg & 1) == 0);
        Set<NetOffload> all = EnumSet.allOf(NetOffload.class);
        NetCapabilities caps = new NetCapabilities(
                (cfg & 2) != 0 ? all : Set.of(), (cfg & 4) != 0 ? all : Set.of(), (cfg & 8) != 0 ? 2 : 1);
        queueSize = 4 << (cfg2 & 3);
        backend = new FakeBackend(caps);
        net = new VirtioNet(backend, new VirtioNet.Options(new MacAddress(MAC), queueSize, 16));
        features = net.deviceFeatures() & (in.u64() | VERSION_1);
        pairs = has(F_MQ) ? net.maxQueuePairs() : 1;
        ctrlIndex = has(F_CTRL_VQ) ? 2 * pairs : -1;
        queueCount = 2 * pairs + (ctrlIndex >= 0 ? 1 : 0);
        int driverSize = Math.max(1, queueSize >> ((cfg2 >>> 2) & 3));
        rings = new Ring[queueCount];
        for (int i = 0; i < queueCount; i++) rings[i] = FuzzGuest.ring(i, driverSize);
        activate();
        for (int op = 0; op < MAX_OPS && in.more(); op++) {
            switch (ops[in.u8() % ops.length]) {
                case TX -> transmitFrame(in);
                case RX_POST -> postReceiveBuffers(in);
                case DELIVER -> deliver(in);
                case CTRL -> control(in);
                case RAW -> raw(in);
                case BACKEND -> {
                    switch (in.u8() % 3) {
                        case 0 -> backend.busy = true;
                        case 1 -> backend.busy = false;
                        default -> {
                            backend.txReady(); // and the kick: the transport services every queue
                            for (int p = 0; p < pairs; p++) service(2 * p + 1);
                        }
                    }
                }
                default -> net.setLinkUp(in.bool());
            }
            if (failed != null) resetDevice();
        }
        net.reset();
    }

    private boolean has(int feature) {
        return (features & (1L << feature)) != 0;
    }

    private boolean indirect() {
        return VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
    }

    private void activate() {
        queues = new Virtqueue[queueCount];
        drivers = new FuzzGuest.Driver[queueCount];
        for (int i = 0; i < queueCount; i++) {
            queues[i] = FuzzGuest.queue(queueSize, rings[i]);
            queues[i].activate(guest.memory, features);
            drivers[i] = guest.new Driver(rings[i]);
        }
        failed = null;
        held = new Chain[pairs];
        waiting = new int[pairs];
        Arrays.fill(waiting, -1);
        net.activate(guest.memory, features, List.of(queues), context);
    }

    /** DEVICE_NEEDS_RESET: the driver resets the device and sets its queues up again. */
    private void resetDevice() {
        net.reset();
        for (int i = 0; i < queueCount; i++) {
            queues[i].reset();
            guest.memory.fill(rings[i].avail(), 6 + 2L * rings[i].size(), (byte) 0);
            guest.memory.fill(rings[i].used(), rings[i].usedBytes(), (byte) 0);
        }
        activate();
    }

    private boolean isTx(int i) {
        return i < 2 * pairs && (i & 1) == 1;
    }

    private boolean isRx(int i) {
        return i < 2 * pairs && (i & 1) == 0;
    }

    // ---- servicing a queue, as the transport does on a notification

    private void service(int i) {
        Virtqueue q = queues[i];
        if (!q.isActive() || q.isBroken() || failed != null) return;
        Pending pending = guest.contained() ? guest.pending(rings[i], q.nextAvail(), queueSize, indirect()) : null;
        int usedFrom = q.nextUsed();
        int[] sentBefore = new int[backend.sent.size()];
        for (int p = 0; p < sentBefore.length; p++)
            sentBefore[p] = backend.sent.get(p).size();
        long txFramesBefore = net.txFrames();
        int rxReadyBefore = backend.rxReadyCalls.get(), activations = backend.activations.size();
        boolean hadAvailable = q.hasAvailable();
        guest.snapshot();
        VirtqueueException refused = null;
        try {
            synchronized (q) {
                int rounds = 0;
                do {
                    q.disableNotification();
                    net.processQueue(i, q);
                    q.needsNotification();
                } while (++rounds < 64 && net.canProcess(i) && q.enableNotification());
            }
        } catch (VirtqueueException e) {
            refused = e;
        }
        int completed = (q.nextUsed() - usedFrom) & 0xffff;
        if (i == ctrlIndex) {
            if (pending != null) checkControl(pending, completed, refused, usedFrom);
        } else {
            long at = guest.changedOutside(List.of(rings[i].usedRange()));
            if (at >= 0) fail("servicing queue " + i + " wrote guest RAM at 0x" + Long.toHexString(at));
        }
        int newFrames = 0;
        for (int p = 0; p < backend.sent.size(); p++) {
            List<byte[]> s = backend.sent.get(p);
            for (int k = p < sentBefore.length ? sentBefore[p] : 0; k < s.size(); k++) {
                checkFrameSent(s.get(k));
                newFrames++;
            }
        }
        assertEquals(newFrames, net.txFrames() - txFramesBefore, "frames counted as sent");
        if (isTx(i) && pending != null) checkTransmit(i, pending, completed, refused, usedFrom, sentBefore);
        if (isRx(i)) {
            int pair = i / 2;
            if (waiting[pair] == activations && hadAvailable && backend.activations.size() == activations) {
                assertTrue(backend.rxReadyCalls.get() > rxReadyBefore, "the backend waiting for buffers is woken");
                waiting[pair] = -1;
            }
        }
        if (refused != null && failed == null) failed = refused.getMessage();
    }

    /** What the backend may be given (virtio 1.2, 5.1.6.2): an independent statement of the rules. */
    private void checkFrameSent(byte[] f) {
        String what = "a frame of " + f.length + " bytes with header " + Arrays.toString(Arrays.copyOf(f, HEADER));
        assertTrue(f.length >= HEADER + ETH_HEADER && f.length <= HEADER + MAX_FRAME, what + ": length");
        ByteBuffer h = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        int flags = f[0] & 0xff, gso = f[1] & 0xff;
        int ethLength = f.length - HEADER;
        assertTrue((flags & ~VirtioNetHeader.F_NEEDS_CSUM) == 0, what + ": flags");
        boolean csum = flags != 0;
        if (csum) {
            assertTrue(has(F_CSUM), what + ": NEEDS_CSUM without VIRTIO_NET_F_CSUM");
            int start = h.getShort(6) & 0xffff, offset = h.getShort(8) & 0xffff;
            assertTrue(start + offset + 2 <= ethLength, what + ": checksum field outside the frame");
        }
        int type = gso & ~VirtioNetHeader.GSO_ECN;
        boolean ecn = (gso & VirtioNetHeader.GSO_ECN) != 0;
        if (type == VirtioNetHeader.GSO_NONE) {
            assertTrue(!ecn, what + ": ECN without GSO");
            return;
        }
        int feature = switch (type) {
            case VirtioNetHeader.GSO_TCPV4 -> F_HOST_TSO4;
            case VirtioNetHeader.GSO_TCPV6 -> F_HOST_TSO6;
            case VirtioNetHeader.GSO_UDP_L4 -> F_HOST_USO;
            default -> -1;
        };
        assertTrue(feature >= 0 && has(feature), what + ": GSO type " + type + " not negotiated");
        assertTrue(!ecn || has(F_HOST_ECN), what + ": ECN not negotiated");
        assertTrue(csum, what + ": GSO without NEEDS_CSUM");
        assertTrue((h.getShort(4) & 0xffff) != 0, what + ": GSO with gso_size 0");
    }

    private boolean clobbersUsed(List<Chain> chains, Ring ring) {
        for (Chain c : chains)
            for (Buf b : c.bufs())
                if (b.len() > 0 && b.addr() < ring.used() + ring.usedBytes() && ring.used() < b.addr() + b.len())
                    return true;
        return false;
    }

    private void checkTransmit(
            int i, Pending pending, int completed, VirtqueueException refused, int usedFrom, int[] sentBefore) {
        int pair = i / 2;
        List<Chain> seq = new ArrayList<>();
        if (held[pair] != null) seq.add(held[pair]);
        seq.addAll(pending.chains());
        assertTrue(completed <= seq.size(), completed + " transmit chains completed of " + seq);
        if (refused != null)
            assertTrue(pending.refused() && completed == seq.size(), "transmit refused: " + refused.getMessage());
        else if (completed < seq.size()) {
            assertTrue(backend.busy || !net.canProcess(i), "transmit chains left although the backend is not busy");
            held[pair] = seq.get(completed);
        } else {
            assertTrue(!pending.refused(), "a chain breaking the ring's rules was not refused");
            held[pair] = null;
        }
        if (clobbersUsed(seq, rings[i])) return;
        // A chain held back while the driver made a whole ring more available: one service completes more chains
        // than the used ring has entries, and the later ones overwrite the first.
        for (int k = Math.max(0, completed - rings[i].size()); k < completed; k++) {
            int[] e = drivers[i].used(usedFrom + k);
            assertEquals(seq.get(k).head(), e[0], "used id");
            assertEquals(0, e[1], "used length of a transmit chain");
        }
        if (pair >= sentBefore.length) return;
        List<byte[]> sent = backend.sent.get(pair);
        int j = sentBefore[pair];
        for (int k = 0; k < completed && j < sent.size(); k++) {
            Chain c = seq.get(k);
            if (!c.writable().isEmpty()) continue;
            ByteArrayOutputStream frame = new ByteArrayOutputStream();
            for (Buf b : c.readable()) frame.writeBytes(guest.now(b.addr(), b.len()));
            if (Arrays.equals(frame.toByteArray(), sent.get(j))) j++;
        }
        assertEquals(sent.size(), j, "every frame sent is the readable bytes of a chain completed, in order");
    }

    private void checkControl(Pending pending, int completed, VirtqueueException refused, int usedFrom) {
        Ring ring = rings[ctrlIndex];
        long at = guest.changedOutside(pending.writableRanges(ring));
        if (at >= 0) fail("a control command wrote guest RAM at 0x" + Long.toHexString(at));
        List<Chain> chains = pending.chains();
        assertTrue(completed <= chains.size());
        if (refused == null) assertTrue(completed == chains.size() && !pending.refused(), "control queue");
        else if (refused.kind() == VirtqueueException.Kind.CHAIN_TOO_SHORT) {
            Chain c = chains.get(completed);
            assertTrue(c.readableLength() < 2 || c.writableLength() < 1, refused.getMessage());
        } else assertTrue(pending.refused() && completed == chains.size(), refused.getMessage());
        List<Chain> done = chains.subList(0, completed);
        if (clobbersUsed(done, ring)) return;
        List<long[]> ranges = new ArrayList<>();
        for (Chain c : done)
            for (Buf b : c.writable()) if (b.len() > 0) ranges.add(new long[] {b.addr(), b.addr() + b.len()});
        boolean overlap = FuzzGuest.overlapping(ranges);
        for (int k = 0; k < completed; k++) {
            int[] e = drivers[ctrlIndex].used(usedFrom + k);
            assertEquals(chains.get(k).head(), e[0], "used id");
            assertEquals(1, e[1], "used length of a control command");
            if (overlap) continue;
            Buf first = chains.get(k).writable().stream()
                    .filter(b -> b.len() > 0)
                    .findFirst()
                    .orElseThrow();
            int ack = guest.memory.readByte(first.addr());
            assertTrue(ack == CTRL_OK || ack == CTRL_ERR, "ack " + ack);
        }
    }

    // ---- what the driver and the backend do

    private long pickMac(FuzzInput in) {
        return switch (in.u8() % 7) {
            case 0, 1 -> MAC;
            case 2 -> net.mac().value();
            case 3 -> 0xffff_ffff_ffffL;
            case 4 -> 0x0100_5e00_0001L;
            case 5 -> 0x5254_00ab_cdefL;
            default -> in.u64() & 0xffff_ffff_ffffL;
        };
    }

    private static int pickEthLength(FuzzInput in) {
        return switch (in.u8() % 10) {
            case 0 -> 0;
            case 1 -> ETH_HEADER - 1;
            case 2 -> ETH_HEADER;
            case 3 -> 60;
            case 4 -> 1514;
            case 5 -> MAX_FRAME;
            case 6 -> MAX_FRAME + 1;
            case 7 -> in.u16();
            case 8 -> 9018;
            default -> 100 + in.u8();
        };
    }

    /** A virtio_net_hdr_v1 and an Ethernet frame, both fuzzed. */
    private byte[] frame(FuzzInput in, boolean fuzzHeader) {
        int ethLength = pickEthLength(in);
        byte[] f = FuzzGuest.patterned(HEADER + ethLength, ethLength);
        Arrays.fill(f, 0, HEADER, (byte) 0);
        long dst = pickMac(in);
        for (int i = 0; i < 6 && HEADER + i < f.length; i++) f[HEADER + i] = (byte) (dst >>> (40 - 8 * i));
        if (!fuzzHeader) return f;
        ByteBuffer h = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        int flags = in.u8() % 8;
        f[0] = (byte) (flags < 5 ? 0 : flags == 5 ? VirtioNetHeader.F_NEEDS_CSUM : flags == 6 ? 2 : in.u8());
        int gso = in.u8() % 10;
        f[1] = (byte)
                switch (gso) {
                    case 6 -> VirtioNetHeader.GSO_TCPV4;
                    case 7 -> VirtioNetHeader.GSO_TCPV6;
                    case 8 -> VirtioNetHeader.GSO_UDP_L4;
                    case 9 -> in.u8();
                    default -> VirtioNetHeader.GSO_NONE;
                };
        int k = in.u8();
        if ((k & 1) != 0) h.putShort(2, (short) in.u16()); // hdr_len
        if ((k & 2) != 0) h.putShort(4, (short) ((k & 4) != 0 ? 1448 : in.u16())); // gso_size
        if ((k & 8) != 0) {
            h.putShort(6, (short) ((k & 16) != 0 ? 34 : in.u16())); // csum_start
            h.putShort(8, (short) ((k & 32) != 0 ? 16 : in.u16())); // csum_offset
        }
        if ((k & 64) != 0) h.putShort(10, (short) in.u16()); // num_buffers
        return f;
    }

    /** The bytes as buffers: cut at fuzzed places, mostly fresh memory, sometimes fuzzed addresses. */
    private List<Buf> lay(FuzzInput in, byte[] bytes, boolean writable) {
        int cuts = in.u8() % 4;
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
                if (!writable && len > 0) guest.memory.write(addr, bytes, at[i], len);
            } else addr = guest.pickAddress(in);
            bufs.add(new Buf(addr, len, writable));
        }
        return bufs;
    }

    private void transmitFrame(FuzzInput in) {
        int pair = in.below(pairs), i = 2 * pair + 1;
        byte[] f = frame(in, true);
        int shape = in.u8();
        List<Buf> bufs = lay(in, f, false);
        if ((shape & 7) == 7) bufs.add(new Buf(guest.alloc(64), 64, true)); // a stray device-writable buffer
        drivers[i].publish(drivers[i].chain(bufs, indirect() && (shape & 8) != 0));
        service(i);
    }

    private long pickBufferSize(FuzzInput in) {
        return switch (in.u8() % 12) {
            case 0 -> 0;
            case 1 -> 1;
            case 2 -> HEADER - 1;
            case 3 -> HEADER;
            case 4 -> HEADER + 1;
            case 5 -> 60;
            case 6 -> HEADER + 1514;
            case 7 -> 1538;
            case 8 -> 4096;
            case 9 -> HEADER + MAX_FRAME;
            case 10 -> in.u16();
            default -> 100 + in.u8();
        };
    }

    private void postReceiveBuffers(FuzzInput in) {
        int pair = in.below(pairs), i = 2 * pair;
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

    private void deliver(FuzzInput in) {
        int pair = in.below(pairs), i = 2 * pair;
        byte[] f = frame(in, in.u8() % 8 == 0);
        if (pair >= backend.ports.size() || failed != null) return;
        Virtqueue rx = queues[i];
        Ring ring = rings[i];
        boolean mergeable = has(F_MRG_RXBUF), linkUp = net.linkUp();
        Pending pending = guest.contained() && rx.isActive() && !rx.isBroken()
                ? guest.pending(ring, rx.nextAvail(), queueSize, indirect())
                : null;
        int usedFrom = rx.nextUsed();
        long framesBefore = net.rxFrames();
        guest.snapshot();
        boolean taken = backend.deliver(pair, f);
        int used = (rx.nextUsed() - usedFrom) & 0xffff;
        long placed = net.rxFrames() - framesBefore;
        String what = "a frame of " + f.length + " bytes delivered";
        if (!taken) {
            waiting[pair] = backend.activations.size();
            assertEquals(0, placed, what);
        }
        if (placed == 0) assertEquals(0, used, what + ": used buffers without a frame placed");
        else {
            assertEquals(1, placed, what);
            assertTrue(linkUp, what + " while the link is down");
            assertTrue(f.length >= HEADER + ETH_HEADER && f.length <= HEADER + MAX_FRAME, what);
            assertTrue(used >= 1 && (mergeable || used == 1), what + " into " + used + " buffers");
        }
        if (pending == null) return;
        long at = guest.changedOutside(pending.writableRanges(ring));
        if (at >= 0)
            fail(what + " wrote guest RAM at 0x" + Long.toHexString(at) + ", outside the available receive buffers "
                    + pending.chains());
        List<Chain> chains = pending.chains();
        if (failed != null) {
            boolean short_ = false;
            for (Chain c : chains) short_ |= mergeable && c.writableLength() < HEADER;
            assertTrue(pending.refused() || short_, what + ": the device failed: " + failed);
            return;
        }
        if (!taken && !pending.refused() && chains.size() == ring.size())
            fail(what + ": the device waits for more receive buffers although the driver has made all " + ring.size()
                    + " entries of the ring available (the frame can never fit: it must be dropped)");
        if (placed == 0) return;
        assertTrue(used <= chains.size(), what + ": " + used + " used of " + chains);
        List<Chain> usedChains = chains.subList(0, used);
        if (clobbersUsed(usedChains, ring)) return;
        long total = 0;
        int[] lengths = new int[used];
        for (int k = 0; k < used; k++) {
            int[] e = drivers[i].used(usedFrom + k);
            Chain c = usedChains.get(k);
            assertEquals(c.head(), e[0], what + ": used id");
            lengths[k] = e[1];
            assertTrue(e[1] >= 0 && e[1] <= c.writableLength(), what + ": used length " + e[1] + " of " + c);
            total += e[1];
        }
        assertEquals(f.length, total, what + ": used lengths " + Arrays.toString(lengths));
        List<long[]> ranges = new ArrayList<>();
        for (Chain c : usedChains)
            for (Buf b : c.writable()) if (b.len() > 0) ranges.add(new long[] {b.addr(), b.addr() + b.len()});
        if (FuzzGuest.overlapping(ranges)) return;
        byte[] want = f.clone();
        want[VirtioNetHeader.OFF_NUM_BUFFERS] = (byte) used;
        want[VirtioNetHeader.OFF_NUM_BUFFERS + 1] = (byte) (used >>> 8);
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        for (int k = 0; k < used; k++) {
            long left = lengths[k];
            for (Buf b : usedChains.get(k).writable()) {
                long n = Math.min(left, b.len());
                got.writeBytes(guest.now(b.addr(), n));
                left -= n;
            }
        }
        assertArrayEquals(want, got.toByteArray(), what + ": the bytes placed");
    }

    private void control(FuzzInput in) {
        if (ctrlIndex < 0) return;
        int cls = switch (in.u8() % 5) {
            case 0 -> CTRL_RX;
            case 1, 2 -> CTRL_MAC;
            case 3 -> CTRL_MQ;
            default -> in.u8();
        };
        int cmd = in.u8() % 8 == 7 ? in.u8() : in.u8() % (cls == CTRL_RX ? 6 : 2);
        ByteBuffer d = ByteBuffer.allocate(2 + 8 + 6 * 140).order(ByteOrder.LITTLE_ENDIAN);
        d.put((byte) cls).put((byte) cmd);
        switch (in.u8() % 4) {
            case 0 -> d.put((byte) in.u8()); // a receive mode's on/off
            case 1 -> { // MAC tables
                for (int t = 0; t < 2; t++) {
                    int actual = in.u8() % 5 == 4 ? 65 : in.u8() % 4;
                    int count = in.u8() % 8 == 7 ? in.u32() : actual + (in.u8() % 4 == 3 ? 1 : 0);
                    d.putInt(count);
                    for (int k = 0; k < actual; k++) {
                        long m = pickMac(in);
                        for (int b = 0; b < 6; b++) d.put((byte) (m >>> (40 - 8 * b)));
                    }
                }
            }
            case 2 -> { // a MAC address, sometimes of a wrong length
                long m = pickMac(in);
                int n = in.u8() % 8 == 7 ? 5 + in.u8() % 3 : 6;
                for (int b = 0; b < n; b++) d.put((byte) (m >>> (40 - 8 * (b % 6))));
            }
            default -> { // queue pairs
                int v = in.u8() % 5;
                d.putShort((short) (v < 4 ? v : in.u16()));
            }
        }
        byte[] cmdBytes = Arrays.copyOf(d.array(), d.position());
        int ack = switch (in.u8() % 8) {
            case 6 -> 0;
            case 7 -> 2 + in.u8() % 4;
            default -> 1;
        };
        List<Buf> bufs = lay(in, cmdBytes, false);
        bufs.addAll(lay(in, new byte[ack], true));
        drivers[ctrlIndex].publish(drivers[ctrlIndex].chain(bufs, indirect() && in.bool()));
        service(ctrlIndex);
    }

    private void raw(FuzzInput in) {
        int i = in.below(queueCount);
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

    /** Writes {@link #seeds} into the Inputs folders under the given src/test/resources (default: the cwd's). */
    public static void main(String[] args) throws IOException {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        FuzzInput.writeSeeds(resources, VirtioNetFuzzTest.class, "transmit", seeds(true));
        FuzzInput.writeSeeds(resources, VirtioNetFuzzTest.class, "receive", seeds(false));
    }

    /** The operation byte that selects {@code op} in the target's table. */
    private static int op(int[] table, int op) {
        for (int i = 0; i < table.length; i++) if (table[i] == op) return i;
        throw new IllegalArgumentException("no op " + op);
    }

    /** Configuration {@code cfg}, queues of 8, these features. */
    static Writer nic(int cfg, long features) {
        return new Writer().u8(cfg).u8(1).u64(features);
    }

    /** A frame (length and destination choices) with an empty header, in one fresh buffer. */
    static Writer tx(Writer w, int[] ops, int length, int mac) {
        return w.u8(op(ops, TX))
                .u8(length)
                .u8(mac)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0);
    }

    /** Receive chains of one or more fresh buffers, each a size choice. */
    static Writer rxPost(Writer w, int[] ops, int[]... chains) {
        w.u8(op(ops, RX_POST)).u8(chains.length - 1);
        for (int[] c : chains) {
            w.u8(c.length - 1);
            for (int size : c) w.u8(size).u8(0);
        }
        return w;
    }

    /** The backend delivers a frame with an empty header (length and destination choices). */
    static Writer deliver(Writer w, int[] ops, int length, int mac) {
        return w.u8(op(ops, DELIVER)).u8(1).u8(length).u8(mac);
    }

    /** A control command: class choice, command, payload choice and its bytes; ack of one byte, fresh buffers. */
    static Writer ctrl(Writer w, int[] ops, int cls, int cmd, int payload, int... bytes) {
        w.u8(op(ops, CTRL)).u8(cls).u8(0).u8(cmd).u8(payload);
        for (int b : bytes) w.u8(b);
        return w.u8(0).u8(0).u8(0).u8(0).u8(0).u8(0);
    }

    static Map<String, byte[]> seeds(boolean transmit) {
        Map<String, byte[]> s = new LinkedHashMap<>();
        int[] ops = transmit ? TRANSMIT_OPS : RECEIVE_OPS;
        long all = -1L, single = ~(1L << F_MRG_RXBUF);
        if (transmit) {
            // Frames in one buffer; over three with a TSO request; too short with a stray writable buffer; indirect.
            Writer w = tx(nic(6, all), ops, 4, 0);
            w.u8(op(ops, TX))
                    .u8(4)
                    .u8(3)
                    .u8(5)
                    .u8(6)
                    .u8(62)
                    .u8(0)
                    .u8(2)
                    .u16(100)
                    .u16(800)
                    .u8(0)
                    .u8(0)
                    .u8(0);
            w.u8(op(ops, TX)).u8(1).u8(0).u8(0).u8(0).u8(0).u8(7).u8(0).u8(0);
            w.u8(op(ops, TX))
                    .u8(3)
                    .u8(0)
                    .u8(0)
                    .u8(0)
                    .u8(0)
                    .u8(8)
                    .u8(1)
                    .u8(12)
                    .u8(0)
                    .u8(0);
            s.put("frames-in-one-and-several-buffers", w.bytes());
            // A busy backend parks the queue; txReady resumes it in order.
            w = nic(6, all).u8(op(ops, BACKEND)).u8(0);
            tx(tx(w, ops, 4, 0), ops, 3, 3).u8(op(ops, BACKEND)).u8(2);
            s.put("busy-backend-parks-then-resumes", w.bytes());
            // Checksum and segmentation requests the backend cannot honour (none negotiated): dropped.
            w = nic(0, all);
            w.u8(op(ops, TX)).u8(4).u8(0).u8(5).u8(6).u8(62).u8(0).u8(0).u8(0);
            w.u8(op(ops, TX)).u8(4).u8(0).u8(0).u8(9).u8(3).u8(0).u8(0).u8(0).u8(0);
            s.put("offloads-not-negotiated", w.bytes());
            // Control commands: promiscuous off, MAC tables, a new MAC, queue pairs (not negotiated), no ack byte.
            w = nic(6, all);
            ctrl(w, ops, 0, 0, 0, 0);
            ctrl(w, ops, 1, 0, 1, 0, 2, 0, 0, 5, 4, 0, 1, 0, 0, 4);
            ctrl(w, ops, 1, 1, 2, 5, 0);
            ctrl(w, ops, 3, 0, 3, 1);
            w.u8(op(ops, CTRL))
                    .u8(0)
                    .u8(0)
                    .u8(0)
                    .u8(0)
                    .u8(1)
                    .u8(6)
                    .u8(0)
                    .u8(0)
                    .u8(0)
                    .u8(0)
                    .u8(0);
            tx(w, ops, 4, 0);
            s.put("control-commands", w.bytes());
            // Two queue pairs: enabled by the control queue, a frame on the second.
            w = nic(14, all);
            ctrl(w, ops, 3, 0, 3, 2);
            w.u8(op(ops, TX)).u8(1).u8(4).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0);
            s.put("two-queue-pairs", w.bytes());
            // The link goes down (frames dropped) and up again.
            w = nic(6, all).u8(op(ops, LINK)).u8(0);
            tx(tx(w, ops, 4, 0).u8(op(ops, LINK)).u8(1), ops, 4, 0);
            s.put("link-down-and-up", w.bytes());
        } else {
            int header = 3, mtu = 6, page = 8, small = 5, tooShort = 2, tiny = 4;
            // Mergeable buffers: a frame in one; a 9018-byte one waits for buffers, wakes the backend when posted.
            Writer w = rxPost(nic(6, all), ops, new int[] {mtu}, new int[] {mtu}, new int[] {mtu}, new int[] {mtu});
            deliver(deliver(w, ops, 4, 0), ops, 8, 3);
            rxPost(w, ops, new int[] {page}, new int[] {page}, new int[] {page}, new int[] {page});
            deliver(w, ops, 8, 3);
            s.put("mergeable-buffers", w.bytes());
            // One chain per frame: a header buffer and a data buffer; a chain too small drops the frame.
            w = rxPost(nic(6, single), ops, new int[] {header, mtu}, new int[] {small});
            deliver(deliver(w, ops, 4, 0), ops, 4, 0);
            s.put("one-chain-per-frame", w.bytes());
            // Promiscuous mode off: a frame for another address is filtered, ours and broadcast pass.
            w = ctrl(nic(6, all), ops, 0, 0, 0, 0);
            rxPost(w, ops, new int[] {mtu}, new int[] {mtu}, new int[] {mtu});
            deliver(deliver(deliver(w, ops, 4, 5), ops, 4, 0), ops, 4, 3);
            s.put("receive-filter", w.bytes());
            // A mergeable buffer shorter than the header: the device fails; after the reset it works.
            w = rxPost(nic(6, all), ops, new int[] {tooShort});
            deliver(w, ops, 4, 0);
            deliver(rxPost(w, ops, new int[] {mtu}), ops, 3, 0);
            s.put("buffer-shorter-than-the-header", w.bytes());
            // The link down: frames dropped, buffers kept.
            w = rxPost(nic(6, all).u8(op(ops, LINK)).u8(0), ops, new int[] {mtu});
            deliver(w, ops, 4, 0).u8(op(ops, LINK)).u8(1);
            s.put("link-down", deliver(w, ops, 4, 0).bytes());
            // A queue of 16 the driver sets up with 8 entries, all posted, 13 bytes each: a 1514-byte frame can never
            // fit and must be dropped, not waited for (the device once stalled here, bounding by its maximum).
            w = new Writer().u8(6).u8(2 | 1 << 2).u64(all);
            int[][] eight = new int[8][];
            Arrays.fill(eight, new int[] {tiny});
            rxPost(w, ops, Arrays.copyOf(eight, 4));
            rxPost(w, ops, Arrays.copyOf(eight, 4));
            deliver(deliver(w, ops, 4, 0), ops, 3, 0); // then a 60-byte frame fits in six of them
            s.put("frame-beyond-a-ring-smaller-than-the-maximum", w.bytes());
        }
        return s;
    }
}
