package dev.jvmm.bench;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.virtio.net.VirtioNet;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.List;

/**
 * A guest's virtio-net driver in Java, for benchmarks of the device: split rings and fixed 2 KiB buffers in a
 * guest RAM of its own, the device on virtio-mmio, interrupts that wake the driver thread. One descriptor per
 * frame (vnet header and frame together, as VERSION_1 allows); the driver writes frames straight into its tx
 * buffers, so what the benchmark times is the device and its backend, not the mock. Transmit buffers may be
 * larger than 2 KiB (64 KiB and more for TSO frames), and receive buffers too (mergeable for larger frames).
 */
final class NetGuest implements AutoCloseable {
    static final int QUEUE = 1024, BUF = 2048, HDR = VirtioNet.HEADER; // QUEUE: the device's default size
    static final long RAM_BASE = 0x10000;

    final Arena arena = Arena.ofShared();
    final MemorySegment ram;
    final VirtioNet device;
    private final MmioDriver driver;
    final Ring rx, tx;

    /** The driver side of one split virtqueue with a 2 KiB buffer per descriptor. */
    final class Ring {
        final int index, bufSize;
        final long desc, avail, used, buffers;
        private int availIdx, lastUsed;
        private final int[] free = new int[QUEUE];
        private final MemorySegment[] views = new MemorySegment[QUEUE];
        private int freeCount;

        Ring(int index, long at, int bufSize) {
            this.index = index;
            this.bufSize = bufSize;
            desc = at;
            avail = desc + 16L * QUEUE;
            used = (avail + 6 + 2L * QUEUE + 3) & ~3L;
            buffers = (used + 6 + 8L * QUEUE + 4095) & ~4095L;
            for (int i = 0; i < QUEUE; i++) free[freeCount++] = QUEUE - 1 - i;
        }

        long end() {
            return buffers + (long) bufSize * QUEUE;
        }

        /** Guest address of descriptor {@code id}'s buffer. */
        long buffer(int id) {
            return buffers + (long) id * bufSize;
        }

        /** Descriptor {@code id}'s buffer; the views are made once, so the driver allocates nothing per frame. */
        MemorySegment bytes(int id) {
            MemorySegment v = views[id];
            if (v == null) views[id] = v = ram.asSlice(buffer(id) - RAM_BASE, bufSize);
            return v;
        }

        int freeCount() {
            return freeCount;
        }

        /** Takes a free descriptor; the caller fills its buffer and {@link #offer}s it. */
        int take() {
            return free[--freeCount];
        }

        void offer(int id, int length, boolean deviceWrites) {
            long d = desc - RAM_BASE + 16L * id;
            ram.set(JAVA_LONG_UNALIGNED, d, buffer(id));
            ram.set(JAVA_INT_UNALIGNED, d + 8, length);
            ram.set(JAVA_SHORT_UNALIGNED, d + 12, (short) (deviceWrites ? 2 : 0));
            ram.set(JAVA_SHORT_UNALIGNED, avail - RAM_BASE + 4 + 2L * (availIdx % QUEUE), (short) id);
            availIdx = (availIdx + 1) & 0xffff;
        }

        /** Makes offered descriptors visible, then notifies unless the device said it is busy anyway. */
        void publish() {
            VarHandle.releaseFence();
            ram.set(JAVA_SHORT_UNALIGNED, avail - RAM_BASE + 2, (short) availIdx);
            VarHandle.fullFence();
            if ((ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE) & 1) == 0) driver.notify(index);
        }

        /** The next used descriptor's id and length as {@code id << 32 | len}, or -1 if none. */
        long poll() {
            int usedIdx = ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE + 2) & 0xffff;
            if (usedIdx == lastUsed) return -1;
            VarHandle.acquireFence();
            long e = used - RAM_BASE + 4 + 8L * (lastUsed % QUEUE);
            int id = ram.get(JAVA_INT_UNALIGNED, e), len = ram.get(JAVA_INT_UNALIGNED, e + 4);
            lastUsed = (lastUsed + 1) & 0xffff;
            if (id < 0 || id >= QUEUE) throw new IllegalStateException("device returned descriptor " + id);
            return ((long) id << 32) | (len & 0xffffffffL);
        }

        void release(int id) {
            free[freeCount++] = id;
        }

        /** VRING_AVAIL_F_NO_INTERRUPT: the driver is polling and needs no interrupt for what the device uses. */
        void interrupts(boolean on) {
            ram.set(JAVA_SHORT_UNALIGNED, avail - RAM_BASE, (short) (on ? 0 : 1));
        }

        boolean nothingUsed() {
            return (ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE + 2) & 0xffff) == lastUsed;
        }
    }

    NetGuest(NetBackend backend, long features) {
        this(backend, features, BUF, BUF);
    }

    /**
     * With transmit buffers of {@code txBuf} bytes each (a TSO frame's header and up to 64 KiB of payload), and
     * receive buffers of {@code rxBuf} (Linux's mergeable buffers grow to a page for bulk transfers).
     */
    NetGuest(NetBackend backend, long features, int txBuf, int rxBuf) {
        ram = arena.allocate(2L * (1 << 20) + (long) QUEUE * (rxBuf + txBuf), 4096);
        GuestMemory memory = GuestMemory.wrap(List.of(new MemoryRegion(RAM_BASE, ram)));
        device = new VirtioNet(backend, VirtioNet.Options.of(new MacAddress(0x525400123456L)));
        driver = new MmioDriver("bench-net", device, memory, features);
        rx = new Ring(0, RAM_BASE, rxBuf);
        tx = new Ring(1, rx.end(), txBuf);
        for (Ring r : List.of(rx, tx)) driver.queue(r.index, QUEUE, r.desc, r.avail, r.used);
        driver.driverOk();
        while (rx.freeCount() > 0) rx.offer(rx.take(), rxBuf, true);
        rx.publish();
    }

    /**
     * Sleeps until the device interrupts (or {@code micros} pass), then acknowledges the interrupt. As Linux's
     * NAPI, interrupts are on only while the driver sleeps: while it works through its rings it polls them.
     */
    void awaitInterrupt(long micros) {
        rx.interrupts(true);
        tx.interrupts(true);
        VarHandle.fullFence();
        driver.awaitInterrupt(micros, idle);
        rx.interrupts(false);
        tx.interrupts(false);
    }

    private final java.util.function.BooleanSupplier idle = this::nothingUsed;

    private boolean nothingUsed() {
        return rx.nothingUsed() && tx.nothingUsed();
    }

    @Override
    public void close() {
        driver.close();
        arena.close();
    }
}
