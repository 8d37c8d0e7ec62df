package dev.jvmm.devices.virtio.blk;

import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.Virtqueue;
import java.util.concurrent.Executor;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The requests of one queue taken off the ring and not yet returned to the driver: at most {@link #cap} of them, so a
 * guest that keeps refilling its ring while the disk is slow cannot make the host hold or run more than that.
 *
 * <p>Each request runs on the device's executor as soon as no earlier request of this queue that it depends on is
 * still running: a read waits for earlier overlapping writes, a write (discard, write-zeroes) for earlier overlapping
 * reads and writes, a flush for every earlier write. So overlapping requests take effect in the order the driver made
 * them available, and a flush is never run ahead of a write made available before it; everything else runs
 * concurrently and completes in any order, as virtio allows (1.2, 2.7.14).
 *
 * <p>Completions are published in batches: whichever worker finishes first becomes the publisher and moves every
 * completion that has arrived meanwhile into the used ring under the queue's monitor, with one publication of the
 * used index and at most one interrupt (the queue's suppression, EVENT_IDX or NO_INTERRUPT, still decides), then
 * looks again. {@link #awaitIdle} returns once nothing is running and every completion is published: reset, quiesce
 * and close wait on it, so the rings and guest memory are never touched afterwards.
 */
final class InFlight {
    /** The most requests a queue may have in flight: one bit each in a slot's dependency mask. */
    static final int MAX = 64;

    private static final int READ = 0, WRITE = 1, FLUSH = 2;

    private final int index;
    private final Virtqueue queue;
    private final int cap;
    private final Executor executor;
    private final BlockRequestExecutor requests;
    private final VirtioDevice.Context context;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition idle = lock.newCondition();
    private final Slot[] slots = new Slot[MAX];
    // Guarded by lock.
    private long busy; // slots whose request has not finished its backend call
    private int outstanding; // taken off the ring, not yet published as used
    private boolean full; // the I/O thread stopped taking requests at the cap; wake it when room is made
    private boolean publishing;
    private int pending; // finished, waiting for the publisher
    private int[] pendingHeads, pendingLengths, spareHeads, spareLengths;

    /** One request in flight: what it is, what it waits for. */
    final class Slot implements Runnable {
        final int bit;
        BlockRequest request;
        int head, kind;
        long takenNanos, first, end; // sectors [first, end) the request touches
        long waitsOn; // slots this one must see finish first
        boolean waiting;

        Slot(int bit) {
            this.bit = bit;
        }

        @Override
        public void run() {
            InFlight.this.run(this);
        }
    }

    InFlight(
            int index,
            Virtqueue queue,
            int cap,
            Executor executor,
            BlockRequestExecutor requests,
            VirtioDevice.Context context) {
        this.index = index;
        this.queue = queue;
        this.cap = Math.max(1, Math.min(cap, MAX));
        this.executor = executor;
        this.requests = requests;
        this.context = context;
        for (int i = 0; i < MAX; i++) slots[i] = new Slot(i);
        pendingHeads = new int[this.cap];
        pendingLengths = new int[this.cap];
        spareHeads = new int[this.cap];
        spareLengths = new int[this.cap];
    }

    /** True (and the queue is marked full, to be kicked when room is made) when no more requests may be taken. */
    boolean atCap() {
        lock.lock();
        try {
            if (outstanding < cap) return false;
            full = true;
            return true;
        } finally {
            lock.unlock();
        }
    }

    boolean isFull() {
        lock.lock();
        try {
            return full;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Takes a request popped from the ring (with head {@code head}); it runs once what it depends on has finished.
     * Returns it when it may run now, for the caller to {@link #dispatch} or {@link #runHere}; null when it waits (it
     * is dispatched when its turn comes). The caller checked {@link #atCap} first.
     */
    Slot submit(int head, BlockRequest request, long takenNanos) {
        Slot s;
        boolean runsNow;
        lock.lock();
        try {
            if (outstanding >= cap) throw new IllegalStateException("queue " + index + ": more than " + cap + " taken");
            s = slots[Long.numberOfTrailingZeros(~busy)];
            s.request = request;
            s.head = head;
            s.takenNanos = takenNanos;
            classify(s, request);
            long deps = 0;
            for (long b = busy; b != 0; b &= b - 1) {
                Slot o = slots[Long.numberOfTrailingZeros(b)];
                if (dependsOn(s, o)) deps |= 1L << o.bit;
            }
            s.waitsOn = deps;
            s.waiting = deps != 0;
            // Decided here, under the lock: once it is released, a worker finishing what s waits on may clear
            // s.waiting and dispatch s itself, and s must not run twice.
            runsNow = !s.waiting;
            busy |= 1L << s.bit;
            outstanding++;
        } finally {
            lock.unlock();
        }
        return runsNow ? s : null;
    }

    /** Runs a request {@link #submit} returned on the I/O threads. */
    void dispatch(Slot s) {
        executor.execute(s);
    }

    /** Runs a request {@link #submit} returned on this thread. */
    void runHere(Slot s) {
        run(s);
    }

    /** Whether a slot holds a flush (which may take long: the I/O thread leaves those to the workers). */
    static boolean isFlush(Slot s) {
        return s.kind == FLUSH;
    }

    private static void classify(Slot s, BlockRequest r) {
        switch (r) {
            case BlockRequest.Read x -> range(s, READ, x.sector(), x.length() / VirtioBlock.SECTOR);
            case BlockRequest.Write x -> range(s, WRITE, x.sector(), x.length() / VirtioBlock.SECTOR);
            case BlockRequest.Discard x -> ranges(s, x.ranges());
            case BlockRequest.WriteZeroes x -> ranges(s, x.ranges());
            default -> range(s, FLUSH, 0, 0); // flush; answered requests never come here
        }
    }

    private static void range(Slot s, int kind, long sector, long sectors) {
        s.kind = kind;
        s.first = sector;
        s.end = sector + sectors;
    }

    /** A discard or write-zeroes: a write over the span of its ranges (a superset, which only orders more). */
    private static void ranges(Slot s, java.util.List<BlockRequest.Range> ranges) {
        long first = Long.MAX_VALUE, end = 0;
        for (BlockRequest.Range r : ranges) {
            first = Math.min(first, r.sector());
            end = Math.max(end, r.sector() + r.sectors());
        }
        range(s, WRITE, first == Long.MAX_VALUE ? 0 : first, end - Math.min(first, end));
    }

    /** Whether {@code later} must wait for {@code earlier}, made available before it. */
    private static boolean dependsOn(Slot later, Slot earlier) {
        if (later.kind == FLUSH) return earlier.kind == WRITE;
        if (earlier.kind == FLUSH) return false;
        if (later.kind == READ && earlier.kind == READ) return false;
        return later.first < earlier.end && earlier.first < later.end;
    }

    private void run(Slot s) {
        int used;
        try {
            used = requests.execute(s.request, s.takenNanos);
        } catch (RuntimeException | Error e) { // a bug or an Error in the backend: the device stops, its work ends
            used = -1;
            try {
                context.broken("queue " + index, e);
            } catch (RuntimeException | Error ignored) {
                // the request is finished all the same, so that reset and quiesce do not wait for it forever
            }
        }
        finish(s, used);
    }

    /** {@code used}: the used length, or -1 for a request that is not returned (the device broke on it). */
    private void finish(Slot s, int used) {
        Slot[] ready = null;
        int readyCount = 0;
        boolean publish;
        lock.lock();
        try {
            pendingHeads[pending] = s.head;
            pendingLengths[pending] = used;
            pending++;
            s.request = null;
            long mask = 1L << s.bit;
            busy &= ~mask;
            for (long b = busy; b != 0; b &= b - 1) {
                Slot o = slots[Long.numberOfTrailingZeros(b)];
                if ((o.waitsOn & mask) == 0) continue;
                o.waitsOn &= ~mask;
                if (o.waitsOn == 0 && o.waiting) {
                    o.waiting = false;
                    if (ready == null) ready = new Slot[Long.bitCount(busy)];
                    ready[readyCount++] = o;
                }
            }
            publish = !publishing;
            publishing = true;
        } finally {
            lock.unlock();
        }
        for (int i = 0; i < readyCount; i++) executor.execute(ready[i]);
        if (publish) publish();
    }

    /** Moves finished requests into the used ring, a batch at a time, until none is left. */
    private void publish() {
        // Inside processQueue (requests run on the I/O thread) the transport signals once the queue is served.
        boolean signal = !Thread.holdsLock(queue);
        while (true) {
            int n;
            int[] heads, lengths;
            boolean kick = false;
            lock.lock();
            try {
                n = pending;
                if (n == 0) {
                    if (full && outstanding < cap) {
                        full = false;
                        kick = true;
                    } else {
                        publishing = false;
                        idle.signalAll();
                        return;
                    }
                }
                heads = pendingHeads;
                lengths = pendingLengths;
                pendingHeads = spareHeads;
                pendingLengths = spareLengths;
                spareHeads = heads;
                spareLengths = lengths;
                pending = 0;
            } finally {
                lock.unlock();
            }
            if (kick) { // still publishing, so a reset waits for this kick to be made
                context.kick();
                continue;
            }
            synchronized (queue) {
                for (int i = 0; i < n; i++) if (lengths[i] >= 0) queue.putUsed(heads[i], lengths[i]);
                queue.publishUsed();
                if (signal) context.signalUsed(index);
            }
            lock.lock();
            try {
                outstanding -= n;
            } finally {
                lock.unlock();
            }
        }
    }

    /** Waits until every request taken is finished and published. Not with the queue's monitor held. */
    void awaitIdle() {
        lock.lock();
        try {
            while (outstanding > 0 || publishing) idle.awaitUninterruptibly();
        } finally {
            lock.unlock();
        }
    }
}
