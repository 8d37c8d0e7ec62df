package dev.jvmm.devices.virtio;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import dev.jvmm.devices.Threads;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every virtio transport shares: the device status state machine, feature negotiation, the queues'
 * configuration, and the device's I/O thread. Subclasses map registers (virtio-mmio, virtio-pci) onto these
 * and deliver interrupts their own way.
 *
 * <p>Notifications: all of a device's queues share one eventfd. KVM signals it directly for a guest write
 * to a notify address registered as an ioeventfd; a notify write that reaches the bus (no ioeventfd, unit
 * tests) signals it from the vCPU thread. The I/O thread blocks on it and then services every queue with
 * available buffers, so a notification costs the vCPU no device work.
 *
 * <p>Locking: register accesses (vCPU threads) synchronize on this object; the I/O thread never takes that
 * lock (status is atomic and interrupts have their own), so a reset may join the I/O thread while holding it.
 */
public abstract class VirtioTransport implements AutoCloseable, Snapshottable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioTransport.class);

    protected final VirtioDevice device;
    protected final GuestMemory memory;
    protected final Virtqueue[] queues;
    private final String name;
    private final EventFd notifyEvent = new EventFd(false);
    private final AtomicInteger status = new AtomicInteger();
    private final AtomicInteger configGeneration = new AtomicInteger();
    private long driverFeatures;
    private long negotiatedFeatures;
    private Thread ioThread;
    private volatile boolean running;
    private volatile boolean closed;
    private final java.util.concurrent.atomic.LongAdder busNotifications = new java.util.concurrent.atomic.LongAdder();
    private volatile Consumer<String> brokenListener = name -> {};
    /** Held by the I/O thread while it services the queues, and by a snapshot to keep it from them. */
    private final java.util.concurrent.locks.ReentrantLock serviceLock = new java.util.concurrent.locks.ReentrantLock();

    private final VirtioDevice.Context context = new VirtioDevice.Context() {
        @Override
        public void signalUsed(int queueIndex) {
            if (queueIndex >= 0 && queueIndex < queues.length && queues[queueIndex].needsNotification())
                raiseQueueInterrupt(queueIndex);
        }

        @Override
        public void configChanged() {
            configGeneration.incrementAndGet();
            raiseConfigInterrupt();
        }

        @Override
        public void fail(String reason) {
            VirtioTransport.this.fail(reason);
        }

        @Override
        public void broken(String where, Throwable cause) {
            VirtioTransport.this.broken(where, cause);
        }

        @Override
        public void kick() {
            if (!closed) notifyEvent.signal();
        }
    };

    protected VirtioTransport(String name, VirtioDevice device, GuestMemory memory) {
        if (!VirtioFeatures.has(device.deviceFeatures(), VirtioFeatures.VERSION_1))
            throw new IllegalArgumentException(name + ": device must offer VIRTIO_F_VERSION_1");
        this.name = name;
        this.device = device;
        this.memory = memory;
        int[] sizes = device.queueMaxSizes();
        this.queues = new Virtqueue[sizes.length];
        for (int i = 0; i < sizes.length; i++) queues[i] = new Virtqueue(sizes[i]);
    }

    public String name() {
        return name;
    }

    public VirtioDevice device() {
        return device;
    }

    /** The eventfd a queue notification signals; register it as an ioeventfd on the notify address(es). */
    public EventFd notifyEvent() {
        return notifyEvent;
    }

    /** A notify write that reached the bus: wake the I/O thread. */
    protected void notifyFromBus() {
        busNotifications.increment();
        if (!closed) notifyEvent.signal();
    }

    /** Queue notifications that came through the bus (a vCPU exit each), not through an ioeventfd. */
    public long busNotifications() {
        return busNotifications.sum();
    }

    public int status() {
        return status.get();
    }

    public int configGeneration() {
        return configGeneration.get() & 0xff;
    }

    protected long deviceFeatures() {
        return device.deviceFeatures();
    }

    /** 32 bits of the offered features, {@code select}*32 upwards (0 beyond 63). */
    protected int deviceFeatureWord(int select) {
        if (select < 0 || select > 1) return 0;
        return (int) (device.deviceFeatures() >>> (32 * select));
    }

    protected synchronized int driverFeatureWord(int select) {
        if (select < 0 || select > 1) return 0;
        return (int) (driverFeatures >>> (32 * select));
    }

    /** The driver accepts features; ignored once FEATURES_OK is set (negotiation is over). */
    protected synchronized void setDriverFeatureWord(int select, int value) {
        if (select < 0 || select > 1 || (status.get() & DeviceStatus.FEATURES_OK) != 0) return;
        long mask = 0xffffffffL << (32 * select);
        driverFeatures = (driverFeatures & ~mask) | (((long) value & 0xffffffffL) << (32 * select));
    }

    public synchronized long negotiatedFeatures() {
        return negotiatedFeatures;
    }

    /** The queue the driver selected, or null if the selector is beyond the device's queues. */
    protected Virtqueue queue(int index) {
        return index >= 0 && index < queues.length ? queues[index] : null;
    }

    /** Whether the driver may still change queue configuration (before DRIVER_OK). */
    protected boolean queueConfigWritable(Virtqueue q) {
        return q != null && !q.isReady() && (status.get() & DeviceStatus.DRIVER_OK) == 0;
    }

    /** The driver writes the status register: 0 resets, otherwise the driver's progress. */
    protected synchronized void writeStatus(int value) {
        value &= 0xff;
        if (value == 0) {
            reset();
            return;
        }
        int old = status.get();
        int next = (value & ~DeviceStatus.DEVICE_NEEDS_RESET) | (old & DeviceStatus.DEVICE_NEEDS_RESET);
        if ((next & DeviceStatus.FEATURES_OK) != 0 && (old & DeviceStatus.FEATURES_OK) == 0) {
            long offered = device.deviceFeatures();
            if ((driverFeatures & ~offered) != 0 || !VirtioFeatures.has(driverFeatures, VirtioFeatures.VERSION_1)) {
                LOG.warn(
                        "{}: driver accepted features 0x{} of 0x{} (needs VERSION_1, nothing unoffered);"
                                + " FEATURES_OK refused",
                        name,
                        Long.toHexString(driverFeatures),
                        Long.toHexString(offered));
                next &= ~DeviceStatus.FEATURES_OK;
            } else {
                negotiatedFeatures = driverFeatures;
            }
        }
        boolean activating = (next & DeviceStatus.DRIVER_OK) != 0 && (old & DeviceStatus.DRIVER_OK) == 0;
        if (activating && (next & DeviceStatus.FEATURES_OK) == 0) {
            LOG.warn("{}: DRIVER_OK without FEATURES_OK ignored", name);
            next &= ~DeviceStatus.DRIVER_OK;
            activating = false;
        }
        // Keep a NEEDS_RESET raised concurrently by the I/O thread.
        int finalNext = next;
        status.getAndUpdate(s -> finalNext | (s & DeviceStatus.DEVICE_NEEDS_RESET));
        if (activating && (next & DeviceStatus.FAILED) == 0) activate();
    }

    private void activate() {
        activate(true);
    }

    /** Starts the device; {@code fresh}: its queues start at zero (false: a restore set their positions). */
    private void activate(boolean fresh) {
        try {
            if (fresh) for (Virtqueue q : queues) if (q.isReady()) q.activate(memory, negotiatedFeatures);
            device.activate(memory, negotiatedFeatures, List.of(queues), context);
        } catch (RuntimeException e) {
            fail("activation failed: " + e.getMessage());
            return;
        } catch (Error e) { // not on the vCPU thread that wrote DRIVER_OK: the device breaks, the VM runs on
            broken("activation", e);
            return;
        }
        running = true;
        ioThread = new Thread(this::runIoThread, name + "-io");
        ioThread.setDaemon(true);
        ioThread.start();
        notifyEvent.signal(); // buffers made available before DRIVER_OK are served now
    }

    private void runIoThread() {
        while (running) {
            try {
                notifyEvent.await();
            } catch (RuntimeException e) {
                if (!closed) LOG.error("{}: waiting for notifications failed; device stops", name, e);
                return;
            }
            if (!running) return;
            serviceLock.lock();
            try {
                if (running) serviceQueues();
            } finally {
                serviceLock.unlock();
            }
        }
    }

    /**
     * Rounds of {@link VirtioDevice#processQueue} (each at most a ring's worth) one queue gets before the next queue
     * has its turn: a guest that keeps a queue full cannot starve the device's other queues.
     */
    static final int ROUNDS_PER_TURN = 4;

    private void serviceQueues() {
        boolean more = false;
        for (int i = 0; i < queues.length; i++) {
            Virtqueue q = queues[i];
            if ((status.get() & DeviceStatus.DEVICE_NEEDS_RESET) != 0) return;
            if (!q.isActive() || q.isBroken() || !device.wantsService(i)) continue;
            try {
                synchronized (q) { // a device may fill a queue from its backend's thread as well
                    int rounds = 0;
                    boolean again;
                    do {
                        q.disableNotification();
                        device.processQueue(i, q);
                        if (q.needsNotification()) raiseQueueInterrupt(i);
                        again = running && device.canProcess(i) && q.enableNotification();
                    } while (again && ++rounds < ROUNDS_PER_TURN);
                    if (again) more = true; // notifications are on and buffers wait: come back after the others
                }
            } catch (VirtqueueException e) {
                fail("queue " + i + ": " + e.getMessage());
            } catch (RuntimeException | Error e) { // a bug, or an OutOfMemoryError: the thread must live on
                broken("queue " + i, e);
            }
        }
        if (more && running) notifyEvent.signal();
    }

    /**
     * Who hears of a device that broke (the VM, for its {@code brokenDevices()}); called with this transport's name.
     */
    public void onBroken(Consumer<String> listener) {
        this.brokenListener = listener;
    }

    /**
     * The device or its backend failed in a way the guest did not cause: a bug (a RuntimeException) or an Error
     * (OutOfMemoryError, StackOverflowError) on its I/O thread or its backend's. It enters DEVICE_NEEDS_RESET as for
     * a virtqueue violation, with one ERROR line and a report to the {@link #onBroken} listener; the thread lives
     * on, and a reset by the driver starts the device afresh.
     */
    protected void broken(String where, Throwable cause) {
        int old = status.getAndUpdate(s -> s | DeviceStatus.DEVICE_NEEDS_RESET);
        if ((old & DeviceStatus.DEVICE_NEEDS_RESET) != 0) return; // already stopped: reported then
        LOG.error(
                "{}: device broken ({}: {}); it serves nothing until the guest resets it",
                name,
                where,
                cause.toString());
        LOG.debug("{}: the failure in {}", name, where, cause);
        brokenListener.accept(name);
        if ((old & DeviceStatus.DRIVER_OK) != 0) {
            configGeneration.incrementAndGet();
            raiseConfigInterrupt();
        }
    }

    /** The device entered an error state: DEVICE_NEEDS_RESET and a configuration change notification. */
    protected void fail(String reason) {
        int old = status.getAndUpdate(s -> s | DeviceStatus.DEVICE_NEEDS_RESET);
        if ((old & DeviceStatus.DEVICE_NEEDS_RESET) != 0) return;
        LOG.warn("{}: device needs reset: {}", name, reason);
        if ((old & DeviceStatus.DRIVER_OK) != 0) {
            configGeneration.incrementAndGet();
            raiseConfigInterrupt();
        }
    }

    /** Device reset: stop the I/O thread, forget negotiation and queues, clear interrupts. */
    protected synchronized void reset() {
        stopIoThread();
        device.reset();
        for (Virtqueue q : queues) q.reset();
        driverFeatures = 0;
        negotiatedFeatures = 0;
        resetInterrupts();
        status.set(0);
    }

    private void stopIoThread() {
        Thread t = ioThread;
        if (t == null) return;
        running = false;
        notifyEvent.signal();
        if (t != Thread.currentThread()) Threads.joinUninterruptibly(t);
        ioThread = null;
    }

    /** Reads device configuration space; bytes beyond the device's are 0. */
    protected long readDeviceConfig(int offset, int size) {
        if (offset < 0 || size <= 0 || offset + size > device.configSize()) return 0;
        return device.readConfig(offset, size);
    }

    protected void writeDeviceConfig(int offset, int size, long value) {
        if (offset < 0 || size <= 0 || offset + size > device.configSize()) return;
        device.writeConfig(offset, size, value);
    }

    // ---- snapshots

    /** The layout of this class's part of the state; the subclass and the device version their own parts. */
    static final int STATE_VERSION = 1;

    @Override
    public String snapshotId() {
        return "virtio:" + name;
    }

    @Override
    public int snapshotVersion() {
        return STATE_VERSION;
    }

    /**
     * Waits for the I/O thread to finish the queues it is servicing (a virtio-blk request completes before the
     * snapshot) and holds it off them, then quiesces the device. Every request the device took is then used.
     */
    @Override
    public void quiesce() {
        serviceLock.lock();
        try {
            device.quiesce();
        } catch (RuntimeException | Error e) {
            serviceLock.unlock();
            throw e;
        }
    }

    @Override
    public void resumeAfterSnapshot() {
        try {
            device.resumeAfterSnapshot();
        } finally {
            if (serviceLock.isHeldByCurrentThread()) serviceLock.unlock();
            // Notifications that came meanwhile were taken by the waiting thread, which services them now; a kick
            // more is harmless.
            if (!closed) notifyEvent.signal();
        }
    }

    @Override
    public final synchronized void saveState(StateOutput out) {
        out.u64(device.deviceFeatures()).u8(device.deviceType());
        out.u8(status.get()).u8(configGeneration.get()).u64(driverFeatures).u64(negotiatedFeatures);
        out.u16(queues.length);
        for (Virtqueue q : queues) q.saveState(out);
        StateOutput t = new StateOutput();
        saveTransportState(t);
        out.bytes(t.toByteArray());
        StateOutput d = new StateOutput();
        device.saveState(d);
        out.u32(device.stateVersion()).bytes(d.toByteArray());
    }

    /**
     * Loads the state into this transport as built (not yet used by a guest): the same device with the same
     * features, or a MACHINE_MISMATCH. A device the driver had running is activated again, its queues at their
     * saved positions, and its I/O thread started; then the device loads its own state.
     */
    @Override
    public final synchronized void restoreState(int version, StateInput in) {
        long offered = in.u64("device features");
        int type = in.u8("device type");
        if (offered != device.deviceFeatures() || type != device.deviceType())
            throw new SnapshotException(
                    SnapshotException.Kind.MACHINE_MISMATCH,
                    in.where() + ": the snapshot's device type " + type + " offered features 0x"
                            + Long.toHexString(offered) + "; this " + name + " is type " + device.deviceType()
                            + " offering 0x" + Long.toHexString(device.deviceFeatures())
                            + " (a different device, backend or option such as read-only)");
        int nStatus = in.u8("device status"), nGeneration = in.u8("config generation");
        long nDriver = in.u64("driver features"), nNegotiated = in.u64("negotiated features");
        int nQueues = in.u16("queue count");
        if (nQueues != queues.length || (nNegotiated & ~offered) != 0)
            throw new SnapshotException(
                    SnapshotException.Kind.MACHINE_MISMATCH,
                    in.where() + ": " + nQueues + " queues and negotiated features 0x" + Long.toHexString(nNegotiated)
                            + " do not fit this " + name + " with " + queues.length + " queues");
        if (ioThread != null) throw new IllegalStateException(name + ": restore into a transport already in use");
        driverFeatures = nDriver;
        negotiatedFeatures = nNegotiated;
        for (Virtqueue q : queues) q.restoreState(in, memory, nNegotiated);
        byte[] transport = in.bytes("transport state", in.remaining());
        int deviceVersion = in.u32("device state version");
        byte[] deviceState = in.bytes("device state", in.remaining());
        in.expectEnd();
        if (deviceVersion < 0 || deviceVersion > device.stateVersion())
            throw new SnapshotException(
                    SnapshotException.Kind.UNSUPPORTED_VERSION,
                    in.where() + ": the device's state is version " + Integer.toUnsignedString(deviceVersion)
                            + "; this jvmm's " + device.getClass().getSimpleName() + " reads up to "
                            + device.stateVersion());
        configGeneration.set(nGeneration);
        status.set(nStatus);
        StateInput t = StateInput.of(transport, in.where() + " transport");
        restoreTransportState(t);
        t.expectEnd();
        boolean running = (nStatus & DeviceStatus.DRIVER_OK) != 0 && (nStatus & DeviceStatus.FAILED) == 0;
        if (running) activate(false);
        StateInput d = StateInput.of(deviceState, in.where() + " device");
        if (deviceVersion > 0) device.restoreState(deviceVersion, d);
        d.expectEnd();
    }

    /** The subclass's registers (selectors, interrupt state, PCI configuration); runs quiesced. */
    protected abstract void saveTransportState(StateOutput out);

    /** Loads what {@link #saveTransportState} wrote; before the device is activated again. */
    protected abstract void restoreTransportState(StateInput in);

    /** Sends a used-buffer notification for queue {@code index} (I/O thread). */
    protected abstract void raiseQueueInterrupt(int index);

    /** Sends a configuration change notification. */
    protected abstract void raiseConfigInterrupt();

    /** Clears pending interrupt state on device reset. */
    protected abstract void resetInterrupts();

    @Override
    public synchronized void close() {
        if (closed) return;
        stopIoThread();
        device.shutdown();
        closed = true;
        notifyEvent.close();
    }

    @Override
    public String toString() {
        return name + Arrays.toString(device.queueMaxSizes());
    }
}
