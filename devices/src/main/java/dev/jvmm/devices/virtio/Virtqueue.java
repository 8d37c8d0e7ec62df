package dev.jvmm.devices.virtio;

import static dev.jvmm.devices.virtio.VirtqueueException.Kind.*;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.devices.virtio.VirtqueueException.Kind;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * A split virtqueue (virtio 1.2, 2.7) seen from the device side. It knows nothing of transports or devices:
 * a transport fills in the driver's configuration (size and the three area addresses), {@link #activate}
 * checks the layout against guest RAM once and keeps bounded views of the rings, and a device then loops
 * over {@link #pop} and {@link #addUsed}.
 *
 * <p>The driver is not trusted. Every value read from the rings or descriptors is checked where it is read;
 * a violation raises {@link VirtqueueException} and leaves the queue {@link #isBroken() broken}, so the
 * device can enter DEVICE_NEEDS_RESET without touching the queue again.
 *
 * <p>Ordering: the available index is read, then an acquire fence keeps the ring and descriptor reads after
 * it; a release fence keeps the used element (and the data the device wrote) before the used index store;
 * a full fence separates publishing the used index (or avail_event) from reading the driver's suppression
 * fields, the store-load order both sides of the event-index protocol rely on.
 *
 * <p>Used by one thread at a time once active; configured by the transport before activation. The transport
 * services a queue holding its monitor, so a device that serves a queue from another thread as well (virtio-net
 * fills receive queues on its backend's thread) synchronizes on the queue too.
 */
public final class Virtqueue {
    public static final int MAX_SIZE = 32768;
    public static final int DESC_F_NEXT = 1, DESC_F_WRITE = 2, DESC_F_INDIRECT = 4;
    static final int AVAIL_F_NO_INTERRUPT = 1, USED_F_NO_NOTIFY = 1;
    private static final int DESC_SIZE = 16;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final int maxSize;

    // What the driver programmed through the transport.
    private int size;
    private long descAddress, driverAddress, deviceAddress;
    private boolean ready;

    // Set up by activate().
    private GuestMemory memory;
    private MemorySegment descTable, availRing, usedRing;
    private boolean eventIdx, indirectAllowed;
    private int nextAvail, nextUsed, lastSignalledUsed;
    private boolean signalledOnce;
    private boolean active, broken;

    /** A queue the device offers with at most {@code maxSize} entries (a power of two up to 32768). */
    public Virtqueue(int maxSize) {
        if (maxSize < 1 || maxSize > MAX_SIZE || Integer.bitCount(maxSize) != 1)
            throw new IllegalArgumentException(
                    "queue size " + maxSize + " must be a power of two from 1 to " + MAX_SIZE);
        this.maxSize = maxSize;
        this.size = maxSize;
    }

    public int maxSize() {
        return maxSize;
    }

    public int size() {
        return size;
    }

    /** The driver's queue size; any value is accepted here and checked at activation. */
    public void setSize(int size) {
        this.size = size;
    }

    public long descAddress() {
        return descAddress;
    }

    public void setDescAddress(long gpa) {
        descAddress = gpa;
    }

    public long driverAddress() {
        return driverAddress;
    }

    public void setDriverAddress(long gpa) {
        driverAddress = gpa;
    }

    public long deviceAddress() {
        return deviceAddress;
    }

    public void setDeviceAddress(long gpa) {
        deviceAddress = gpa;
    }

    public boolean isReady() {
        return ready;
    }

    public void setReady(boolean ready) {
        this.ready = ready;
    }

    public boolean isActive() {
        return active;
    }

    public boolean isBroken() {
        return broken;
    }

    /** Back to the state after device reset: the driver's configuration and all progress forgotten. */
    public void reset() {
        size = maxSize;
        descAddress = driverAddress = deviceAddress = 0;
        ready = false;
        memory = null;
        descTable = availRing = usedRing = null;
        nextAvail = nextUsed = lastSignalledUsed = 0;
        signalledOnce = false;
        active = broken = false;
    }

    /**
     * Checks the driver's layout (size a power of two within the maximum; areas aligned, inside RAM and not
     * overlapping) and starts serving the queue with the negotiated features.
     *
     * @throws VirtqueueException if the layout is unusable; the queue stays inactive
     */
    public void activate(GuestMemory memory, long features) {
        if (!ready) throw new IllegalStateException("queue is not ready");
        if (size < 1 || size > maxSize || Integer.bitCount(size) != 1)
            throw fail(BAD_QUEUE_SIZE, "queue size %d is not a power of two from 1 to %d", size, maxSize);
        long descLen = (long) DESC_SIZE * size, availLen = 6 + 2L * size, usedLen = 6 + 8L * size;
        checkArea("descriptor table", descAddress, descLen, 16, memory);
        checkArea("available ring", driverAddress, availLen, 2, memory);
        checkArea("used ring", deviceAddress, usedLen, 4, memory);
        checkApart("descriptor table", descAddress, descLen, "available ring", driverAddress, availLen);
        checkApart("used ring", deviceAddress, usedLen, "descriptor table", descAddress, descLen);
        checkApart("used ring", deviceAddress, usedLen, "available ring", driverAddress, availLen);
        this.memory = memory;
        this.descTable = memory.slice(descAddress, descLen);
        this.availRing = memory.slice(driverAddress, availLen);
        this.usedRing = memory.slice(deviceAddress, usedLen);
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX);
        this.indirectAllowed = VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
        // The driver zeroed the rings; the device starts from there (a re-activation after reset too).
        this.nextAvail = 0;
        this.nextUsed = 0;
        this.lastSignalledUsed = 0;
        this.signalledOnce = false;
        this.broken = false;
        this.active = true;
    }

    private static void checkArea(String what, long gpa, long len, int alignment, GuestMemory memory) {
        if ((gpa & (alignment - 1)) != 0)
            throw fail(RING_MISALIGNED, "%s at 0x%x is not %d-byte aligned", what, gpa, alignment);
        if (!memory.isValid(gpa, len))
            throw fail(RING_OUTSIDE_MEMORY, "%s at 0x%x+%d is outside guest RAM", what, gpa, len);
    }

    private static void checkApart(String what, long gpa, long len, String other, long otherGpa, long otherLen) {
        if (gpa < otherGpa + otherLen && otherGpa < gpa + len)
            throw fail(RINGS_OVERLAP, "%s 0x%x+%d overlaps %s 0x%x+%d", what, gpa, len, other, otherGpa, otherLen);
    }

    private static VirtqueueException fail(Kind kind, String format, Object... args) {
        return new VirtqueueException(kind, String.format(format, args));
    }

    private VirtqueueException broken(Kind kind, String format, Object... args) {
        broken = true;
        return fail(kind, format, args);
    }

    private int availIndex() {
        return availRing.get(U16, 2) & 0xffff;
    }

    /** True when the driver has made buffers available that the device has not taken yet. */
    public boolean hasAvailable() {
        if (!active || broken) return false;
        int avail = availIndex();
        VarHandle.acquireFence();
        return avail != nextAvail;
    }

    /**
     * Takes the next available descriptor chain into {@code chain}; false when there is none (or the queue
     * is inactive or broken).
     *
     * @throws VirtqueueException for a malformed ring or chain; the queue is broken afterwards
     */
    public boolean pop(DescriptorChain chain) {
        if (!active || broken) return false;
        int availIdx = availIndex();
        VarHandle.acquireFence();
        int pending = (availIdx - nextAvail) & 0xffff;
        if (pending == 0) return false;
        if (pending > size)
            throw broken(
                    AVAIL_INDEX_OUT_OF_RANGE,
                    "available index %d is %d entries ahead of the device (%d), more than the queue size %d",
                    availIdx,
                    pending,
                    nextAvail,
                    size);
        int head = availRing.get(U16, 4 + 2L * (nextAvail & (size - 1))) & 0xffff;
        nextAvail = (nextAvail + 1) & 0xffff;
        if (head >= size)
            throw broken(
                    HEAD_INDEX_OUT_OF_RANGE,
                    "available ring names head descriptor %d, beyond the queue size %d",
                    head,
                    size);
        if (chain.capacity() < maxSize)
            throw new IllegalArgumentException(
                    "chain holds " + chain.capacity() + " buffers, queue has up to " + maxSize);
        readChain(head, chain);
        return true;
    }

    private void readChain(int head, DescriptorChain chain) {
        chain.reset(head);
        // The table is read at tableOffset of table: the ring's own view, or an indirect table's RAM region (kept
        // as region and offset, as the buffers are, so that taking a chain allocates nothing).
        MemorySegment table = descTable;
        long tableOffset = 0;
        int tableSize = size;
        boolean indirect = false;
        int index = head;
        int steps = 0; // descriptors visited in the current table: more than it holds means a loop
        int buffers = 0;
        long total = 0;
        while (true) {
            if (index >= tableSize)
                throw broken(
                        NEXT_INDEX_OUT_OF_RANGE,
                        "chain %d: next index %d is beyond the %s table of %d",
                        head,
                        index,
                        indirect ? "indirect" : "descriptor",
                        tableSize);
            if (++steps > tableSize)
                throw broken(
                        DESCRIPTOR_LOOP, "chain %d: longer than its table of %d descriptors (a loop)", head, tableSize);
            long off = tableOffset + (long) index * DESC_SIZE;
            long addr = table.get(U64, off);
            long len = table.get(U32, off + 8) & 0xffffffffL;
            int flags = table.get(U16, off + 12) & 0xffff;
            int next = table.get(U16, off + 14) & 0xffff;
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirectAllowed)
                    throw broken(
                            INDIRECT_NOT_NEGOTIATED,
                            "chain %d: indirect descriptor without VIRTIO_F_INDIRECT_DESC",
                            head);
                if (indirect)
                    throw broken(INDIRECT_NESTED, "chain %d: indirect descriptor inside an indirect table", head);
                if ((flags & DESC_F_NEXT) != 0)
                    throw broken(INDIRECT_WITH_NEXT, "chain %d: descriptor has both INDIRECT and NEXT", head);
                if (len == 0 || len % DESC_SIZE != 0)
                    throw broken(
                            INDIRECT_TABLE_BAD_LENGTH,
                            "chain %d: indirect table length %d is not a positive multiple of 16",
                            head,
                            len);
                // The spec bounds chains by the queue size; drivers size indirect tables by seg_max, which the
                // device derives from its maximum queue size, so that is the bound applied.
                if (len / DESC_SIZE > maxSize)
                    throw broken(
                            INDIRECT_TABLE_TOO_LONG,
                            "chain %d: indirect table of %d descriptors is longer than the queue size %d",
                            head,
                            len / DESC_SIZE,
                            maxSize);
                MemoryRegion region = memory.regionContaining(addr, len);
                if (region == null)
                    throw broken(
                            INDIRECT_TABLE_OUTSIDE_MEMORY,
                            "chain %d: indirect table at 0x%x+%d is outside guest RAM",
                            head,
                            addr,
                            len);
                table = region.host();
                tableOffset = addr - region.guestBase();
                tableSize = (int) (len / DESC_SIZE);
                indirect = true;
                index = 0;
                steps = 0;
                continue;
            }
            boolean writable = (flags & DESC_F_WRITE) != 0;
            if (!writable && chain.hasWritable())
                throw broken(
                        READABLE_AFTER_WRITABLE, "chain %d: device-readable buffer after a device-writable one", head);
            if (++buffers > maxSize)
                throw broken(CHAIN_TOO_LONG, "chain %d: more than %d buffers, longer than the queue", head, maxSize);
            total += len;
            if (total > 0xffffffffL) throw broken(CHAIN_TOO_LARGE, "chain %d: more than 4 GiB in total", head);
            MemoryRegion region = memory.regionContaining(addr, len);
            if (region == null)
                throw broken(
                        BUFFER_OUTSIDE_MEMORY, "chain %d: buffer at 0x%x+%d is outside guest RAM", head, addr, len);
            chain.add(region.host(), addr - region.guestBase(), len, writable);
            if ((flags & DESC_F_NEXT) == 0) return;
            index = next;
        }
    }

    /**
     * Gives back the last {@code count} chains {@link #pop} took, none of them used yet: the next pops return
     * them again (re-read and re-checked). For a device that finds it cannot finish with them now, e.g. the
     * receive buffers popped for a frame that turns out not to fit.
     */
    public void unpop(int count) {
        if (count < 0 || count > size)
            throw new IllegalArgumentException("cannot unpop " + count + " chains of a queue of " + size);
        nextAvail = (nextAvail - count) & 0xffff;
    }

    /** Returns a chain to the driver with {@code written} bytes written into its device-writable part. */
    public void addUsed(int head, int written) {
        putUsed(head, written);
        publishUsed();
    }

    /**
     * Writes a used element without publishing it: the driver sees it, with those before it, at the next
     * {@link #publishUsed}. For chains that must reach the driver together (a frame over merged buffers).
     */
    public void putUsed(int head, int written) {
        if (!active) throw new IllegalStateException("queue is not active");
        long slot = 4 + 8L * (nextUsed & (size - 1));
        usedRing.set(U32, slot, head);
        usedRing.set(U32, slot + 4, written);
        nextUsed = (nextUsed + 1) & 0xffff;
    }

    /** Publishes the used elements written so far (the used index). */
    public void publishUsed() {
        if (!active) throw new IllegalStateException("queue is not active");
        // The elements and the buffers' contents must be visible before the index that publishes them.
        VarHandle.releaseFence();
        usedRing.set(U16, 2, (short) nextUsed);
    }

    /**
     * Whether the driver wants a used-buffer notification for what was added since the last time this
     * returned true (VIRTIO_F_EVENT_IDX's used_event, or the NO_INTERRUPT flag).
     */
    public boolean needsNotification() {
        if (!active || broken) return false;
        VarHandle.fullFence();
        int old = lastSignalledUsed;
        boolean first = !signalledOnce;
        if (old == nextUsed) return false; // nothing used since the last decision
        boolean notify;
        if (eventIdx) {
            int usedEvent = availRing.get(U16, 4 + 2L * size) & 0xffff;
            // vring_need_event: the driver asked to hear once used idx passes used_event.
            notify = first || ((nextUsed - usedEvent - 1) & 0xffff) < ((nextUsed - old) & 0xffff);
        } else {
            notify = (availRing.get(U16, 0) & AVAIL_F_NO_INTERRUPT) == 0;
        }
        lastSignalledUsed = nextUsed;
        signalledOnce = true;
        return notify;
    }

    /** Asks the driver not to notify while the device is busy with the queue anyway. */
    public void disableNotification() {
        if (!active || broken || eventIdx) return;
        usedRing.set(U16, 0, (short) USED_F_NO_NOTIFY);
    }

    /**
     * Asks the driver to notify on the next buffer, then looks once more: true when buffers arrived
     * meanwhile (the caller processes them instead of sleeping, so no notification is lost).
     */
    public boolean enableNotification() {
        if (!active || broken) return false;
        if (eventIdx) usedRing.set(U16, 4 + 8L * size, (short) nextAvail);
        else usedRing.set(U16, 0, (short) 0);
        VarHandle.fullFence();
        return availIndex() != nextAvail;
    }

    // ---- snapshots

    /** The driver's configuration and the device's position in the rings (used by the transport's state). */
    public void saveState(dev.jvmm.core.snapshot.StateOutput out) {
        out.u16(size).u64(descAddress).u64(driverAddress).u64(deviceAddress).bool(ready);
        out.bool(active)
                .bool(broken)
                .u16(nextAvail)
                .u16(nextUsed)
                .u16(lastSignalledUsed)
                .bool(signalledOnce);
    }

    /**
     * Loads what {@link #saveState} wrote into a queue just reset. An active queue is activated again with
     * {@code features} (its layout checked against {@code memory} as at first activation) and then resumes at the
     * saved position, so no chain is taken or used twice.
     */
    public void restoreState(dev.jvmm.core.snapshot.StateInput in, GuestMemory memory, long features) {
        int nSize = in.u16("queue size");
        long desc = in.u64("descriptor table"), driver = in.u64("driver area"), device = in.u64("device area");
        boolean nReady = in.bool("queue ready"), nActive = in.bool("queue active"), nBroken = in.bool("queue broken");
        int avail = in.u16("next available"), used = in.u16("next used"), signalled = in.u16("last signalled used");
        boolean once = in.bool("signalled once");
        reset();
        size = nSize;
        descAddress = desc;
        driverAddress = driver;
        deviceAddress = device;
        ready = nReady;
        if (!nActive) return;
        if (!nReady)
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT,
                    in.where() + ": a queue active but not ready");
        try {
            activate(memory, features);
        } catch (VirtqueueException e) {
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT,
                    in.where() + ": the saved queue layout does not fit the restored memory: " + e.getMessage());
        }
        nextAvail = avail;
        nextUsed = used;
        lastSignalledUsed = signalled;
        signalledOnce = once;
        broken = nBroken;
    }

    /** The device's next used index (for tests and diagnostics). */
    public int nextUsed() {
        return nextUsed;
    }

    public int nextAvail() {
        return nextAvail;
    }
}
