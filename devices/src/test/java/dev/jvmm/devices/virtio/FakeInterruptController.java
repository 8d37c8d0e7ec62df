package dev.jvmm.devices.virtio;

import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.irq.InterruptEvent;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.core.irq.Trigger;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;

/** Interrupt lines, signalled pins and MSI routes that record what devices do with them. */
public final class FakeInterruptController implements InterruptController {
    public final Map<Integer, RecordingIrqLine> lines = new ConcurrentHashMap<>();
    public final Map<Integer, RecordingInterruptEvent> events = new ConcurrentHashMap<>();
    public final List<Route> routes = new CopyOnWriteArrayList<>();

    /** An MSI route: its programmed message and the messages it delivered. */
    public static final class Route implements MsiRoute {
        public volatile long address;
        public volatile int data;
        public volatile boolean closed;
        private final List<long[]> delivered = new CopyOnWriteArrayList<>();

        @Override
        public void update(long address, int data) {
            this.address = address;
            this.data = data;
        }

        @Override
        public synchronized void trigger() {
            delivered.add(new long[] {address, data});
            notifyAll();
        }

        public int count() {
            return delivered.size();
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    @Override
    public IrqLine line(int gsi) {
        return lines.computeIfAbsent(gsi, g -> new RecordingIrqLine());
    }

    @Override
    public InterruptEvent event(int gsi, Trigger trigger, BooleanSupplier pending) {
        RecordingInterruptEvent e = new RecordingInterruptEvent(trigger, pending);
        if (events.putIfAbsent(gsi, e) != null) throw new IllegalStateException("GSI " + gsi + " already has an event");
        return e;
    }

    @Override
    public MsiRoute msiRoute() {
        Route r = new Route();
        routes.add(r);
        return r;
    }

    @Override
    public void signalMsi(long address, int data) {
        throw new UnsupportedOperationException("devices deliver MSIs through routes");
    }

    /** Messages delivered with the given data value, over all routes. */
    public synchronized int deliveredWithData(int data) {
        int n = 0;
        for (Route r : routes) for (long[] m : r.delivered) if ((int) m[1] == data) n++;
        return n;
    }
}
