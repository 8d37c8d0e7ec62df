package dev.jvmm.devices.net;

import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * A backend started only when a guest driver first activates the device, so a NIC the guest never uses costs
 * nothing at launch (no threads, no sockets, no classes of the stack loaded). Its capabilities must be known
 * beforehand, as the device offers features from them when it is built.
 */
public final class DeferredNetBackend implements NetBackend {
    private final NetCapabilities capabilities;
    private final Supplier<? extends NetBackend> start;
    private volatile NetBackend started; // written under this object's lock; read without it by flowStats
    private boolean closed;

    public DeferredNetBackend(NetCapabilities capabilities, Supplier<? extends NetBackend> start) {
        this.capabilities = capabilities;
        this.start = start;
    }

    @Override
    public NetCapabilities capabilities() {
        return capabilities;
    }

    /** Whether the real backend has been started. */
    public synchronized boolean isStarted() {
        return started != null;
    }

    @Override
    public synchronized List<NetQueue> activate(NetLinkConfig config, List<? extends GuestPort> ports) {
        if (closed) throw new IllegalStateException("network backend is closed");
        if (started == null) {
            NetBackend b = start.get();
            if (!b.capabilities().equals(capabilities)) {
                b.close();
                throw new IllegalStateException(
                        "backend capabilities " + b.capabilities() + " differ from those announced, " + capabilities);
            }
            started = b;
        }
        return started.activate(config, ports);
    }

    @Override
    public synchronized void deactivate() {
        if (started != null) started.deactivate();
    }

    @Override
    public synchronized long droppedFrames() {
        return started == null ? 0 : started.droppedFrames();
    }

    @Override
    public Optional<FlowStats> flowStats() {
        NetBackend b = started;
        return b == null ? Optional.empty() : b.flowStats();
    }

    @Override
    public synchronized void close() {
        closed = true;
        if (started != null) started.close();
    }
}
