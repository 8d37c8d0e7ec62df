package dev.jvmm.bench;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.irq.InterruptEvent;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * A guest's virtio-blk driver in Java, for benchmarks of the device: one split ring of 256 in a guest RAM of its own,
 * the device on virtio-mmio with its I/O threads and the backend as {@code jvmm run --disk} has them, and an interrupt
 * that wakes the driver thread. A request is three descriptors (header, data, status) with its own buffers, so the
 * driver only rewrites the header's type and sector before making it available again; what is timed is the device,
 * its I/O threads and its backend.
 */
final class BlkGuest implements AutoCloseable {
    static final int QUEUE = 256, MAX_DEPTH = QUEUE / 3;
    static final long RAM_BASE = 0x10000, MMIO_BASE = 0xd000_0000L;
    private static final int REG_STATUS = 0x070,
            REG_QUEUE_SEL = 0x030,
            REG_QUEUE_NUM = 0x038,
            REG_QUEUE_READY = 0x044,
            REG_NOTIFY = 0x050,
            REG_INT_STATUS = 0x060,
            REG_INT_ACK = 0x064,
            REG_DRV_FEATURES = 0x020,
            REG_DRV_FEATURES_SEL = 0x024;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment ram;
    private final Bus bus = new Bus("mmio");
    private final VirtioMmioTransport transport;
    private final long desc, avail, used, headers, statuses, buffers;
    private final int block;
    private int availIdx, lastUsed;
    private volatile Thread waiter;

    private final InterruptController irqs = new InterruptController() {
        @Override
        public InterruptEvent event(int gsi, Trigger trigger, BooleanSupplier pending) {
            return new InterruptEvent() {
                @Override
                public void trigger() {
                    Thread t = waiter;
                    if (t != null) LockSupport.unpark(t);
                }

                @Override
                public void close() {}
            };
        }

        @Override
        public IrqLine line(int gsi) {
            throw new UnsupportedOperationException();
        }

        @Override
        public MsiRoute msiRoute() {
            throw new UnsupportedOperationException();
        }

        @Override
        public void signalMsi(long address, int data) {
            throw new UnsupportedOperationException();
        }
    };

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
        transport = new VirtioMmioTransport("bench-blk", device, memory, irqs, 5, Trigger.EDGE);
        bus.register("bench-blk", MMIO_BASE, VirtioMmioTransport.WINDOW_SIZE, transport);
        reg(REG_STATUS, 0);
        reg(REG_STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        long accepted = VirtioFeatures.bit(VirtioFeatures.VERSION_1) | (1L << VirtioBlock.F_FLUSH);
        reg(REG_DRV_FEATURES_SEL, 0);
        reg(REG_DRV_FEATURES, (int) accepted);
        reg(REG_DRV_FEATURES_SEL, 1);
        reg(REG_DRV_FEATURES, (int) (accepted >>> 32));
        reg(REG_STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        if ((reg(REG_STATUS) & DeviceStatus.FEATURES_OK) == 0)
            throw new IllegalStateException("device refused features 0x" + Long.toHexString(accepted));
        reg(REG_QUEUE_SEL, 0);
        reg(REG_QUEUE_NUM, QUEUE);
        int[] offsets = {0x080, 0x090, 0x0a0};
        long[] addrs = {desc, avail, used};
        for (int i = 0; i < 3; i++) {
            reg(offsets[i], (int) addrs[i]);
            reg(offsets[i] + 4, (int) (addrs[i] >>> 32));
        }
        reg(REG_QUEUE_READY, 1);
        reg(
                REG_STATUS,
                DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
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
        if ((ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE) & 1) == 0) bus.write(MMIO_BASE + REG_NOTIFY, 4, 0);
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

    private int reg(int offset) {
        return (int) bus.read(MMIO_BASE + offset, 4);
    }

    private void reg(int offset, int value) {
        bus.write(MMIO_BASE + offset, 4, value & 0xffffffffL);
    }

    /** Sleeps until the device interrupts (or {@code micros} pass), then acknowledges the interrupt. */
    private void awaitInterrupt(long micros) {
        waiter = Thread.currentThread();
        int s = reg(REG_INT_STATUS);
        if (s == 0 && lastUsed == (ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE + 2) & 0xffff))
            LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(micros));
        s = reg(REG_INT_STATUS);
        if (s != 0) reg(REG_INT_ACK, s);
    }

    @Override
    public void close() {
        reg(REG_STATUS, 0);
        transport.close();
        arena.close();
    }
}
