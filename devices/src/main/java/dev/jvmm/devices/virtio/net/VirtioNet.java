package dev.jvmm.devices.virtio.net;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.net.NetCapabilities;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.devices.net.VirtioNetHeader;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.virtio.DescriptorChain;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.VirtqueueException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-net (virtio 1.2, 5.1) over a {@link NetBackend}: MAC address and link status in configuration space,
 * mergeable receive buffers, checksum and segmentation offloads as far as the backend honours them, a control
 * queue (receive modes, MAC filter tables, the MAC address, the number of queue pairs) and several queue pairs
 * where the backend has them.
 *
 * <p>Threads: transmit and control queues are served on the transport's I/O thread; receive queues are filled on
 * the backend's thread, in {@link GuestPort#deliver}, holding the receive queue's monitor (the transport holds it
 * too while it services the queue). A guest without receive buffers makes deliver answer false, and the backend
 * stops reading until the guest posts some: nothing is buffered here. A full backend (transmit answered BUSY)
 * parks the transmit queue until the backend says it has room again.
 *
 * <p>The guest is not trusted: a transmitted frame that is too short, too long, or whose header asks for what
 * was not negotiated is dropped and counted, and its buffer completed, so the queue keeps moving. A broken ring
 * (a loop, a buffer outside RAM, a receive buffer shorter than the header) puts the device into
 * DEVICE_NEEDS_RESET.
 */
