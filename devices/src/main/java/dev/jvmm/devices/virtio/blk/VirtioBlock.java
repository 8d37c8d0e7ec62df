package dev.jvmm.devices.virtio.blk;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.virtio.DescriptorChain;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.VirtqueueException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * virtio-blk (virtio 1.2, 5.2): read, write, flush, get-id, discard, write-zeroes, read-only disks and
 * several request queues, over a {@link BlockBackend}.
 *
 * <p>Every request is checked before the backend sees it: the header and status byte must be there, data
 * lengths must be whole sectors, sector ranges must lie within the capacity. A bad request completes with
 * VIRTIO_BLK_S_IOERR (or S_UNSUPP for what the device does not do); a request without a header or a status
 * byte cannot be answered and puts the device into DEVICE_NEEDS_RESET. A backend IOException completes the
 * request with S_IOERR and the device keeps serving. A request is completed only after the backend call
 * returned; without a negotiated VIRTIO_BLK_F_FLUSH every write is flushed before completion (the spec's
 * write-through case).
 *
 * <p>Each request is decoded and checked by a {@link BlockRequestParser} (one per queue) into a
 * {@link BlockRequest}, then run by the {@link BlockRequestExecutor} on the disk's pool of I/O threads, several per
 * queue at a time and completed in any order ({@link InFlight} keeps overlapping requests and flushes in the order the
 * driver made them available, and reset, quiesce and shutdown wait for them); this class owns the features, the
 * configuration space ({@link BlockConfig}) and the queue loop.
 */
public final class VirtioBlock implements VirtioDevice {
    public static final int F_SIZE_MAX = 1,
            F_SEG_MAX = 2,
            F_GEOMETRY = 4,
            F_RO = 5,
            F_BLK_SIZE = 6,
            F_FLUSH = 9,
            F_TOPOLOGY = 10,
            F_CONFIG_WCE = 11,
            F_MQ = 12,
            F_DISCARD = 13,
            F_WRITE_ZEROES = 14;
    public static final int T_IN = 0,
            T_OUT = 1,
            T_FLUSH = 4,
            T_GET_ID = 8,
            T_GET_LIFETIME = 10,
            T_DISCARD = 11,
            T_WRITE_ZEROES = 13,
            T_SECURE_ERASE = 14;
    public static final int S_OK = 0, S_IOERR = 1, S_UNSUPP = 2;
    public static final int SECTOR = 512;
    public static final int ID_BYTES = 20;
    static final int HEADER = 16, SEGMENT = 16;
    /** Limits advertised for discard and write-zeroes. */
    static final int MAX_DISCARD_SECTORS = 1 << 21, MAX_DISCARD_SEG = 32;

    public static final int CONFIG_SIZE = BlockConfig.SIZE;

    /** I/O threads per disk by default: requests of all its queues run on them, several at a time. */
    public static final int DEFAULT_IO_THREADS = 4;

