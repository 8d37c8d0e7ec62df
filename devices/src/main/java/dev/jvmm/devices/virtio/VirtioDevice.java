package dev.jvmm.devices.virtio;

import dev.jvmm.core.memory.GuestMemory;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntUnaryOperator;

/**
 * A virtio device model, independent of the transport that exposes it (virtio-mmio, virtio-pci).
 *
 * <p>The transport negotiates features, collects the driver's queue configuration and, when the driver sets
 * DRIVER_OK, calls {@link #activate}. From then on {@link #processQueue} runs on the device's I/O thread
 * whenever the driver notifies; {@link #reset} is called when the driver resets the device (after the I/O
 * thread has stopped). Configuration space accesses come from vCPU threads. The transport holds a queue's
 * monitor while it services it; a device touching a queue from another thread synchronizes on it too.
 */
public interface VirtioDevice {
    int TYPE_NET = 1, TYPE_BLOCK = 2, TYPE_CONSOLE = 3, TYPE_ENTROPY = 4;

    /** The virtio device ID (2 for a block device). */
    int deviceType();

    /** The features offered; must include VIRTIO_F_VERSION_1. */
    long deviceFeatures();

    /** Maximum queue size of each queue the device has; its length is the number of queues. */
    int[] queueMaxSizes();

    /** Bytes of device-specific configuration space. */
    int configSize();

    /** Reads {@code size} (1, 2, 4 or 8) bytes of configuration space at offset, little-endian. */
    long readConfig(int offset, int size);

    /**
     * {@code count} queues of {@code size} each: for {@link #queueMaxSizes} of a device whose queues are all alike.
     */
    static int[] queuesOfSize(int count, int size) {
        int[] sizes = new int[count];
        Arrays.fill(sizes, size);
        return sizes;
    }

    /**
     * The little-endian value of the {@code size} configuration bytes from {@code offset}, each got by
     * {@code byteAt} (given its offset): for {@link #readConfig}.
     */
    static long littleEndian(int offset, int size, IntUnaryOperator byteAt) {
        long v = 0;
        for (int i = size - 1; i >= 0; i--) v = (v << 8) | (byteAt.applyAsInt(offset + i) & 0xffL);
        return v;
    }

    /** Writes configuration space; devices ignore writes to read-only fields. */
    void writeConfig(int offset, int size, long value);

    /**
     * Starts the device. {@code queues} are the device's queues in order; those the driver enabled are
     * active (the others stay inactive and are never passed to {@link #processQueue}).
     */
    void activate(GuestMemory memory, long negotiatedFeatures, List<Virtqueue> queues, Context context);

    /**
     * Handles a notification of queue {@code index}: pops and completes what is available, at most about one
     * ring's worth ({@link Virtqueue#size()} chains) per call, so that a guest refilling the queue as fast as it is
     * served cannot keep the I/O thread here; the transport calls again while more is available. Runs on the
     * device's I/O thread. A {@link VirtqueueException} thrown from here puts the device into DEVICE_NEEDS_RESET;
     * any other exception or Error does too, and marks the device broken (see {@link Context#broken}).
     */
    void processQueue(int index, Virtqueue queue);

    /**
     * Forgets everything negotiated; the device waits for the next activation. Work the device runs off the I/O
     * thread is finished first: after a reset the device touches neither the rings nor guest memory.
     */
    void reset();

    /**
     * The transport is closed (its I/O thread stopped): finish what is in flight and end the device's own threads.
     * Guest memory and the backend are still there while this runs.
     */
    default void shutdown() {}

    /**
     * Whether a notification may concern queue {@code index} now. A transport serves every queue on any
     * notification (they share one eventfd), under the queue's lock; a device whose queue is filled from another
     * thread (virtio-net's receive queues, from its backend's) answers false while that side is not waiting for
     * buffers, so the transport neither contends for that lock nor delays the queues after it.
     */
    default boolean wantsService(int index) {
        return true;
    }

    /**
     * False when the device takes nothing more from the queue now although buffers may be available: a backend
     * that is full, or a receive queue the device fills only as frames arrive. The transport then stops
     * servicing the queue, leaving the driver's notifications off (the device turns them on when it wants them),
     * until the next notification or {@link Context#kick()}. Without this such a queue would be serviced in a
     * busy loop.
     */
    default boolean canProcess(int index) {
        return true;
    }

    // ---- snapshots: the transport saves the device's own state in its section, under the device's version.

    /** The version of what {@link #saveState} writes; 0 for a device with no state beyond its transport's. */
    default int stateVersion() {
        return 0;
    }

    /** The device's own state (the transport's and the queues' are the transport's); runs quiesced. */
    default void saveState(dev.jvmm.core.snapshot.StateOutput out) {}

    /**
     * Loads what {@link #saveState} wrote at {@code version} (at most {@link #stateVersion()}), after the transport
     * restored itself and, if the driver had the device running, {@link #activate activated} it again.
     */
    default void restoreState(int version, dev.jvmm.core.snapshot.StateInput in) {}

    /**
     * A snapshot is about to be taken: stop taking work from outside the queues (a network backend's frames)
     * until {@link #resumeAfterSnapshot}. The transport has already stopped servicing the queues.
     */
    default void quiesce() {}

    default void resumeAfterSnapshot() {}

    /** What the transport offers an active device. */
    interface Context {
        /** Sends a used-buffer notification for the queue if the driver has not suppressed it. */
        void signalUsed(int queueIndex);

        /** Sends a configuration change notification (the config generation changes too). */
        void configChanged();

        /** Puts the device into DEVICE_NEEDS_RESET; no queue is processed until the driver resets it. */
        void fail(String reason);

        /**
         * As {@link #fail}, for a failure the guest did not cause: a bug or an Error in the device's backend on a
         * thread of its own (a network backend's event loop). Logged as an error and reported to the VM.
         */
        void broken(String where, Throwable cause);

        /** Wakes the I/O thread to service every queue again, as a notification would. Any thread. */
        void kick();
    }
}