public final class VirtioNet implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioNet.class);

    public static final int F_CSUM = 0,
            F_GUEST_CSUM = 1,
            F_MAC = 5,
            F_GUEST_TSO4 = 7,
            F_GUEST_TSO6 = 8,
            F_GUEST_ECN = 9,
            F_HOST_TSO4 = 11,
            F_HOST_TSO6 = 12,
            F_HOST_ECN = 13,
            F_MRG_RXBUF = 15,
            F_STATUS = 16,
            F_CTRL_VQ = 17,
            F_CTRL_RX = 18,
            F_CTRL_RX_EXTRA = 20,
            F_MQ = 22,
            F_CTRL_MAC_ADDR = 23,
            F_GUEST_USO4 = 54,
            F_GUEST_USO6 = 55,
            F_HOST_USO = 56;
    public static final int S_LINK_UP = 1;
    public static final int CTRL_RX = 0, CTRL_MAC = 1, CTRL_MQ = 4;
    public static final int CTRL_RX_PROMISC = 0,
            CTRL_RX_ALLMULTI = 1,
            CTRL_RX_ALLUNI = 2,
            CTRL_RX_NOMULTI = 3,
            CTRL_RX_NOUNI = 4,
            CTRL_RX_NOBCAST = 5;
    public static final int CTRL_MAC_TABLE_SET = 0, CTRL_MAC_ADDR_SET = 1, CTRL_MQ_VQ_PAIRS_SET = 0;
    public static final int CTRL_OK = 0, CTRL_ERR = 1;
    /** mac[6], status u16, max_virtqueue_pairs u16. */
    public static final int CONFIG_SIZE = 10;
    /** With VIRTIO_F_VERSION_1 every frame carries struct virtio_net_hdr_v1, with or without MRG_RXBUF. */
    public static final int HEADER = VirtioNetHeader.LENGTH_V1;

    static final int ETH_HEADER = 14;
    /** The largest frame either way: a 64 KiB IP packet (a GSO frame) behind an Ethernet header and a VLAN tag. */
    public static final int MAX_FRAME = 65535 + ETH_HEADER + 4;
    /** The most pairs offered, whatever the backend has. */
    public static final int MAX_QUEUE_PAIRS = 16;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * How the NIC looks to the guest.
     *
     * @param mac           its address (config space, VIRTIO_NET_F_MAC)
     * @param queueSize     entries per queue, a power of two
     * @param maxQueuePairs pairs offered at most (VIRTIO_NET_F_MQ when the backend has more than one too)
     * @param rxLimit       frames (ops) and bytes (bandwidth) towards the guest, as Firecracker's rx_rate_limiter
     * @param txLimit       frames and bytes from the guest, as Firecracker's tx_rate_limiter
     */
    public record Options(
            MacAddress mac, int queueSize, int maxQueuePairs, RateLimiter.Config rxLimit, RateLimiter.Config txLimit) {
        public Options {
            if (mac.isMulticast() || mac.value() == 0)
                throw new IllegalArgumentException("MAC address " + mac + " is multicast or zero");
            if (queueSize < 4 || queueSize > Virtqueue.MAX_SIZE || Integer.bitCount(queueSize) != 1)
                throw new IllegalArgumentException(
                        "virtio-net queue size " + queueSize + " must be a power of two from 4 to 32768");
            if (maxQueuePairs < 1 || maxQueuePairs > MAX_QUEUE_PAIRS)
                throw new IllegalArgumentException(
                        "virtio-net queue pairs " + maxQueuePairs + " must be 1 to " + MAX_QUEUE_PAIRS);
            if (rxLimit == null) rxLimit = RateLimiter.Config.UNLIMITED;
            if (txLimit == null) txLimit = RateLimiter.Config.UNLIMITED;
        }

        /** Without rate limits. */
        public Options(MacAddress mac, int queueSize, int maxQueuePairs) {
            this(mac, queueSize, maxQueuePairs, RateLimiter.Config.UNLIMITED, RateLimiter.Config.UNLIMITED);
        }

        /**
         * 1024 entries a queue (QEMU's largest rx_queue_size): a Linux driver posts as many receive buffers as the
         * device offers, about 4 KiB each with mergeable buffers, and 256 of them (1 MiB) are drained several
         * hundred times a second by one TCP stream, each time a round trip through the guest and the device's
         * threads; 4 MiB keeps the backend sending while the guest works through what it has.
         */
        public static Options of(MacAddress mac) {
            return new Options(mac, 1024, MAX_QUEUE_PAIRS);
        }

        public Options withRateLimits(RateLimiter.Config rx, RateLimiter.Config tx) {
            return new Options(mac, queueSize, maxQueuePairs, rx, tx);
        }
    }

    private final NetBackend backend;
    private final Options options;
    private final int maxPairs;
    private final long features;
    private volatile long mac;
    private volatile boolean linkUp = true;
    private volatile Active active;
    /** A snapshot is being taken: frames from the backend wait (see {@link #quiesce}). */
    private volatile boolean held;
    /** Null when unlimited; shared by the queue pairs, as Firecracker's are per interface. */
    private final RateLimiter rxLimiter, txLimiter;

    private final LongAdder txFrames = new LongAdder(), txDropped = new LongAdder(), txMalformed = new LongAdder();
    private final LongAdder rxFrames = new LongAdder(), rxDropped = new LongAdder(), rxFiltered = new LongAdder();
    private final LongAdder txBytes = new LongAdder(), rxBytes = new LongAdder();

    /** Frames the receive and transmit limiters held back (each waited for tokens); 0 without limiters. */
    public long rxThrottled() {
        return rxLimiter == null ? 0 : rxLimiter.throttledCount();
    }

    public long txThrottled() {
        return txLimiter == null ? 0 : txLimiter.throttledCount();
    }

    public VirtioNet(NetBackend backend, Options options) {
        this.backend = backend;
        this.options = options;
        this.rxLimiter = RateLimiter.of(options.rxLimit());
        this.txLimiter = RateLimiter.of(options.txLimit());
        this.mac = options.mac().value();
        NetCapabilities caps = backend.capabilities();
        this.maxPairs = Math.min(caps.maxQueuePairs(), options.maxQueuePairs());
        this.features = features(caps, maxPairs);
    }

    /** The features offered: the fixed ones, plus offloads only where the backend honours them. */
    static long features(NetCapabilities caps, int maxPairs) {
        long f = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
                | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX)
                | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC)
                | bit(F_MAC)
                | bit(F_STATUS)
                | bit(F_MRG_RXBUF)
                | bit(F_CTRL_VQ)
                | bit(F_CTRL_RX)
                | bit(F_CTRL_RX_EXTRA)
                | bit(F_CTRL_MAC_ADDR);
        Set<NetOffload> in = caps.fromGuest(), out = caps.toGuest();
        // Every segmentation offload rests on partial checksums (the spec's feature dependencies).
        if (in.contains(NetOffload.CSUM)) {
            f |= bit(F_CSUM);
            if (in.contains(NetOffload.TSO4)) f |= bit(F_HOST_TSO4);
            if (in.contains(NetOffload.TSO6)) f |= bit(F_HOST_TSO6);
            if (in.contains(NetOffload.TSO_ECN) && (f & (bit(F_HOST_TSO4) | bit(F_HOST_TSO6))) != 0)
                f |= bit(F_HOST_ECN);
            if (in.contains(NetOffload.USO)) f |= bit(F_HOST_USO);
        }
        if (out.contains(NetOffload.CSUM)) {
            f |= bit(F_GUEST_CSUM);
            if (out.contains(NetOffload.TSO4)) f |= bit(F_GUEST_TSO4);
            if (out.contains(NetOffload.TSO6)) f |= bit(F_GUEST_TSO6);
            if (out.contains(NetOffload.TSO_ECN) && (f & (bit(F_GUEST_TSO4) | bit(F_GUEST_TSO6))) != 0)
                f |= bit(F_GUEST_ECN);
            if (out.contains(NetOffload.USO)) f |= bit(F_GUEST_USO4) | bit(F_GUEST_USO6);
        }
        if (maxPairs > 1) f |= bit(F_MQ);
        return f;
    }

    /** The offloads the backend may use towards the guest: what the guest accepted, with its dependencies. */
    static Set<NetOffload> toGuest(long negotiated) {
        EnumSet<NetOffload> s = EnumSet.noneOf(NetOffload.class);
        if (!has(negotiated, F_GUEST_CSUM)) return s;
        s.add(NetOffload.CSUM);
        if (has(negotiated, F_GUEST_TSO4)) s.add(NetOffload.TSO4);
        if (has(negotiated, F_GUEST_TSO6)) s.add(NetOffload.TSO6);
        if (has(negotiated, F_GUEST_ECN) && (s.contains(NetOffload.TSO4) || s.contains(NetOffload.TSO6)))
            s.add(NetOffload.TSO_ECN);
        if (has(negotiated, F_GUEST_USO4) && has(negotiated, F_GUEST_USO6)) s.add(NetOffload.USO);
        return s;
    }

    static long bit(int f) {
        return 1L << f;
    }

    static boolean has(long features, int f) {
        return (features & (1L << f)) != 0;
    }

    public NetBackend backend() {
        return backend;
    }

    public MacAddress mac() {
        return new MacAddress(mac);
    }

    /** Queue pairs the device offers (1 without VIRTIO_NET_F_MQ). */
    public int maxQueuePairs() {
        return maxPairs;
    }

    /** Frames the guest sent that the backend took. */
    public long txFrames() {
        return txFrames.sum();
    }

    /** Bytes of the Ethernet frames counted by {@link #txFrames()} (without virtio-net's header). */
    public long txBytes() {
        return txBytes.sum();
    }

    /** Frames the guest sent that were dropped: malformed here, or refused by the backend. */
    public long txDropped() {
        return txDropped.sum() + txMalformed.sum();
    }

    /** Of {@link #txDropped()}, those this device found malformed (length, header, buffer layout). */
    public long txMalformed() {
        return txMalformed.sum();
    }

    /** Frames placed in the guest's receive buffers. */
    public long rxFrames() {
        return rxFrames.sum();
    }

    /** Bytes of the Ethernet frames counted by {@link #rxFrames()} (without virtio-net's header). */
    public long rxBytes() {
        return rxBytes.sum();
    }

    /** Frames for the guest that could not be placed (too big for its buffers, link down). */
    public long rxDropped() {
        return rxDropped.sum();
    }

    /** Frames for the guest left out by its receive filter (CTRL_RX modes and MAC tables). */
    public long rxFiltered() {
        return rxFiltered.sum();
    }

    /** Sets the link status the guest sees (VIRTIO_NET_F_STATUS) and tells it. While down, no frame passes. */
    public void setLinkUp(boolean up) {
        if (linkUp == up) return;
        linkUp = up;
        Active a = active;
        if (a != null) a.context.configChanged();
    }

    public boolean linkUp() {
        return linkUp;
    }

    /** Queue pairs in use now (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); 0 when not active. */
    public int queuePairsInUse() {
        Active a = active;
        return a == null ? 0 : a.pairsInUse;
    }

    @Override
    public int deviceType() {
        return TYPE_NET;
    }

    @Override
    public long deviceFeatures() {
        return features;
    }

    @Override
    public int[] queueMaxSizes() {
        // receiveq1, transmitq1, ... receiveqN, transmitqN, controlq (at index 2 when MQ is not negotiated).
        return VirtioDevice.queuesOfSize(2 * maxPairs + 1, options.queueSize());
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public long readConfig(int offset, int size) {
        return VirtioDevice.littleEndian(offset, size, this::configByte);
    }

    private int configByte(int offset) {
        if (offset < 6) return (int) (mac >>> (40 - 8 * offset)) & 0xff;
        return switch (offset) {
            case 6 -> linkUp ? S_LINK_UP : 0;
            case 8 -> maxPairs & 0xff;
            case 9 -> maxPairs >>> 8;
            default -> 0;
        };
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // Read-only for a VERSION_1 driver: the MAC changes through VIRTIO_NET_CTRL_MAC_ADDR_SET.
    }

    // ---- lifecycle ----

    /** What exists while the driver has the device: queues, their roles, per-queue state, the backend's queues. */
    private final class Active {
        final GuestMemory memory;
        final long negotiated;
        final Context context;
        final List<Virtqueue> queues;
        final boolean mergeable;
        final int pairs; // queue pairs the layout has: maxPairs with MQ negotiated, else 1
        final int controlIndex; // -1 without a negotiated control queue
        final NetLinkConfig link;
        final TxState[] tx;
        final DescriptorChain controlChain;
        final MemorySegment controlScratch = MemorySegment.ofArray(new byte[8]);
        volatile RxFilter filter;
        volatile int pairsInUse;
        volatile Port[] ports = new Port[0];
        volatile List<NetQueue> netQueues = List.of();

        Active(GuestMemory memory, long negotiated, List<Virtqueue> queues, Context context) {
            this.memory = memory;
            this.negotiated = negotiated;
            this.context = context;
            this.queues = queues;
            this.mergeable = has(negotiated, F_MRG_RXBUF);
            this.pairs = has(negotiated, F_MQ) ? maxPairs : 1;
            this.controlIndex = has(negotiated, F_CTRL_VQ) ? 2 * pairs : -1;
            this.link = new NetLinkConfig(HEADER, toGuest(negotiated));
            this.tx = new TxState[pairs];
            for (int i = 0; i < pairs; i++)
                tx[i] = new TxState(queues.get(2 * i + 1).maxSize());
            this.controlChain = controlIndex >= 0
                    ? new DescriptorChain(queues.get(controlIndex).maxSize())
                    : null;
            this.filter = RxFilter.DEFAULT;
        }
    }

    @Override
    public void activate(GuestMemory memory, long negotiatedFeatures, List<Virtqueue> queues, Context context) {
        Active a = new Active(memory, negotiatedFeatures, queues, context);
        active = a;
        startBackend(a, 1); // multiqueue is off until the driver sends VQ_PAIRS_SET
    }

    /** (Re)starts the backend with {@code pairs} queue pairs; frames in flight in the backend are dropped. */
    private void startBackend(Active a, int pairs) {
        backend.deactivate();
        Port[] ports = new Port[pairs];
        for (int i = 0; i < pairs; i++) ports[i] = new Port(a, i, a.queues.get(2 * i));
        a.ports = ports;
        a.pairsInUse = pairs;
        List<NetQueue> q = backend.activate(a.link, List.of(ports));
        if (q.size() != pairs)
            throw new IllegalStateException("backend gave " + q.size() + " queues for " + pairs + " pairs");
        a.netQueues = q;
        // Transmit queues parked on the old backend queues retry on the new ones.
        for (TxState t : a.tx) t.readyEpoch.incrementAndGet();
        a.context.kick();
    }

    @Override
    public void reset() {
        Active a = active;
        active = null;
        if (a != null) {
            for (Port p : a.ports) p.stopped = true;
            backend.deactivate();
        }
        mac = options.mac().value();
    }

    // ---- queues ----

    @Override
    public void processQueue(int index, Virtqueue queue) {
        Active a = active;
        if (a == null) return;
        if (index == a.controlIndex) {
            processControl(a, queue);
        } else if (index < 2 * a.pairs) {
            int pair = index / 2;
            if ((index & 1) == 1) processTx(a, pair, queue);
            else {
                Port[] ports = a.ports;
                if (pair < ports.length) ports[pair].guestPostedBuffers(queue);
            }
        }
        // Any other queue is not part of the negotiated layout: left alone.
    }

    @Override
    public boolean wantsService(int index) {
        Active a = active;
        if (a == null || index >= 2 * a.pairs || (index & 1) == 1) return true;
        Port[] ports = a.ports;
        return index / 2 >= ports.length || ports[index / 2].wanted;
    }

    @Override
    public boolean canProcess(int index) {
        Active a = active;
        if (a == null || index >= 2 * a.pairs) return true;
        // Receive queues are filled as frames arrive; deliver() asks for notifications when it runs out.
        if ((index & 1) == 0) return false;
        return !a.tx[index / 2].parked();
    }

    /** A transmit queue's state: the chain being sent, and a frame the backend refused with BUSY. */
    private static final class TxState {
        final DescriptorChain chain;
        /** Frames spread over several buffers are gathered here (the backend wants one contiguous frame). */
        final MemorySegment staging = Arena.ofAuto().allocate(HEADER + MAX_FRAME, 64);
        /** Bumped by the backend's txReady; a parked queue waits for it to move past {@link #parkedAt}. */
        final AtomicInteger readyEpoch = new AtomicInteger();

        volatile int parkedAt;
        /** The chain in {@link #chain} was popped but not sent (BUSY). I/O thread only. */
        boolean held;

        TxState(int size) {
            chain = new DescriptorChain(size);
        }

        boolean parked() {
            return held && readyEpoch.get() == parkedAt;
        }
    }

    private void processTx(Active a, int pair, Virtqueue q) {
        TxState st = a.tx[pair];
        if (st.parked()) return;
        boolean inUse = pair < a.pairsInUse;
        NetQueue nq = inUse ? a.netQueues.get(pair) : null;
        int done = 0;
        while (done < q.size()) { // a ring's worth per call: the transport comes back for more
            if (!st.held && !q.pop(st.chain)) break;
            st.held = false;
            MemorySegment frame = gather(a, st);
            if (frame == null) {
                txMalformed.increment();
            } else if (nq == null || !linkUp) {
                txDropped.increment(); // a queue the driver did not enable with VQ_PAIRS_SET, or the link is down
            } else if (txLimiter != null && !txLimiter.tryConsume(frame.byteSize() - HEADER)) {
                // Held as for BUSY, until the limiter's wake-up moves the epoch on.
                st.parkedAt = st.readyEpoch.get();
                st.held = true;
                txLimiter.wakeAfterRefill(frame.byteSize() - HEADER, () -> {
                    st.readyEpoch.incrementAndGet();
                    a.context.kick();
                });
                break;
            } else {
                int epoch = st.readyEpoch.get();
                TxResult r = nq.transmit(frame);
                if (r == TxResult.BUSY) {
                    st.parkedAt = epoch;
                    st.held = true;
                    break;
                }
                if (r == TxResult.SENT) {
                    txFrames.increment();
                    txBytes.add(frame.byteSize() - HEADER);
                } else txDropped.increment();
            }
            q.putUsed(st.chain.head(), 0);
            if (++done % 64 == 0) q.publishUsed(); // let the driver reclaim buffers during a long burst
        }
        if (done % 64 != 0) q.publishUsed();
    }

    /** The frame of the chain, checked; null if malformed. A single buffer is passed as a view of guest memory. */
    private MemorySegment gather(Active a, TxState st) {
        DescriptorChain c = st.chain;
        long len = c.readableLength();
        if (c.writableCount() != 0 || len < HEADER + ETH_HEADER || len > HEADER + MAX_FRAME) return null;
        MemorySegment frame;
        if (c.readableCount() == 1) {
            frame = c.readable(0);
        } else {
            c.readFrom(0, st.staging, 0, len);
            frame = st.staging.asSlice(0, len);
        }
        return validHeader(frame, len - HEADER, a.negotiated) ? frame : null;
    }

    /** Whether the guest's virtio_net_hdr asks only for what was negotiated, with offsets inside the frame. */
    static boolean validHeader(MemorySegment frame, long ethLength, long negotiated) {
        int flags = VirtioNetHeader.flags(frame);
        int gso = VirtioNetHeader.gsoType(frame);
        if ((flags & ~VirtioNetHeader.F_NEEDS_CSUM) != 0) return false; // DATA_VALID and RSC_INFO are rx-only
        boolean needsCsum = flags != 0;
        if (needsCsum) {
            if (!has(negotiated, F_CSUM)) return false;
            long start = VirtioNetHeader.u16(frame, VirtioNetHeader.OFF_CSUM_START);
            long offset = VirtioNetHeader.u16(frame, VirtioNetHeader.OFF_CSUM_OFFSET);
            if (start + offset + 2 > ethLength) return false;
        }
        boolean ecn = (gso & VirtioNetHeader.GSO_ECN) != 0;
        int type = gso & ~VirtioNetHeader.GSO_ECN;
        if (type == VirtioNetHeader.GSO_NONE) return !ecn;
        boolean allowed = switch (type) {
            case VirtioNetHeader.GSO_TCPV4 -> has(negotiated, F_HOST_TSO4);
            case VirtioNetHeader.GSO_TCPV6 -> has(negotiated, F_HOST_TSO6);
            case VirtioNetHeader.GSO_UDP_L4 -> has(negotiated, F_HOST_USO);
            default -> false; // GSO_UDP (UFO) is never offered
        };
        if (!allowed || (ecn && !has(negotiated, F_HOST_ECN))) return false;
        // hdr_len is a hint (no GUEST_HDRLEN), but never one that points past the frame.
        if (VirtioNetHeader.u16(frame, VirtioNetHeader.OFF_HDR_LEN) > ethLength) return false;
        return needsCsum && VirtioNetHeader.u16(frame, VirtioNetHeader.OFF_GSO_SIZE) != 0;
    }

    /** One queue pair as the backend sees it: frames arrive through {@link #deliver} on the backend's thread. */
    private final class Port implements GuestPort {
        final Active a;
        final int pair;
        final int rxIndex;
        final Virtqueue rx;
        final DescriptorChain first, next;
        final int[] heads;
        final int[] lengths;
        final MemorySegment numBuffers = MemorySegment.ofArray(new byte[2]);
        /** A whole frame as the one part of {@link #deliver(MemorySegment[], int)}. Guarded by rx's monitor. */
        final MemorySegment[] one = new MemorySegment[1];
        /**
         * deliver answered false: the backend waits for rxReady. Written under rx's monitor; read without it by
         * {@link #wantsService}, so a notification finds the queue's lock free unless the backend waits.
         */
        volatile boolean wanted;

        volatile boolean stopped;
        /** Frames were used without an interrupt ({@link #deliverHeld}). Guarded by rx's monitor. */
        private boolean interruptHeld;
        /** Whether the frame being delivered holds its interrupt back. Guarded by rx's monitor. */
        private boolean hold;

        Port(Active a, int pair, Virtqueue rx) {
            this.a = a;
            this.pair = pair;
            this.rxIndex = 2 * pair;
            this.rx = rx;
            this.first = new DescriptorChain(rx.maxSize());
            this.next = new DescriptorChain(rx.maxSize());
            this.heads = new int[rx.maxSize()];
            this.lengths = new int[rx.maxSize()];
        }

        @Override
        public boolean deliver(MemorySegment frame) {
            synchronized (rx) {
                one[0] = frame;
                try {
                    return deliver(one, 1);
                } finally {
                    one[0] = null;
                }
            }
        }

        @Override
        public boolean deliver(MemorySegment[] parts, int count) {
            synchronized (rx) {
                hold = false;
                return deliverLocked(parts, count);
            }
        }

        @Override
        public boolean deliverHeld(MemorySegment[] parts, int count) {
            synchronized (rx) {
                hold = true;
                boolean taken = deliverLocked(parts, count);
                if (!taken) interruptGuestLocked(); // the guest has to empty its buffers before it can post more
                return taken;
            }
        }

        @Override
        public void interruptGuest() {
            synchronized (rx) {
                interruptGuestLocked();
            }
        }

        private void interruptGuestLocked() {
            if (!interruptHeld) return;
            interruptHeld = false;
            if (!stopped) a.context.signalUsed(rxIndex);
        }

        /** A frame was put in the used ring: the guest hears of it now, or at {@link #interruptGuest}. */
        private void signal() {
            if (hold) {
                interruptHeld = true;
            } else {
                interruptHeld = false; // this interrupt covers the held frames too
                a.context.signalUsed(rxIndex);
            }
        }

        private boolean deliverLocked(MemorySegment[] parts, int count) {
            if (stopped || held || !rx.isActive() || rx.isBroken()) {
                wanted = true;
                return false;
            }
            long len = 0;
            for (int i = 0; i < count; i++) len += parts[i].byteSize();
            if (len < HEADER + ETH_HEADER
                    || len > HEADER + MAX_FRAME
                    || parts[0].byteSize() < HEADER + ETH_HEADER
                    || !linkUp) {
                rxDropped.increment();
                return true;
            }
            if (!a.filter.accepts(RxFilter.destination(parts[0], HEADER), mac)) {
                rxFiltered.increment();
                return true;
            }
            if (rxLimiter != null && !rxLimiter.tryConsume(len - HEADER)) {
                // The backend keeps the frame (and stops reading its side) until the buckets refill.
                wanted = true;
                rxLimiter.wakeAfterRefill(len - HEADER, this::limiterRefilled);
                return false;
            }
            try {
                return a.mergeable ? deliverMerged(parts, count, (int) len) : deliverSingle(parts, count, (int) len);
            } catch (VirtqueueException e) {
                a.context.fail("receive queue " + rxIndex + ": " + e.getMessage());
                wanted = true;
                return false;
            }
        }

        /**
         * Pops the next chain; when there is none, asks the driver to notify and looks once more. {@link #wanted} is
         * set before notifications are enabled, so the notification that follows finds it set; and notifications are
         * off again whenever the backend goes on.
         */
        private boolean popOrWait(DescriptorChain chain) {
            if (rx.pop(chain)) return true;
            wanted = true;
            if (rx.enableNotification() && rx.pop(chain)) {
                rx.disableNotification();
                wanted = false;
                return true;
            }
            return false;
        }

        /** Copies {@code n} bytes of the frame in {@code parts}, from {@code from} on, to {@code c} at {@code at}. */
        private static void copy(MemorySegment[] parts, int count, long from, DescriptorChain c, long at, long n) {
            for (int i = 0; i < count && n > 0; i++) {
                long size = parts[i].byteSize();
                if (from >= size) {
                    from -= size;
                    continue;
                }
                long k = Math.min(size - from, n);
                c.writeTo(at, parts[i], from, k);
                at += k;
                n -= k;
                from = 0;
            }
        }

        private boolean deliverSingle(MemorySegment[] parts, int count, int len) {
            if (!popOrWait(first)) {
                wanted = true;
                return false;
            }
            if (first.writableLength() < len) {
                // Without MRG_RXBUF a frame must fit one chain; the chain stays for a smaller frame.
                rx.unpop(1);
                rxDropped.increment();
                return true;
            }
            copy(parts, count, 0, first, 0, len);
            numBuffers.set(U16, 0, (short) 1);
            first.writeTo(VirtioNetHeader.OFF_NUM_BUFFERS, numBuffers, 0, 2);
            rx.addUsed(first.head(), len);
            rxFrames.increment();
            rxBytes.add(len - HEADER);
            signal();
            return true;
        }

        private boolean deliverMerged(MemorySegment[] parts, int count, int len) {
            int n = 0;
            long offset = 0;
            while (offset < len) {
                DescriptorChain c = n == 0 ? first : next;
                if (n == rx.size()) {
                    // Every entry the driver's ring can hold (its size, at most the device's maximum, which heads
                    // has room for) is not enough: this frame can never fit. Waiting for more would stall the
                    // queue, and popping more (a driver moving its available index under us) could give back more
                    // than unpop takes.
                    rx.unpop(n);
                    rxDropped.increment();
                    return true;
                }
                if (!popOrWait(c)) {
                    rx.unpop(n);
                    wanted = true;
                    return false;
                }
                long room = c.writableLength();
                if (room < HEADER) {
                    throw new VirtqueueException(
                            VirtqueueException.Kind.CHAIN_TOO_SHORT,
                            "receive buffer " + c.head() + " holds " + room + " bytes, less than the " + HEADER
                                    + "-byte header VIRTIO_NET_F_MRG_RXBUF requires");
                }
                int chunk = (int) Math.min(room, len - offset);
                copy(parts, count, offset, c, 0, chunk);
                heads[n] = c.head();
                lengths[n] = chunk;
                n++;
                offset += chunk;
            }
            numBuffers.set(U16, 0, (short) n);
            first.writeTo(VirtioNetHeader.OFF_NUM_BUFFERS, numBuffers, 0, 2);
            // All buffers of the frame reach the driver at once: it reads num_buffers, then takes that many.
            for (int i = 0; i < n; i++) rx.putUsed(heads[i], lengths[i]);
            rx.publishUsed();
            rxFrames.increment();
            rxBytes.add(len - HEADER);
            signal();
            return true;
        }

        /** The receive limiter has tokens again: the backend, waiting since it was throttled, may go on. */
        private void limiterRefilled() {
            synchronized (rx) {
                if (!wanted || stopped) return;
                wanted = false;
            }
            List<NetQueue> nq = a.netQueues;
            if (pair < nq.size()) nq.get(pair).rxReady();
        }

        /** The driver notified the receive queue: if the backend is waiting for buffers, it may go on. */
        void guestPostedBuffers(Virtqueue q) {
            // Called with q's monitor held by the transport.
            if (!wanted || !q.hasAvailable()) return;
            wanted = false;
            List<NetQueue> nq = a.netQueues;
            if (pair < nq.size()) nq.get(pair).rxReady();
        }

        @Override
        public void txReady() {
            if (pair < a.tx.length) a.tx[pair].readyEpoch.incrementAndGet();
            a.context.kick();
        }

        @Override
        public void backendFailed(String where, Throwable cause) {
            a.context.broken(where, cause);
        }
    }

    // ---- snapshots

    /**
     * Frames the backend delivers from now on wait in the backend (deliver answers false, as for a full queue);
     * one being written into the receive queue is finished first.
     */
    @Override
    public void quiesce() {
        held = true;
        Active a = active;
        if (a != null)
            for (Port p : a.ports) {
                synchronized (p.rx) { // waits for a delivery in progress
                    p.wanted = true;
                }
            }
    }

    @Override
    public void resumeAfterSnapshot() {
        held = false;
        Active a = active;
        if (a == null) return;
        for (Port p : a.ports) {
            synchronized (p.rx) {
                p.wanted = false;
            }
            List<NetQueue> nq = a.netQueues;
            if (p.pair < nq.size()) nq.get(p.pair).rxReady();
        }
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    /**
     * The MAC address, the link, and while the driver has the device its receive filter and the queue pairs in
     * use. Nothing of the backend: a TAP device is opened again by name, and user-mode networking starts afresh
     * (its connections belong to the process that saved the snapshot).
     */
    @Override
    public void saveState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u64(mac).bool(linkUp);
        Active a = active;
        out.bool(a != null);
        if (a == null) return;
        RxFilter f = a.filter;
        out.bool(f.promiscuous()).bool(f.allMulticast()).bool(f.allUnicast());
        out.bool(f.noMulticast()).bool(f.noUnicast()).bool(f.noBroadcast());
        out.bool(f.unicastOverflow()).bool(f.multicastOverflow());
        out.u32(f.unicast().length);
        for (long m : f.unicast()) out.u64(m);
        out.u32(f.multicast().length);
        for (long m : f.multicast()) out.u64(m);
        out.u16(a.pairsInUse);
    }

    @Override
    public void restoreState(int version, dev.jvmm.core.snapshot.StateInput in) {
        long nMac = in.u64("MAC address");
        boolean nLink = in.bool("link up");
        boolean wasActive = in.bool("driver active");
        Active a = active;
        if (wasActive != (a != null))
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT,
                    in.where() + ": the NIC was " + (wasActive ? "" : "not ") + "in use by its driver, but its"
                            + " transport's status says otherwise");
        if ((nMac >>> 48) != 0)
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT,
                    in.where() + ": MAC address 0x" + Long.toHexString(nMac) + " is wider than 48 bits");
        mac = nMac;
        linkUp = nLink;
        if (a == null) {
            in.expectEnd();
            return;
        }
        boolean promisc = in.bool("promiscuous"), allMulti = in.bool("all multicast"), allUni = in.bool("all unicast");
        boolean noMulti = in.bool("no multicast"), noUni = in.bool("no unicast"), noBcast = in.bool("no broadcast");
        boolean uniOverflow = in.bool("unicast overflow"), multiOverflow = in.bool("multicast overflow");
        long[] uni = new long[in.count("unicast table", RxFilter.TABLE_ENTRIES, 8)];
        for (int i = 0; i < uni.length; i++) uni[i] = in.u64("unicast address");
        long[] multi = new long[in.count("multicast table", RxFilter.TABLE_ENTRIES, 8)];
        for (int i = 0; i < multi.length; i++) multi[i] = in.u64("multicast address");
        int pairs = in.u16("queue pairs in use");
        in.expectEnd();
        if (pairs < 1 || pairs > a.pairs)
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT,
                    in.where() + ": " + pairs + " queue pairs in use, the device has " + a.pairs);
        a.filter = new RxFilter(
                promisc, allMulti, allUni, noMulti, noUni, noBcast, uni, multi, uniOverflow, multiOverflow);
        if (pairs != a.pairsInUse) startBackend(a, pairs);
    }

    // ---- control queue ----

    private void processControl(Active a, Virtqueue q) {
        DescriptorChain c = a.controlChain;
        for (int budget = q.size(); budget > 0 && q.pop(c); budget--) {
            if (c.readableLength() < 2 || c.writableLength() < 1)
                throw new VirtqueueException(
                        VirtqueueException.Kind.CHAIN_TOO_SHORT,
                        "control command " + c.head() + " lacks its class and command or its ack byte");
            int ack = command(a, c);
            c.writeByte(0, (byte) ack);
            q.addUsed(c.head(), 1);
        }
    }

    private int command(Active a, DescriptorChain c) {
        MemorySegment s = a.controlScratch;
        c.readFrom(0, s, 0, 2);
        int cls = s.get(ValueLayout.JAVA_BYTE, 0) & 0xff, cmd = s.get(ValueLayout.JAVA_BYTE, 1) & 0xff;
        long dataLength = c.readableLength() - 2;
        long n = a.negotiated;
        switch (cls) {
            case CTRL_RX -> {
                boolean extra = cmd >= CTRL_RX_ALLUNI && cmd <= CTRL_RX_NOBCAST;
                if (!has(n, F_CTRL_RX)
                        || cmd > CTRL_RX_NOBCAST
                        || (extra && !has(n, F_CTRL_RX_EXTRA))
                        || dataLength != 1) return CTRL_ERR;
                c.readFrom(2, s, 0, 1);
                a.filter = a.filter.withRxMode(cmd, s.get(ValueLayout.JAVA_BYTE, 0) != 0);
                return CTRL_OK;
            }
            case CTRL_MAC -> {
                if (cmd == CTRL_MAC_TABLE_SET && has(n, F_CTRL_RX)) return macTables(a, c, dataLength);
                if (cmd == CTRL_MAC_ADDR_SET && has(n, F_CTRL_MAC_ADDR) && dataLength == 6) {
                    long m = readMac(c, 2, s);
                    if (((m >>> 40) & 1) != 0 || m == 0) return CTRL_ERR;
                    mac = m;
                    return CTRL_OK;
                }
                return CTRL_ERR;
            }
            case CTRL_MQ -> {
                if (cmd != CTRL_MQ_VQ_PAIRS_SET || !has(n, F_MQ) || dataLength != 2) return CTRL_ERR;
                c.readFrom(2, s, 0, 2);
                int pairs = s.get(U16, 0) & 0xffff;
                if (pairs < 1 || pairs > a.pairs) return CTRL_ERR;
                if (pairs != a.pairsInUse) {
                    try {
                        startBackend(a, pairs);
                    } catch (RuntimeException e) {
                        LOG.warn("virtio-net: switching to {} queue pairs failed: {}", pairs, e.getMessage());
                        a.context.fail("backend cannot serve " + pairs + " queue pairs: " + e.getMessage());
                        return CTRL_ERR;
                    }
                }
                return CTRL_OK;
            }
            default -> {
                return CTRL_ERR;
            }
        }
    }

    /** struct virtio_net_ctrl_mac twice (unicast, then multicast): le32 entries, then 6-byte addresses. */
    private int macTables(Active a, DescriptorChain c, long dataLength) {
        MemorySegment s = a.controlScratch;
        if (dataLength < 8) return CTRL_ERR;
        long uniCount = c.readInt(2, s) & 0xffffffffL;
        long multiAt = 2 + 4 + 6 * uniCount;
        if (6 * uniCount > dataLength - 8) return CTRL_ERR;
        long multiCount = c.readInt(multiAt, s) & 0xffffffffL;
        if (4 + 6 * uniCount + 4 + 6 * multiCount != dataLength) return CTRL_ERR;
        boolean uniOverflow = uniCount > RxFilter.TABLE_ENTRIES, multiOverflow = multiCount > RxFilter.TABLE_ENTRIES;
        long[] uni = new long[uniOverflow ? 0 : (int) uniCount];
        long[] multi = new long[multiOverflow ? 0 : (int) multiCount];
        for (int i = 0; i < uni.length; i++) uni[i] = readMac(c, 6 + 6L * i, s);
        for (int i = 0; i < multi.length; i++) multi[i] = readMac(c, multiAt + 4 + 6L * i, s);
        a.filter = a.filter.withTables(uni, uniOverflow, multi, multiOverflow);
        return CTRL_OK;
    }

    private static long readMac(DescriptorChain c, long offset, MemorySegment scratch) {
        c.readFrom(offset, scratch, 0, 6);
        return RxFilter.destination(scratch, 0);
    }

    @Override
    public String toString() {
        List<String> f = new ArrayList<>();
        if (has(features, F_CSUM)) f.add("csum");
        if (has(features, F_GUEST_TSO4)) f.add("guest-tso4");
        if (maxPairs > 1) f.add(maxPairs + " pairs");
        return "virtio-net " + mac() + " " + f;
    }
}
