package dev.jvmm.devices.virtio.net;

import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.net.NetCapabilities;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A backend for device tests: records what the guest transmits (per queue), answers BUSY while told to, and lets
 * the test deliver frames to the guest through the ports the device handed over, playing the backend's thread.
 */
final class FakeBackend implements NetBackend {
    final NetCapabilities caps;
    final List<List<byte[]>> sent = new CopyOnWriteArrayList<>();
    final AtomicInteger transmitCalls = new AtomicInteger();
    final AtomicInteger rxReadyCalls = new AtomicInteger();
    final List<NetLinkConfig> activations = new CopyOnWriteArrayList<>();
    volatile boolean busy;
    volatile List<? extends GuestPort> ports = List.of();
    volatile int deactivations;

    FakeBackend(NetCapabilities caps) {
        this.caps = caps;
    }

    @Override
    public NetCapabilities capabilities() {
        return caps;
    }

    @Override
    public synchronized List<NetQueue> activate(NetLinkConfig config, List<? extends GuestPort> ports) {
        if (ports.size() > caps.maxQueuePairs()) throw new IllegalArgumentException(ports.size() + " pairs");
        if (!caps.toGuest().containsAll(config.toGuest()))
            throw new IllegalArgumentException("offloads " + config.toGuest());
        activations.add(config);
        this.ports = List.copyOf(ports);
        List<NetQueue> queues = new ArrayList<>();
        while (sent.size() < ports.size()) sent.add(new CopyOnWriteArrayList<>());
        for (int i = 0; i < ports.size(); i++) {
            List<byte[]> out = sent.get(i);
            queues.add(new NetQueue() {
                @Override
                public TxResult transmit(MemorySegment frame) {
                    transmitCalls.incrementAndGet();
                    if (busy) return TxResult.BUSY;
                    out.add(frame.toArray(ValueLayout.JAVA_BYTE));
                    return TxResult.SENT;
                }

                @Override
                public void rxReady() {
                    rxReadyCalls.incrementAndGet();
                }
            });
        }
        return queues;
    }

    @Override
    public synchronized void deactivate() {
        if (!ports.isEmpty()) deactivations++;
        ports = List.of();
    }

    @Override
    public long droppedFrames() {
        return 0;
    }

    @Override
    public void close() {
        deactivate();
    }

    /** Delivers header + frame on pair {@code pair}, as the backend's thread would. */
    boolean deliver(int pair, byte[] headerAndFrame) {
        return ports.get(pair).deliver(MemorySegment.ofArray(headerAndFrame));
    }

    /** Delivers one frame given in pieces (headers apart from the payload), as a stack's gather path does. */
    boolean deliver(int pair, byte[]... parts) {
        MemorySegment[] segs = new MemorySegment[parts.length];
        for (int i = 0; i < parts.length; i++) segs[i] = MemorySegment.ofArray(parts[i]);
        return ports.get(pair).deliver(segs, segs.length);
    }

    /** As {@link #deliver(int, byte[])}, holding the guest's interrupt back until {@link #interruptGuest}. */
    boolean deliverHeld(int pair, byte[] headerAndFrame) {
        return ports.get(pair).deliverHeld(new MemorySegment[] {MemorySegment.ofArray(headerAndFrame)}, 1);
    }

    void interruptGuest(int pair) {
        ports.get(pair).interruptGuest();
    }

    /** The backend drained: tells the device's ports. */
    void txReady() {
        busy = false;
        for (GuestPort p : ports) p.txReady();
    }
}
