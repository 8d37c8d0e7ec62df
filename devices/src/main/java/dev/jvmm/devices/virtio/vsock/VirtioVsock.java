package dev.jvmm.devices.virtio.vsock;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.virtio.DescriptorChain;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.VirtqueueException;
import dev.jvmm.devices.vsock.HostStream;
import dev.jvmm.devices.vsock.VsockBackend;
import dev.jvmm.devices.vsock.VsockBackend.StreamListener;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-vsock (virtio 1.2, 5.10): stream sockets between the guest and the host (CID 2), over a
 * {@link VsockBackend} that owns the host's sockets. The device keeps each connection's state and both directions'
 * credit: it never puts more bytes in the guest's receive buffers than the guest's buf_alloc and fwd_cnt allow, and
 * holds at most its own advertised buf_alloc of a connection's bytes that the host side has not taken yet (a guest
 * that sends beyond that credit has its connection reset).
 *
 * <p>Threads: the transmit and event queues are served on the transport's I/O thread; the backend's thread calls in
 * for host events (a connection from a host program, a stream readable or writable, a connect finished). Both fill
 * the receive queue. Everything a connection has is guarded by the receive queue's monitor, which the transport
 * also holds while it services that queue, so it is the one lock of the device (the event queue's monitor is never
 * taken inside it).
 *
 * <p>The guest is not trusted: every transmitted header is decoded and checked once ({@link TxPacket#decode}); a
 * packet that names no connection, or breaks the protocol on one, is answered with a reset (never a reset with a
 * reset); spoofed and headerless packets are dropped; requests beyond {@link Options#maxConnections} are refused with
 * a reset; resets owed for packets that name no connection are bounded, beyond which they are dropped (the guest's
 * connect then times out). A receive buffer too short for a header is a broken ring: DEVICE_NEEDS_RESET.
 */
public final class VirtioVsock implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioVsock.class);

    public static final int TYPE_VSOCK = 19;
    /** VIRTIO_VSOCK_F_STREAM; drivers that know no feature bits (Linux) get stream sockets as well. */
    public static final int F_STREAM = 0;

    public static final int RX = 0, TX = 1, EVENT = 2;
    /** le64 guest_cid. */
    public static final int CONFIG_SIZE = 8;
    /** struct virtio_vsock_event's id for VIRTIO_VSOCK_EVENT_TRANSPORT_RESET. */
    public static final int EVENT_TRANSPORT_RESET = 0;

    static final int EVENT_SIZE = 4;
    /** Resets owed for packets that name no connection, kept while the guest posts no receive buffers. */
    static final int MAX_ORPHAN_RESETS = 64;
    /** Host ports the device gives host programs' connections, as Firecracker does: from 2^30 up. */
    static final int FIRST_HOST_PORT = 1 << 30;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * How the device looks to the guest and what it allows.
     *
     * @param guestCid       the guest's context ID, 3 to 2^32 - 2
     * @param queueSize      entries per queue, a power of two
     * @param bufAlloc       the bytes of each connection the device buffers towards the host (its buf_alloc)
     * @param maxConnections connections at once, either side's; more are refused with a reset
     * @param requestTimeout how long a connection request may wait for its answer (the host's connect, the guest's
     *                       RESPONSE) before it is reset
     * @param closeTimeout   how long a connection the guest shut down may take to hand its last bytes to the host
     */
    public record Options(
            long guestCid,
            int queueSize,
            int bufAlloc,
            int maxConnections,
            Duration requestTimeout,
            Duration closeTimeout) {
        public Options {
            String bad = cidProblem(guestCid);
            if (bad != null) throw new IllegalArgumentException(bad);
            if (queueSize < 4 || queueSize > Virtqueue.MAX_SIZE || Integer.bitCount(queueSize) != 1)
                throw new IllegalArgumentException(
                        "virtio-vsock queue size " + queueSize + " must be a power of two from 4 to 32768");
            if (bufAlloc < 4096 || bufAlloc > 1 << 24)
                throw new IllegalArgumentException("virtio-vsock buf_alloc " + bufAlloc + " must be 4 KiB to 16 MiB");
            if (maxConnections < 1 || maxConnections > 65536)
                throw new IllegalArgumentException(
                        "virtio-vsock connections " + maxConnections + " must be 1 to 65536");
            if (requestTimeout.isNegative() || closeTimeout.isNegative())
                throw new IllegalArgumentException("virtio-vsock timeouts must not be negative");
        }

        /** 256-entry queues, 256 KiB per connection (Linux's default buf_alloc), 256 connections, 5 s timeouts. */
        public static Options of(long guestCid) {
            return new Options(guestCid, 256, 256 << 10, 256, Duration.ofSeconds(5), Duration.ofSeconds(5));
        }

        public Options withBufAlloc(int bytes) {
            return new Options(guestCid, queueSize, bytes, maxConnections, requestTimeout, closeTimeout);
        }

        public Options withMaxConnections(int n) {
            return new Options(guestCid, queueSize, bufAlloc, n, requestTimeout, closeTimeout);
        }
    }

    /**
     * What is wrong with {@code cid} as a guest's context ID, or null when nothing is: 0 and 1 are reserved, 2 is the
     * host, and 2^32 - 1 (VMADDR_CID_ANY) is reserved; the upper 32 bits are reserved and zero.
     */
    public static String cidProblem(long cid) {
        if (cid >= 3 && cid <= 0xffff_fffeL) return null;
        return "guest CID " + Long.toUnsignedString(cid) + " must be from 3 to 4294967294"
                + " (0 and 1 are reserved, 2 is the host, 4294967295 means any)";
    }

    private final VsockBackend backend;
    private final Options options;
    private final long features;
    private volatile Active active;

    private final LongAdder txPackets = new LongAdder(), rxPackets = new LongAdder();
    private final LongAdder dropped = new LongAdder(), resetsSent = new LongAdder(), refused = new LongAdder();
    private final LongAdder bytesFromGuest = new LongAdder(), bytesToGuest = new LongAdder();

    public VirtioVsock(VsockBackend backend, Options options) {
        this.backend = backend;
        this.options = options;
        this.features = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
                | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX)
                | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC)
                | 1L << F_STREAM;
        backend.start(new HostSide());
    }

    public long guestCid() {
        return options.guestCid();
    }

    public Options options() {
        return options;
    }

    /** Packets the guest sent that the device acted on. */
    public long txPackets() {
        return txPackets.sum();
    }

    /** Packets placed in the guest's receive buffers. */
    public long rxPackets() {
        return rxPackets.sum();
    }

    /** Packets from the guest dropped as malformed, spoofed or beyond the device's rules. */
    public long droppedPackets() {
        return dropped.sum();
    }

    /** Resets sent to the guest. */
    public long resetsSent() {
        return resetsSent.sum();
    }

    /** Connections refused: nothing served the host port, or too many connections. */
    public long refusedConnections() {
        return refused.sum();
    }

    /** Payload bytes the guest sent that reached the host side. */
    public long bytesFromGuest() {
        return bytesFromGuest.sum();
    }

    /** Payload bytes placed in the guest's receive buffers. */
    public long bytesToGuest() {
        return bytesToGuest.sum();
    }

    /** Connections the device has now (0 when not active). */
    public int connections() {
        Active a = active;
        if (a == null) return 0;
        synchronized (a.rx) {
            return a.conns.size();
        }
    }

    @Override
    public int deviceType() {
        return TYPE_VSOCK;
    }

    @Override
    public long deviceFeatures() {
        return features;
    }

    @Override
    public int[] queueMaxSizes() {
        return VirtioDevice.queuesOfSize(3, options.queueSize());
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public long readConfig(int offset, int size) {
        long cid = options.guestCid();
        return VirtioDevice.littleEndian(offset, size, o -> (int) (cid >>> (8 * o)) & 0xff);
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // guest_cid is read-only.
    }

    @Override
    public void activate(GuestMemory memory, long negotiatedFeatures, List<Virtqueue> queues, Context context) {
        active = new Active(queues, context);
    }

    @Override
    public void reset() {
        Active a = active;
        active = null;
        if (a != null) {
            synchronized (a.rx) {
                a.forgetAll();
            }
        }
    }

    @Override
    public void processQueue(int index, Virtqueue queue) {
        Active a = active;
        if (a == null || a.stopped) return;
        try {
            switch (index) {
                case RX -> {
                    synchronized (a.rx) { // held by the transport already; the device's lock
                        a.pump(queue.size());
                    }
                }
                case TX -> a.processTx(queue);
                case EVENT -> a.deliverEvent();
                default -> {}
            }
        } catch (VirtqueueException e) {
            a.stopped = true; // the transport puts the device into DEVICE_NEEDS_RESET
            throw e;
        }
    }

    @Override
    public boolean canProcess(int index) {
        Active a = active;
        if (a == null) return true;
        return switch (index) {
            // The receive queue is filled as packets are owed; the event queue when an event is.
            case RX -> {
                synchronized (a.rx) {
                    yield a.hasRxWork();
                }
            }
            case EVENT -> a.eventPending;
            default -> true;
        };
    }

    /**
     * Tells the guest that every connection is gone (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET): the host side of each is
     * closed, and the guest's driver resets its sockets and reads guest_cid again. For when the host side lost its
     * connections, as after a VM is restored from a snapshot. The event waits for an event buffer if there is none.
     */
    public void transportReset() {
        Active a = active;
        if (a == null) return;
        synchronized (a.rx) {
            a.forgetAll();
        }
        a.eventPending = true;
        a.context.kick();
    }

    // ---- snapshots

    /** A snapshot is being taken: nothing goes into the receive queue (host bytes wait in the host's streams). */
    private volatile boolean held;

    @Override
    public void quiesce() {
        held = true;
        Active a = active;
        if (a != null)
            synchronized (a.rx) { // waits for a backend thread filling the receive queue
                a.rx.isActive();
            }
    }

    @Override
    public void resumeAfterSnapshot() {
        held = false;
        Active a = active;
        if (a != null) a.context.kick(); // what the host sent meanwhile goes to the guest now
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    /**
     * The guest's CID only: connections belong to the host programs of the process that saved the snapshot. A
     * restored device starts with none and, as Firecracker's does, tells the guest so with a transport reset event,
     * after which the guest's sockets are reset and new connections work.
     */
    @Override
    public void saveState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u64(options.guestCid());
    }

    @Override
    public void restoreState(int version, dev.jvmm.core.snapshot.StateInput in) {
        long cid = in.u64("guest CID");
        in.expectEnd();
        if (cid != options.guestCid())
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.MACHINE_MISMATCH,
                    in.where() + ": the guest had CID " + cid + ", this vsock device has " + options.guestCid());
        transportReset();
    }

    private enum State {
        /** The guest asked; the host's connect is in progress. */
        CONNECTING,
        /** A host program asked; the guest's RESPONSE is awaited. */
        REQUESTED,
        ESTABLISHED,
        /** The guest shut down both ways; its last bytes go to the host, then a reset closes the connection. */
        CLOSING,
        /** A reset is owed to the guest; the connection is gone once it is sent. */
        RESET,
        /** Forgotten. */
        GONE
    }

    /** What exists while the driver has the device. */
    private final class Active {
        final Context context;
        final Virtqueue rx, tx, event;
        final DescriptorChain rxChain, txChain, eventChain;
        final List<Connection> conns = new ArrayList<>();
        /** Connections that owe the guest a packet, served in turn. */
        final ArrayDeque<Connection> work = new ArrayDeque<>();

        final MemorySegment header = MemorySegment.ofArray(new long[(VsockHeader.SIZE + 7) / 8]);
        final MemorySegment eventBytes = MemorySegment.ofArray(new byte[EVENT_SIZE]);
        /** Payload on its way, either direction (one at a time: under the lock). */
        final MemorySegment stagingSegment = Arena.ofAuto().allocate(TxPacket.MAX_PAYLOAD, 64);

        final ByteBuffer staging = stagingSegment.asByteBuffer();
        // Resets owed for packets that named no connection: a ring of (src cid, src port, dst port, type).
        final long[] orphanCid = new long[MAX_ORPHAN_RESETS];
        final int[] orphanSrc = new int[MAX_ORPHAN_RESETS],
                orphanDst = new int[MAX_ORPHAN_RESETS],
                orphanType = new int[MAX_ORPHAN_RESETS];
        int orphanHead, orphanCount;
        int nextHostPort = FIRST_HOST_PORT;
        volatile boolean eventPending;
        /** A ring broke: nothing more is served (from any thread) until the driver resets the device. */
        volatile boolean stopped;

        Active(List<Virtqueue> queues, Context context) {
            this.context = context;
            this.rx = queues.get(RX);
            this.tx = queues.get(TX);
            this.event = queues.get(EVENT);
            this.rxChain = new DescriptorChain(rx.maxSize());
            this.txChain = new DescriptorChain(tx.maxSize());
            this.eventChain = new DescriptorChain(event.maxSize());
            eventBytes.set(U32, 0, EVENT_TRANSPORT_RESET);
        }

        boolean live() {
            return active == this && !stopped;
        }

        // ---- transmit

        void processTx(Virtqueue q) {
            synchronized (rx) {
                if (!live()) return;
                int done = 0;
                while (done < q.size() && q.pop(txChain)) {
                    handle(TxPacket.decode(txChain, header, options.guestCid()));
                    q.putUsed(txChain.head(), 0);
                    if (++done % 64 == 0) q.publishUsed(); // the driver reclaims buffers during a long burst
                }
                if (done % 64 != 0) q.publishUsed();
                pump(rx.size());
            }
        }

        void handle(TxPacket p) {
            switch (p) {
                case TxPacket.Unreadable u -> {
                    dropped.increment();
                    LOG.debug(
                            "vsock: dropped a transmit chain of {} readable and {} writable bytes: no header",
                            u.readable(),
                            u.writable());
                }
                case TxPacket.Invalid(VsockHeader h, TxPacket.Problem problem) -> {
                    dropped.increment();
                    LOG.debug("vsock: dropped {}: {}", h, problem);
                    switch (problem) {
                        case SPOOFED_SOURCE -> {} // not the guest's address: nobody to answer
                        case NOT_FOR_HOST, UNSUPPORTED_TYPE -> replyReset(h);
                        default -> {
                            // A lie about the payload, or an op nobody knows: the stream cannot go on.
                            Connection c = find(h.srcPort(), h.dstPort());
                            if (c == null) replyReset(h);
                            else if (h.op() == VsockOp.RST.code) c.forget();
                            else c.reset();
                        }
                    }
                }
                case TxPacket.Valid(VsockHeader h, VsockOp op) -> {
                    txPackets.increment();
                    dispatch(h, op);
                }
            }
        }

        void dispatch(VsockHeader h, VsockOp op) {
            Connection c = find(h.srcPort(), h.dstPort());
            if (c == null) {
                if (op == VsockOp.REQUEST) guestConnects(h);
                else replyReset(h);
                return;
            }
            if (op == VsockOp.RST) {
                c.forget(); // the guest is done with it: nothing owed any more
                return;
            }
            if (c.state == State.RESET) return; // its reset is on the way; the guest will hear of it
            c.peerCredit(h.bufAlloc(), h.fwdCnt());
            switch (op) {
                case REQUEST -> c.reset(); // a second request on a live connection: the guest lost track of it
                case RESPONSE -> c.guestAccepted();
                case SHUTDOWN -> c.guestShutdown(h.flags());
                case RW -> c.guestData(h.len());
                case CREDIT_REQUEST -> c.owe(Owed.CREDIT_UPDATE);
                default -> {} // CREDIT_UPDATE: peerCredit took it
            }
            c.updateInterest();
        }

        void guestConnects(VsockHeader h) {
            if (conns.size() >= options.maxConnections()) {
                refused.increment();
                LOG.debug("vsock: refused {}: {} connections already", h, conns.size());
                replyReset(h);
                return;
            }
            Connection c = new Connection(h.srcPort(), h.dstPort(), State.CONNECTING);
            c.peerCredit(h.bufAlloc(), h.fwdCnt());
            conns.add(c);
            try {
                c.stream = backend.connect(h.dstPort(), c);
            } catch (IOException e) {
                refused.increment();
                LOG.debug(
                        "vsock: guest port {} to host port {}: {}", c.guestPortText(), c.hostPortText(), e.toString());
                c.reset();
                return;
            }
            if (c.stream.isConnected()) c.established();
            else c.deadline = System.nanoTime() + options.requestTimeout().toNanos();
        }

        /** A host program's connection to guest port {@code guestPort}: the guest is asked. */
        StreamListener hostConnects(int guestPort, HostStream stream) {
            if (conns.size() >= options.maxConnections()) {
                refused.increment();
                return null;
            }
            int hostPort = nextHostPort;
            while (find(guestPort, hostPort) != null) hostPort++;
            nextHostPort = hostPort + 1 == -1 ? FIRST_HOST_PORT : hostPort + 1;
            Connection c = new Connection(guestPort, hostPort, State.REQUESTED);
            c.stream = stream;
            c.deadline = System.nanoTime() + options.requestTimeout().toNanos();
            conns.add(c);
            c.owe(Owed.REQUEST);
            pump(rx.size());
            return c;
        }

        Connection find(int guestPort, int hostPort) {
            // Linear: connections are bounded by maxConnections, and this allocates nothing per packet.
            for (int i = 0, n = conns.size(); i < n; i++) {
                Connection c = conns.get(i);
                if (c.guestPort == guestPort && c.hostPort == hostPort) return c;
            }
            return null;
        }

        /** A reset for a packet that names no connection (never for a reset). */
        void replyReset(VsockHeader h) {
            if (h.op() == VsockOp.RST.code) return;
            if (orphanCount == MAX_ORPHAN_RESETS) {
                LOG.debug("vsock: no room for a reset to {}; the guest's side times out", h);
                return;
            }
            int i = (orphanHead + orphanCount++) % MAX_ORPHAN_RESETS;
            orphanCid[i] = h.dstCid();
            orphanSrc[i] = h.dstPort();
            orphanDst[i] = h.srcPort();
            orphanType[i] = h.type();
        }

        void tick(long now) {
            for (Connection c : conns) {
                boolean waiting = c.state == State.CONNECTING || c.state == State.REQUESTED || c.state == State.CLOSING;
                if (waiting && now - c.deadline >= 0) {
                    LOG.debug("vsock: {} timed out in {}", c, c.state);
                    c.reset();
                }
            }
            pump(rx.size());
        }

        /** Every connection closed and forgotten: reset, or a transport reset event. */
        void forgetAll() {
            for (Connection c : conns) {
                c.closeStream();
                c.state = State.GONE;
            }
            conns.clear();
            work.clear();
            orphanCount = 0;
        }

        // ---- receive

        boolean hasRxWork() {
            return orphanCount > 0 || !work.isEmpty();
        }

        void enqueue(Connection c) {
            if (!c.queued) {
                c.queued = true;
                work.add(c);
            }
        }

        /** Puts owed packets into the guest's receive buffers, at most {@code budget}; caller holds rx. */
        void pump(int budget) {
            if (held || !rx.isActive() || rx.isBroken() || !live()) return;
            boolean used = false;
            try {
                while (budget > 0 && hasRxWork()) {
                    if (!rx.pop(rxChain) && !(rx.enableNotification() && rx.pop(rxChain))) break;
                    if (rxChain.writableLength() < VsockHeader.SIZE)
                        throw new VirtqueueException(
                                VirtqueueException.Kind.CHAIN_TOO_SHORT,
                                "receive buffer " + rxChain.head() + " holds " + rxChain.writableLength()
                                        + " bytes, less than the " + VsockHeader.SIZE + "-byte packet header");
                    int n;
                    if (orphanCount > 0) {
                        n = sendOrphanReset();
                    } else {
                        Connection c = work.poll();
                        c.queued = false;
                        n = c.state == State.GONE ? -1 : c.nextPacket(rxChain);
                        c.updateInterest();
                        if (c.hasWork()) enqueue(c);
                    }
                    if (n < 0) {
                        rx.unpop(1);
                        continue;
                    }
                    rx.addUsed(rxChain.head(), n);
                    rxPackets.increment();
                    used = true;
                    budget--;
                }
            } catch (VirtqueueException e) {
                stopped = true;
                context.fail("receive queue: " + e.getMessage());
            }
            if (used) context.signalUsed(RX);
            if (budget == 0 && hasRxWork() && !stopped)
                context.kick(); // more than a ring's worth: the transport comes back
        }

        int sendOrphanReset() {
            int i = orphanHead;
            orphanHead = (orphanHead + 1) % MAX_ORPHAN_RESETS;
            orphanCount--;
            VsockHeader.write(
                    header,
                    orphanCid[i],
                    options.guestCid(),
                    orphanSrc[i],
                    orphanDst[i],
                    0,
                    orphanType[i],
                    VsockOp.RST.code,
                    0,
                    0,
                    0);
            rxChain.writeTo(0, header, 0, VsockHeader.SIZE);
            resetsSent.increment();
            return VsockHeader.SIZE;
        }

        // ---- events

        void deliverEvent() {
            // Called holding the event queue's monitor (the transport's); never inside the device's lock.
            if (!eventPending || !event.pop(eventChain)) return;
            if (eventChain.writableLength() < EVENT_SIZE)
                throw new VirtqueueException(
                        VirtqueueException.Kind.CHAIN_TOO_SHORT,
                        "event buffer " + eventChain.head() + " holds " + eventChain.writableLength()
                                + " bytes, less than the " + EVENT_SIZE + "-byte event");
            eventChain.writeTo(0, eventBytes, 0, EVENT_SIZE);
            event.addUsed(eventChain.head(), EVENT_SIZE);
            eventPending = false;
        }

        // ---- connections

        /** A packet a connection owes the guest; several may be owed at once. */
        enum Owed {
            REQUEST,
            RESPONSE,
            SHUTDOWN,
            CREDIT_UPDATE
        }

        /** One stream connection, keyed by (guest port, host port). */
        final class Connection implements StreamListener {
            final int guestPort, hostPort;
            State state;
            HostStream stream;
            long deadline;
            // Towards the guest: what it allows (its buf_alloc and fwd_cnt) and what was sent.
            int peerBufAlloc, peerFwdCnt, txCnt;
            // From the guest: bytes received, bytes the host side took, and the fwd_cnt the guest last heard.
            int rxCnt, fwdCnt, lastSentFwdCnt;
            /** The guest's bytes the host side has not taken yet (write mode); at most bufAlloc. */
            ByteBuffer pending;

            boolean guestShutRcv, guestShutSend, hostEof, outputShut;
            boolean owesRequest, owesResponse, owesShutdown, owesCreditUpdate;
            /** The host stream was readable: data (or its end) may wait there. */
            boolean dataReady;

            boolean queued;
            /** The interest last given to the stream; stale after an event (the backend's key still has it). */
            boolean wantRead, wantWrite, interestStale;

            Connection(int guestPort, int hostPort, State state) {
                this.guestPort = guestPort;
                this.hostPort = hostPort;
                this.state = state;
            }

            String guestPortText() {
                return Integer.toUnsignedString(guestPort);
            }

            String hostPortText() {
                return Integer.toUnsignedString(hostPort);
            }

            @Override
            public String toString() {
                return "guest port " + guestPortText() + " <-> host port " + hostPortText();
            }

            /** Bytes the guest may receive now. */
            long credit() {
                long inFlight = Integer.toUnsignedLong(txCnt - peerFwdCnt);
                long alloc = Integer.toUnsignedLong(peerBufAlloc);
                // A fwd_cnt beyond what was sent makes inFlight huge: no credit, rather than a wrapped lot.
                return inFlight >= alloc ? 0 : alloc - inFlight;
            }

            /** The guest's bytes held here, not yet taken by the host side. */
            long unforwarded() {
                return Integer.toUnsignedLong(rxCnt - fwdCnt);
            }

            void peerCredit(int bufAlloc, int fwdCnt) {
                peerBufAlloc = bufAlloc;
                peerFwdCnt = fwdCnt;
            }

            void owe(Owed what) {
                switch (what) {
                    case REQUEST -> owesRequest = true;
                    case RESPONSE -> owesResponse = true;
                    case SHUTDOWN -> owesShutdown = true;
                    case CREDIT_UPDATE -> owesCreditUpdate = true;
                }
                enqueue(this);
            }

            boolean hasWork() {
                if (state == State.GONE) return false;
                return state == State.RESET
                        || owesRequest
                        || owesResponse
                        || owesShutdown
                        || owesCreditUpdate
                        || (dataReady && credit() > 0);
            }

            void established() {
                state = State.ESTABLISHED;
                owe(Owed.RESPONSE);
                updateInterest();
            }

            /** Closes the host side and owes the guest a reset; the connection goes once that is sent. */
            void reset() {
                if (state == State.RESET || state == State.GONE) return;
                closeStream();
                state = State.RESET;
                owesRequest = owesResponse = owesShutdown = owesCreditUpdate = dataReady = false;
                enqueue(this);
            }

            /** Gone without a word to the guest (it reset the connection itself). */
            void forget() {
                closeStream();
                state = State.GONE;
                conns.remove(this);
            }

            void closeStream() {
                pending = null;
                if (stream != null) stream.close();
            }

            // Packets from the guest.

            void guestAccepted() {
                if (state != State.REQUESTED || owesRequest) {
                    reset(); // not asked, or an answer to a request it cannot have seen yet
                    return;
                }
                state = State.ESTABLISHED;
                stream.accepted(hostPort);
            }

            void guestShutdown(int flags) {
                if (state == State.CLOSING) return;
                if (state != State.ESTABLISHED) {
                    reset();
                    return;
                }
                if ((flags & VsockHeader.SHUTDOWN_RCV) != 0) {
                    guestShutRcv = true; // nothing more goes to the guest; the host program's bytes stay with it
                    dataReady = false;
                }
                if ((flags & VsockHeader.SHUTDOWN_SEND) != 0) guestShutSend = true;
                if (guestShutRcv && guestShutSend) {
                    state = State.CLOSING;
                    dataReady = false;
                    deadline = System.nanoTime() + options.closeTimeout().toNanos();
                }
                afterFlush();
            }

            void guestData(int len) {
                if (state != State.ESTABLISHED || guestShutSend) {
                    reset(); // data before the connection stands, or after the guest said it sends no more
                    return;
                }
                if (len == 0) return;
                if (unforwarded() + Integer.toUnsignedLong(len) > options.bufAlloc()) {
                    LOG.debug(
                            "vsock: {}: {} bytes beyond the credit given ({} held of {}); reset",
                            this,
                            Integer.toUnsignedString(len),
                            unforwarded(),
                            options.bufAlloc());
                    dropped.increment();
                    reset();
                    return;
                }
                rxCnt += len;
                txChain.readFrom(VsockHeader.SIZE, stagingSegment, 0, len);
                staging.clear().limit(len);
                if (pending == null || pending.position() == 0) forward(staging);
                if (state != State.ESTABLISHED) return;
                if (staging.hasRemaining()) {
                    if (pending == null) pending = ByteBuffer.allocate(options.bufAlloc());
                    pending.put(staging);
                }
                maybeCreditUpdate();
            }

            /** Hands bytes to the host side; a host side that is gone resets the connection. */
            void forward(ByteBuffer src) {
                try {
                    int n = stream.write(src);
                    fwdCnt += n;
                    bytesFromGuest.add(n);
                } catch (IOException e) {
                    LOG.debug("vsock: {}: host side write failed: {}", this, e.toString());
                    reset();
                }
            }

            /** The guest hears of room freed once it believes less than half its credit is left. */
            void maybeCreditUpdate() {
                long believedFree = options.bufAlloc() - Integer.toUnsignedLong(rxCnt - lastSentFwdCnt);
                if (fwdCnt != lastSentFwdCnt && believedFree < options.bufAlloc() / 2) owe(Owed.CREDIT_UPDATE);
            }

            /** What follows once every byte of the guest reached the host side. */
            void afterFlush() {
                if (unforwarded() != 0) return;
                if (state == State.CLOSING) {
                    reset(); // the answer to the guest's shutdown both ways (5.10.6.6): a reset
                    return;
                }
                if (guestShutSend && !outputShut && stream != null) {
                    stream.shutdownOutput();
                    outputShut = true;
                }
            }

            // Events of the host side (the backend's thread).

            @Override
            public void connected() {
                synchronized (rx) {
                    if (!live() || state != State.CONNECTING) return;
                    established();
                    pump(rx.size());
                }
            }

            @Override
            public void failed(IOException cause) {
                synchronized (rx) {
                    if (!live() || state != State.CONNECTING) return;
                    refused.increment();
                    LOG.debug("vsock: {}: connect failed: {}", this, cause.toString());
                    reset();
                    pump(rx.size());
                }
            }

            @Override
            public void readable() {
                synchronized (rx) {
                    if (!live() || state == State.GONE) return;
                    interestStale = true;
                    if (state == State.ESTABLISHED && !hostEof) {
                        dataReady = true;
                        if (hasWork()) enqueue(this);
                    }
                    pump(rx.size());
                    updateInterest();
                }
            }

            @Override
            public void writable() {
                synchronized (rx) {
                    if (!live() || state == State.GONE) return;
                    interestStale = true;
                    if (pending != null && pending.position() > 0) {
                        pending.flip();
                        forward(pending);
                        if (pending != null) pending.compact();
                    }
                    if (state == State.ESTABLISHED || state == State.CLOSING) {
                        maybeCreditUpdate();
                        afterFlush();
                    }
                    updateInterest();
                    pump(rx.size());
                }
            }

            /** Asks the backend for the events this connection's state needs. */
            void updateInterest() {
                if (stream == null || state == State.RESET || state == State.GONE) return;
                if (dataReady && credit() > 0 && state == State.ESTABLISHED) enqueue(this); // credit came back
                boolean read = state == State.ESTABLISHED && !hostEof && !guestShutRcv && !dataReady && credit() > 0;
                boolean write = (state == State.ESTABLISHED || state == State.CLOSING)
                        && pending != null
                        && pending.position() > 0;
                if (interestStale || read != wantRead || write != wantWrite) {
                    interestStale = false;
                    wantRead = read;
                    wantWrite = write;
                    stream.interest(read, write);
                }
            }

            // Packets to the guest.

            /** Writes the next packet this connection owes into {@code c}: its length, or -1 when it owes none. */
            int nextPacket(DescriptorChain c) {
                if (state == State.RESET) {
                    state = State.GONE;
                    conns.remove(this);
                    resetsSent.increment();
                    return control(c, VsockOp.RST, 0);
                }
                if (owesRequest) {
                    owesRequest = false;
                    return control(c, VsockOp.REQUEST, 0);
                }
                if (owesResponse) {
                    owesResponse = false;
                    return control(c, VsockOp.RESPONSE, 0);
                }
                if (dataReady) {
                    long room = Math.min(c.writableLength() - VsockHeader.SIZE, TxPacket.MAX_PAYLOAD);
                    long allowed = Math.min(credit(), room);
                    if (allowed == 0) {
                        dataReady = credit() > 0;
                        // A buffer with room for a header only: it carries the credit the guest needs instead.
                        if (dataReady) return control(c, VsockOp.CREDIT_UPDATE, 0);
                    } else {
                        int n = readHost((int) allowed);
                        if (state == State.RESET) {
                            return nextPacket(c);
                        }
                        if (n > 0) {
                            c.writeTo(VsockHeader.SIZE, stagingSegment, 0, n);
                            txCnt += n;
                            bytesToGuest.add(n);
                            if (credit() == 0) dataReady = false; // read again when the guest gives credit
                            return packet(c, VsockOp.RW, 0, n);
                        }
                        dataReady = false;
                        if (n < 0) {
                            hostEof = true; // the host program shut down its side: the guest reads end of stream
                            owesShutdown = true;
                        }
                    }
                }
                if (owesShutdown) {
                    owesShutdown = false;
                    return control(c, VsockOp.SHUTDOWN, VsockHeader.SHUTDOWN_SEND);
                }
                if (owesCreditUpdate) return control(c, VsockOp.CREDIT_UPDATE, 0);
                return -1;
            }

            /** Reads up to {@code max} bytes of the host side into the staging buffer: the count, 0, or -1 at EOF. */
            int readHost(int max) {
                staging.clear().limit(max);
                try {
                    return stream.read(staging);
                } catch (IOException e) {
                    LOG.debug("vsock: {}: host side read failed: {}", this, e.toString());
                    reset();
                    return 0;
                }
            }

            int control(DescriptorChain c, VsockOp op, int flags) {
                return packet(c, op, flags, 0);
            }

            int packet(DescriptorChain c, VsockOp op, int flags, int len) {
                VsockHeader.write(
                        header,
                        TxPacket.HOST_CID,
                        options.guestCid(),
                        hostPort,
                        guestPort,
                        len,
                        VsockHeader.TYPE_STREAM,
                        op.code,
                        flags,
                        options.bufAlloc(),
                        fwdCnt);
                c.writeTo(0, header, 0, VsockHeader.SIZE);
                // Every packet carries the credit: an update owed is paid by this one too.
                lastSentFwdCnt = fwdCnt;
                owesCreditUpdate = false;
                return VsockHeader.SIZE + len;
            }
        }
    }

    /** The device as the backend's thread sees it. */
    private final class HostSide implements VsockBackend.VsockHost {
        @Override
        public StreamListener incoming(int guestPort, HostStream stream) {
            Active a = active;
            if (a == null) return null;
            synchronized (a.rx) {
                return a.live() ? a.hostConnects(guestPort, stream) : null;
            }
        }

        @Override
        public void tick(long nanoTime) {
            Active a = active;
            if (a == null) return;
            synchronized (a.rx) {
                if (a.live()) a.tick(nanoTime);
            }
        }

        @Override
        public void backendFailed(String where, Throwable cause) {
            Active a = active;
            if (a != null) a.context.broken(where, cause);
            else LOG.error("vsock backend failed in {}", where, cause);
        }
    }

    @Override
    public String toString() {
        return "virtio-vsock cid " + options.guestCid();
    }
}
