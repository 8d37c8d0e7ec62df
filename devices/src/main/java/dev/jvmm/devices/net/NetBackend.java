package dev.jvmm.devices.net;

import java.util.List;
import java.util.Optional;

/**
 * A host-side network backend of a virtio-net device. The device reads {@link #capabilities()} to build its
 * feature set, and once the driver is ready calls {@link #activate} with what was negotiated and one
 * {@link GuestPort} per queue pair in use; it gets one {@link NetQueue} per port back. A device reset calls
 * {@link #deactivate()}, after which the device may activate again.
 *
 * <p>Frames are whole: a device with mergeable rx buffers spreads one delivered frame over several buffers
 * (setting num_buffers in the v1 header) itself; a backend needs to know only the header length.
 */
public interface NetBackend extends AutoCloseable {
    NetCapabilities capabilities();

    /**
     * Starts frame flow. {@code ports.size()} is the number of queue pairs, at most
     * {@link NetCapabilities#maxQueuePairs()}; {@code config.toGuest()} must be within
     * {@link NetCapabilities#toGuest()}.
     */
    List<NetQueue> activate(NetLinkConfig config, List<? extends GuestPort> ports);

    /** Stops frame flow: no more deliveries after this returns; queued frames are dropped. Idempotent. */
    void deactivate();

    /** Frames dropped as malformed, refused or overflowing, both directions: for the device's statistics. */
    long droppedFrames();

    /**
     * The connection counters of a backend that terminates the guest's flows (user-mode networking); empty for one
     * that passes frames on (TAP) or has not started. Never waits: statistics are read while the VM runs.
     */
    default Optional<FlowStats> flowStats() {
        return Optional.empty();
    }

    @Override
    void close();
}
