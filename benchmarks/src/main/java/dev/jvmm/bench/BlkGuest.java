package dev.jvmm.bench;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.List;

/**
 * A guest's virtio-blk driver in Java, for benchmarks of the device: one split ring of 256 in a guest RAM of its own,
 * the device on virtio-mmio with its I/O threads and the backend as {@code jvmm run --disk} has them, and an interrupt
 * that wakes the driver thread. A request is three descriptors (header, data, status) with its own buffers, so the
 * driver only rewrites the header's type and sector before making it available again; what is timed is the device,
 * its I/O threads and its backend.
 */
final class BlkGuest implements AutoCloseable {
    static final int QUEUE = 256, MAX_DEPTH = QUEUE / 3;
    static final long RAM_BASE = 0x10000;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment ram;
    private final MmioDriver driver;
    private final long desc, avail, used, headers, statuses, buffers;
    private final int block;
    private int availIdx, lastUsed;

    /** A driver for {@code backend} with requests of {@code block} bytes. */
    BlkGuest(BlockBackend backend, int block) {
        this.block = block;
        desc = RAM_BASE;
        avail = desc + 16L * QUEUE;
        used = (avail + 6 + 2L * QUEUE + 3) & ~3L;
        headers = (used + 6 + 8L * QUEUE + 4095) & ~4095L;
        statuses = headers + 16L * MAX_DEPTH;
        buffers = (statuses + MAX_DEPTH + 4095) & ~4095L;
        long size = buffers + (long) block * MAX_DEPTH - RAM_BASE;
        ram = arena.allocate(size, 4096);
        GuestMemory memory = GuestMemory.wrap(List.of(new MemoryRegion(RAM_BASE, ram)));
        VirtioBlock device = new VirtioBlock(backend, VirtioBlock.Options.DEFAULT);
        driver = new MmioDriver("bench-blk", device, memory, 1L << VirtioBlock.F_FLUSH);
        driver.queue(0, QUEUE, desc, avail, used);
        driver.driverOk();
        for (int slot = 0; slot < MAX_DEPTH; slot++) { // each slot's chain, written once
            descriptor(3 * slot, headers + 16L * slot, 16, 1, 3 * slot + 1);
            descriptor(3 * slot + 1, buffers + (long) block * slot, block, 1, 3 * slot + 2);
            descriptor(3 * slot + 2, statuses + slot, 1, 2, 0);
        }
        ram.asSlice(buffers - RAM_BASE, (long) block * MAX_DEPTH).fill((byte) 0x5a);
    }

    private void descriptor(int i, long addr, int len, int flags, int next) {
        long d = desc - RAM_BASE + 16L * i;
        ram.set(JAVA_LONG_UNALIGNED, d, addr);
        ram.set(JAVA_INT_UNALIGNED, d + 8, len);
        ram.set(JAVA_SHORT_UNALIGNED, d + 12, (short) flags);
        ram.set(JAVA_SHORT_UNALIGNED, d + 14, (short) next);
    }

    /**
     * Runs {@code count} requests of the block size, {@code depth} in flight, at offsets (i * step) mod size as
     * qemu-img bench and blkfloor visit them; returns the nanoseconds they took.
     */
    long run(boolean write, int depth, long step, long size, long count) {
        if (depth < 1 || depth > MAX_DEPTH) throw new IllegalArgumentException("depth " + depth);
        long offset = 0, submitted = 0, completed = 0;
        long t0 = System.nanoTime();
        for (int slot = 0; slot < depth && submitted < count; slot++, submitted++) {
            offer(slot, write, offset);
            offset = next(offset, step, size);
        }
        publish();
        while (completed < count) {
            boolean offered = false;
            for (long e; (e = poll()) >= 0; ) {
                int slot = (int) (e >>> 32) / 3;
                int status = ram.get(JAVA_BYTE, statuses - RAM_BASE + slot);
                if (status != VirtioBlock.S_OK) throw new IllegalStateException("request failed with status " + status);
                completed++;
                if (submitted < count) {
                    offer(slot, write, offset);
                    offset = next(offset, step, size);
                    submitted++;
                    offered = true;
                }
            }
            if (offered) publish();
            else if (completed < count) awaitInterrupt(200);
        }
        return System.nanoTime() - t0;
    }

    private long next(long offset, long step, long size) {
        offset = (offset + step) % size;
        return offset + block > size ? 0 : offset;
    }

    private void offer(int slot, boolean write, long offset) {
        long h = headers - RAM_BASE + 16L * slot;
        ram.set(JAVA_INT_UNALIGNED, h, write ? VirtioBlock.T_OUT : VirtioBlock.T_IN);
        ram.set(JAVA_LONG_UNALIGNED, h + 8, offset / VirtioBlock.SECTOR);
        ram.set(JAVA_SHORT_UNALIGNED, desc - RAM_BASE + 16L * (3 * slot + 1) + 12, (short) (write ? 1 : 3));
        ram.set(JAVA_BYTE, statuses - RAM_BASE + slot, (byte) 0x7f);
        ram.set(JAVA_SHORT_UNALIGNED, avail - RAM_BASE + 4 + 2L * (availIdx % QUEUE), (short) (3 * slot));
        availIdx = (availIdx + 1) & 0xffff;
    }

    /** Makes offered requests visible, then notifies unless the device said it is busy with the queue anyway. */
    private void publish() {
        VarHandle.releaseFence();
        ram.set(JAVA_SHORT_UNALIGNED, avail - RAM_BASE + 2, (short) availIdx);
        VarHandle.fullFence();
        if ((ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE) & 1) == 0) driver.notify(0);
    }

    /** The next used element's id and length as {@code id << 32 | len}, or -1 if none. */
    private long poll() {
        int usedIdx = ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE + 2) & 0xffff;
        if (usedIdx == lastUsed) return -1;
        VarHandle.acquireFence();
        long e = used - RAM_BASE + 4 + 8L * (lastUsed % QUEUE);
        int id = ram.get(JAVA_INT_UNALIGNED, e), len = ram.get(JAVA_INT_UNALIGNED, e + 4);
        lastUsed = (lastUsed + 1) & 0xffff;
        if (id < 0 || id >= QUEUE || id % 3 != 0) throw new IllegalStateException("device returned descriptor " + id);
        return ((long) id << 32) | (len & 0xffffffffL);
    }

    /** Sleeps until the device interrupts (or {@code micros} pass) unless a completion is there already. */
    private void awaitInterrupt(long micros) {
        driver.awaitInterrupt(micros, () -> lastUsed == (ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE + 2) & 0xffff));
    }

    @Override
    public void close() {
        driver.close();
        arena.close();
    }
}