    /**
     * How the disk looks to the guest.
     *
     * @param readOnly   refuse writes (also implied by a read-only backend)
     * @param serial     the VIRTIO_BLK_T_GET_ID string, ASCII, at most 20 bytes (empty: none)
     * @param queues     number of request queues (VIRTIO_BLK_F_MQ when more than one)
     * @param queueSize  entries per queue, a power of two
     * @param blockSize  the logical block size advertised in blk_size
     * @param rateLimit  requests (ops) and read/write bytes (bandwidth) the guest may have served, as Firecracker's
     *                   drive rate limiter
     * @param ioThreads  threads that run the disk's requests, up to {@link InFlight#MAX} (or the queue size) in flight
     *                   per queue; 0 runs them one at a time on the transport's I/O thread
     */
    public record Options(
            boolean readOnly,
            String serial,
            int queues,
            int queueSize,
            int blockSize,
            RateLimiter.Config rateLimit,
            int ioThreads) {
        public static final Options DEFAULT =
                new Options(false, "", 1, 256, 512, RateLimiter.Config.UNLIMITED, DEFAULT_IO_THREADS);

        public Options {
            if (serial == null) serial = "";
            if (serial.length() > ID_BYTES
                    || !StandardCharsets.US_ASCII.newEncoder().canEncode(serial))
                throw new IllegalArgumentException(
                        "disk serial '" + serial + "' must be at most " + ID_BYTES + " ASCII characters");
            if (queues < 1 || queues > 64)
                throw new IllegalArgumentException("virtio-blk queues " + queues + " must be 1 to 64");
            if (queueSize < 4 || queueSize > Virtqueue.MAX_SIZE || Integer.bitCount(queueSize) != 1)
                throw new IllegalArgumentException(
                        "virtio-blk queue size " + queueSize + " must be a power of two from 4 to 32768");
            if (blockSize < SECTOR || blockSize > 65536 || Integer.bitCount(blockSize) != 1)
                throw new IllegalArgumentException(
                        "block size " + blockSize + " must be a power of two from 512 to 65536");
            if (rateLimit == null) rateLimit = RateLimiter.Config.UNLIMITED;
            if (ioThreads < 0 || ioThreads > 64)
                throw new IllegalArgumentException("virtio-blk I/O threads " + ioThreads + " must be 0 to 64");
        }

        /** With a rate limit and the default I/O threads. */
        public Options(
                boolean readOnly,
                String serial,
                int queues,
                int queueSize,
                int blockSize,
                RateLimiter.Config rateLimit) {
            this(readOnly, serial, queues, queueSize, blockSize, rateLimit, DEFAULT_IO_THREADS);
        }

        /** Without a rate limit. */
        public Options(boolean readOnly, String serial, int queues, int queueSize, int blockSize) {
            this(readOnly, serial, queues, queueSize, blockSize, RateLimiter.Config.UNLIMITED);
        }

        public Options withReadOnly(boolean ro) {
            return new Options(ro, serial, queues, queueSize, blockSize, rateLimit, ioThreads);
        }

        public Options withSerial(String s) {
            return new Options(readOnly, s, queues, queueSize, blockSize, rateLimit, ioThreads);
        }

        public Options withQueues(int n) {
            return new Options(readOnly, serial, n, queueSize, blockSize, rateLimit, ioThreads);
        }

        public Options withRateLimit(RateLimiter.Config limit) {
            return new Options(readOnly, serial, queues, queueSize, blockSize, limit, ioThreads);
        }

        public Options withIoThreads(int n) {
            return new Options(readOnly, serial, queues, queueSize, blockSize, rateLimit, n);
        }
    }

    private final BlockBackend backend;
    private final Options options;
    private final boolean readOnly;
    private final long capacitySectors;
    private final long features;
    private final MemorySegment config;
    private final MemorySegment id = MemorySegment.ofArray(new byte[ID_BYTES]);
    private final BlockStats stats = new BlockStats();

    /** Null when nothing is limited. Lives across resets, as its buckets would on a real device's link. */
    private final RateLimiter limiter;

    // Set by activate, read on the I/O threads.
    private volatile QueueState[] states;
    private volatile BlockRequestExecutor executor;
    private volatile Context context;
    /** The limiter held a request back; the queues wait for its wake-up (a kick) instead of being serviced. */
    private volatile boolean throttled;

    /** Runs requests: a pool of {@link Options#ioThreads} (made on first use), or the caller's thread for none. */
    private final Executor workers;

    private final ThreadPoolExecutor pool;

    private static final class QueueState {
        final DescriptorChain chain;
        final BlockRequestParser parser;
        final InFlight inFlight;

        QueueState(int size, BlockRequestParser parser, InFlight inFlight) {
            this.chain = new DescriptorChain(size);
            this.parser = parser;
            this.inFlight = inFlight;
        }
    }

