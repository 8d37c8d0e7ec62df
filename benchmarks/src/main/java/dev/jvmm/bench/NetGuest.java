package dev.jvmm.bench;

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
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;
import dev.jvmm.devices.virtio.net.VirtioNet;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * A guest's virtio-net driver in Java, for benchmarks of the device: split rings and fixed 2 KiB buffers in a
 * guest RAM of its own, the device on virtio-mmio, interrupts that wake the driver thread. One descriptor per
 * frame (vnet header and frame together, as VERSION_1 allows); the driver writes frames straight into its tx
 * buffers, so what the benchmark times is the device and its backend, not the mock.
 */
final class NetGuest implements AutoCloseable {
    static final int QUEUE = 256, BUF = 2048, HDR = VirtioNet.HEADER;
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

    final Arena arena = Arena.ofShared();
    final MemorySegment ram;
    final VirtioNet device;
    private final Bus bus = new Bus("mmio");
    private final VirtioMmioTransport transport;
    final Ring rx, tx;
    private volatile Thread waiter;
    /** The device's only interrupt wakes the driver thread, which polls the used rings. */
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

    /** The driver side of one split virtqueue with a 2 KiB buffer per descriptor. */
    final class Ring {
        final int index;
        final long desc, avail, used, buffers;
        private int availIdx, lastUsed;
        private final int[] free = new int[QUEUE];
        private int freeCount;

        Ring(int index, long at) {
            this.index = index;
            desc = at;
            avail = desc + 16L * QUEUE;
            used = (avail + 6 + 2L * QUEUE + 3) & ~3L;
            buffers = (used + 6 + 8L * QUEUE + 4095) & ~4095L;
            for (int i = 0; i < QUEUE; i++) free[freeCount++] = QUEUE - 1 - i;
        }

        long end() {
            return buffers + (long) BUF * QUEUE;
        }

        /** Guest address of descriptor {@code id}'s buffer. */
        long buffer(int id) {
            return buffers + (long) id * BUF;
        }

        MemorySegment bytes(int id) {
            return ram.asSlice(buffer(id) - RAM_BASE, BUF);
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
            if ((ram.get(JAVA_SHORT_UNALIGNED, used - RAM_BASE) & 1) == 0) bus.write(MMIO_BASE + REG_NOTIFY, 4, index);
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
    }

    NetGuest(NetBackend backend, long features) {
        ram = arena.allocate(4L << 20, 4096);
        GuestMemory memory = GuestMemory.wrap(List.of(new MemoryRegion(RAM_BASE, ram)));
        device = new VirtioNet(backend, VirtioNet.Options.of(new MacAddress(0x525400123456L)));
        transport = new VirtioMmioTransport("bench-net", device, memory, irqs, 5, Trigger.EDGE);
        bus.register("bench-net", MMIO_BASE, VirtioMmioTransport.WINDOW_SIZE, transport);
        rx = new Ring(0, RAM_BASE);
        tx = new Ring(1, rx.end());
        reg(REG_STATUS, 0);
        reg(REG_STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        long accepted = features | VirtioFeatures.bit(VirtioFeatures.VERSION_1);
        reg(REG_DRV_FEATURES_SEL, 0);
        reg(REG_DRV_FEATURES, (int) accepted);
        reg(REG_DRV_FEATURES_SEL, 1);
        reg(REG_DRV_FEATURES, (int) (accepted >>> 32));
        reg(REG_STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        if ((reg(REG_STATUS) & DeviceStatus.FEATURES_OK) == 0)
            throw new IllegalStateException("device refused features 0x" + Long.toHexString(accepted));
        for (Ring r : List.of(rx, tx)) {
            reg(REG_QUEUE_SEL, r.index);
            reg(REG_QUEUE_NUM, QUEUE);
            int[] offsets = {0x080, 0x090, 0x0a0};
            long[] addrs = {r.desc, r.avail, r.used};
            for (int i = 0; i < 3; i++) {
                reg(offsets[i], (int) addrs[i]);
                reg(offsets[i] + 4, (int) (addrs[i] >>> 32));
            }
            reg(REG_QUEUE_READY, 1);
        }
        reg(
                REG_STATUS,
                DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
        while (rx.freeCount() > 0) rx.offer(rx.take(), BUF, true);
        rx.publish();
    }

    int reg(int offset) {
        return (int) bus.read(MMIO_BASE + offset, 4);
    }

    void reg(int offset, int value) {
        bus.write(MMIO_BASE + offset, 4, value & 0xffffffffL);
    }

    /** Sleeps until the device interrupts (or {@code micros} pass), then acknowledges the interrupt. */
    void awaitInterrupt(long micros) {
        waiter = Thread.currentThread();
        int s = reg(REG_INT_STATUS);
        if (s == 0) LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(micros));
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