    public VirtioBlock(BlockBackend backend, Options options) {
        this.backend = backend;
        this.options = options;
        this.readOnly = options.readOnly() || backend.readOnly();
        this.limiter = RateLimiter.of(options.rateLimit());
        this.capacitySectors = backend.size() / SECTOR;
        long f = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
                | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX)
                | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC)
                | bit(F_SEG_MAX)
                | bit(F_BLK_SIZE)
                | bit(F_FLUSH);
        if (readOnly) f |= bit(F_RO);
        else f |= bit(F_DISCARD) | bit(F_WRITE_ZEROES);
        if (options.queues() > 1) f |= bit(F_MQ);
        this.features = f;

        int sectorsPerBlock = options.blockSize() / SECTOR;
        this.config = new BlockConfig(
                        capacitySectors,
                        0,
                        options.queueSize() - 2, // seg_max: the header and status take two descriptors
                        options.blockSize(),
                        Integer.numberOfTrailingZeros(sectorsPerBlock),
                        options.queues(),
                        MAX_DISCARD_SECTORS,
                        MAX_DISCARD_SEG,
                        sectorsPerBlock,
                        MAX_DISCARD_SECTORS,
                        MAX_DISCARD_SEG,
                        true)
                .toSegment();
        byte[] serial = options.serial().getBytes(StandardCharsets.US_ASCII);
        MemorySegment.copy(serial, 0, id, ValueLayout.JAVA_BYTE, 0, serial.length);
        if (options.ioThreads() == 0) {
            pool = null;
            workers = Runnable::run;
        } else {
            // Idle threads end after a while, so a disk the guest does not use holds none; the queue is bounded by
            // the in-flight caps (each queue hands over at most InFlight.MAX requests).
            pool = new ThreadPoolExecutor(
                    options.ioThreads(),
                    options.ioThreads(),
                    IDLE_SECONDS,
                    TimeUnit.SECONDS,
                    new LinkedBlockingQueue<>(),
                    Thread.ofPlatform().daemon().name("virtio-blk-io-", 0).factory());
            pool.allowCoreThreadTimeOut(true);
            workers = pool;
        }
    }

    private static final long IDLE_SECONDS = 10;

    private static long bit(int f) {
        return 1L << f;
    }

    public boolean readOnly() {
        return readOnly;
    }

    public long capacitySectors() {
        return capacitySectors;
    }

    /** Requests completed with S_IOERR because the backend failed. */
    public long backendErrors() {
        return stats.errors();
    }

    /** Requests the rate limiter held back (each waited in the guest's queue for tokens); 0 without one. */
    public long throttledCount() {
        return limiter == null ? 0 : limiter.throttledCount();
    }

    /** The request counters: operations and bytes by kind, refusals and backend failures. */
    public BlockStats stats() {
        return stats;
    }

    @Override
    public int deviceType() {
        return TYPE_BLOCK;
    }

    @Override
    public long deviceFeatures() {
        return features;
    }

    @Override
    public int[] queueMaxSizes() {
        return VirtioDevice.queuesOfSize(options.queues(), options.queueSize());
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public long readConfig(int offset, int size) {
        return VirtioDevice.littleEndian(offset, size, o -> config.get(ValueLayout.JAVA_BYTE, o));
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // Nothing is writable: writeback needs VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    }

    @Override
    public void activate(GuestMemory memory, long negotiatedFeatures, List<Virtqueue> queues, Context context) {
        BlockRequestParser.Limits limits = new BlockRequestParser.Limits(capacitySectors, readOnly, negotiatedFeatures);
        // Without VIRTIO_BLK_F_FLUSH the driver expects every write stable on completion (the spec's write-through).
        BlockRequestExecutor ex =
                new BlockRequestExecutor(backend, id, (negotiatedFeatures & bit(F_FLUSH)) == 0, stats);
        QueueState[] s = new QueueState[queues.size()];
        for (int i = 0; i < s.length; i++) {
            Virtqueue q = queues.get(i);
            int cap = options.ioThreads() == 0 ? 1 : q.size();
            s[i] = new QueueState(
                    q.maxSize(), new BlockRequestParser(limits), new InFlight(i, q, cap, workers, ex, context));
        }
        executor = ex;
        this.context = context;
        throttled = false;
        states = s;
    }

    @Override
    public void reset() {
        awaitIdle(); // no request may write guest memory or the rings once the driver has reset the device
        states = null;
        executor = null;
        context = null;
    }

    @Override
    public boolean canProcess(int index) {
        QueueState[] s = states;
        return !throttled && (s == null || !s[index].inFlight.isFull());
    }

    /** Waits until no request is running and every one taken is returned to the driver. */
    void awaitIdle() {
        QueueState[] s = states;
        if (s != null) for (QueueState st : s) st.inFlight.awaitIdle();
    }

    /** The transport is closed: in-flight requests finish, then the I/O threads end. */
    @Override
    public void shutdown() {
        awaitIdle();
        if (pool != null) pool.shutdown();
    }

    @Override
    public void processQueue(int index, Virtqueue queue) {
        QueueState st = states[index];
        BlockRequestExecutor ex = executor;
        DescriptorChain chain = st.chain;
        InFlight inFlight = st.inFlight;
        // The last request ready to run is held back and run on this thread once the ring is empty, sparing one
        // hand-off to a worker (a guest waiting on one request at a time gets it back sooner); the others go to the
        // workers as soon as the next one is taken.
        InFlight.Slot last = null;
        boolean done = false;
        try {
            for (int budget = queue.size(); budget > 0 && !inFlight.atCap() && queue.pop(chain); budget--) {
                long taken = stats.now();
                BlockRequest request = st.parser.parse(chain);
                if (request instanceof BlockRequest.Refused refused
                        && !refused.reason().answerable()) {
                    throw new VirtqueueException(
                            VirtqueueException.Kind.CHAIN_TOO_SHORT,
                            "virtio-blk request " + chain.head()
                                    + " cannot be answered: " + refused.reason()
                                    + " (" + chain.readableLength() + " device-readable bytes, "
                                    + chain.writableLength()
                                    + " device-writable; a request needs a 16-byte header and a status byte)");
                }
                if (limiter != null && !limiter.tryConsume(dataBytes(request))) {
                    // Left in the queue, to be popped and parsed again when the buckets have refilled.
                    queue.unpop(1);
                    throttled = true;
                    Context c = context;
                    limiter.wakeAfterRefill(dataBytes(request), () -> {
                        throttled = false;
                        if (c != null) c.kick();
                    });
                    break;
                }
                switch (request) {
                    // Nothing to wait for: answered at once, in the batch the transport signals after this call.
                    case BlockRequest.Refused r -> queue.addUsed(chain.head(), ex.execute(request, taken));
                    case BlockRequest.GetId g -> queue.addUsed(chain.head(), ex.execute(request, taken));
                    default -> {
                        InFlight.Slot ready = inFlight.submit(chain.head(), request, taken);
                        if (ready != null) {
                            if (last != null) inFlight.dispatch(last);
                            last = ready;
                        }
                    }
                }
            }
            done = true;
        } finally {
            if (last != null) {
                if (done && !InFlight.isFlush(last)) inFlight.runHere(last);
                else inFlight.dispatch(last);
            }
        }
    }

    // ---- snapshots: quiesce waits for the requests in flight to finish and be returned to the driver, so a quiesced
    // disk has none; what is left is the configuration the guest read, which must still describe the disk.

    @Override
    public int stateVersion() {
        return 1;
    }

    /**
     * The transport holds the I/O thread off the queues already; the requests taken are finished and used, and what
     * the guest wrote is flushed, so that the image (a qcow2 image's metadata included) is whole on disk for a restore
     * in another process.
     */
    @Override
    public void quiesce() {
        awaitIdle();
        if (backend.readOnly()) return;
        try {
            backend.flush();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(
                    "flushing the disk before the snapshot failed: " + e.getMessage(), e);
        }
    }

    @Override
    public void saveState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u64(capacitySectors).bool(readOnly).u32(options.blockSize());
    }

    @Override
    public void restoreState(int version, dev.jvmm.core.snapshot.StateInput in) {
        long capacity = in.u64("capacity");
        boolean ro = in.bool("read-only");
        int blockSize = in.u32("block size");
        in.expectEnd();
        if (capacity != capacitySectors || ro != readOnly || blockSize != options.blockSize())
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.MACHINE_MISMATCH,
                    in.where() + ": the guest knew a disk of " + capacity + " sectors" + (ro ? ", read-only" : "")
                            + ", blocks of " + blockSize + "; this disk has " + capacitySectors + " sectors"
                            + (readOnly ? ", read-only" : "") + ", blocks of " + options.blockSize());
    }

    /** The bytes a request moves, for the bandwidth bucket: reads and writes count, as in Firecracker. */
    private static long dataBytes(BlockRequest request) {
        return switch (request) {
            case BlockRequest.Read r -> r.length();
            case BlockRequest.Write w -> w.length();
            default -> 0;
        };
    }
}
