package dev.jvmm.core;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.irq.InterruptEvent;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.kvm.Cap;
import dev.jvmm.kvm.ClosedFdException;
import dev.jvmm.kvm.gen.KvmHeaders;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The in-kernel irqchip's interrupt handles. MSI vectors get a GSI routing entry and an irqfd each, so a
 * device raises one by writing its eventfd. KVM_SET_GSI_ROUTING replaces the whole table, so this class keeps
 * the default irqchip routes (as KVM installs them) alongside the MSI ones. Signalled pin interrupts
 * ({@link #event}) are irqfds too: plain ones for edge-triggered pins, resampling ones for level-triggered pins.
 */
final class KvmInterrupts implements InterruptController, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KvmInterrupts.class);
    static final int IOAPIC_PINS = 24;
    private final Vm vm;
    private final BitSet usedGsis = new BitSet();
    private final List<Route> routes = new ArrayList<>();
    private final List<PinEvent> events = new ArrayList<>();
    private final int maxGsi;

    KvmInterrupts(Vm vm) {
        this.vm = vm;
        int max = vm.checkExtension(Cap.IRQ_ROUTING);
        this.maxGsi = max > 0 ? max : 1024;
        usedGsis.set(0, IOAPIC_PINS);
    }

    @Override
    public IrqLine line(int gsi) {
        checkPin(gsi);
        return high -> vm.irqLine(gsi, high);
    }

    private static void checkPin(int gsi) {
        if (gsi < 0 || gsi >= IOAPIC_PINS)
            throw new IllegalArgumentException("GSI " + gsi + " is not an IOAPIC pin (0-23)");
    }

    @Override
    public synchronized InterruptEvent event(int gsi, Trigger trigger, BooleanSupplier pending) {
        checkPin(gsi);
        if (trigger == Trigger.LEVEL)
            Objects.requireNonNull(pending, "a level-triggered event needs its device's pending state");
        PinEvent e = new PinEvent(gsi, trigger == Trigger.LEVEL ? pending : null);
        events.add(e);
        return e;
    }

    @Override
    public void signalMsi(long address, int data) {
        vm.signalMsi(address, data);
    }

    @Override
    public synchronized MsiRoute msiRoute() {
        int gsi = usedGsis.nextClearBit(IOAPIC_PINS);
        if (gsi >= maxGsi)
            throw new IllegalStateException("no free GSI for another MSI vector (KVM allows " + maxGsi + ")");
        usedGsis.set(gsi);
        Route r = new Route(gsi, new EventFd(false));
        routes.add(r);
        try {
            vm.irqfd(r.event, gsi);
        } catch (RuntimeException e) {
            routes.remove(r);
            usedGsis.clear(gsi);
            r.event.close();
            throw e;
        }
        return r;
    }

    private synchronized void publish() {
        List<Vm.Route> table = new ArrayList<>();
        for (int pin = 0; pin < IOAPIC_PINS; pin++) {
            // KVM's default: ISA IRQs 0-15 reach both the PIC pair and the IOAPIC; 16-23 only the IOAPIC.
            if (pin < 8) table.add(new Vm.IrqchipRoute(pin, KvmHeaders.KVM_IRQCHIP_PIC_MASTER(), pin));
            else if (pin < 16) table.add(new Vm.IrqchipRoute(pin, KvmHeaders.KVM_IRQCHIP_PIC_SLAVE(), pin - 8));
            table.add(new Vm.IrqchipRoute(pin, KvmHeaders.KVM_IRQCHIP_IOAPIC(), pin));
        }
        for (Route r : routes) if (r.programmed) table.add(new Vm.MsiRouteEntry(r.gsi, r.address, r.data));
        vm.setGsiRouting(table);
    }

    @Override
    public synchronized void close() {
        for (Route r : new ArrayList<>(routes)) r.close();
        for (PinEvent e : new ArrayList<>(events)) e.close();
    }

    /** Detaches an irqfd; a failure is ignored: the VM is going away, and closing the eventfd releases it anyway. */
    private void deassignQuietly(EventFd event, int gsi) {
        try {
            vm.irqfdDeassign(event, gsi);
        } catch (RuntimeException ignored) {
            // the VM is going away; closing the eventfd releases the irqfd anyway
        }
    }

    /**
     * An irqfd on an IOAPIC pin. Why no event is lost (a device sets its status register before it triggers, and the
     * guest's handler reads that register and acknowledges only what it read):
     * - EDGE: a plain irqfd, each write one pulse (KVM raises and drops the pin), so one edge per event. An edge
     *   that comes while the guest handles the previous one waits in the local APIC's IRR (or the PIC's) and is
     *   delivered after EOI; edges that merge before delivery are answered by one read of the status.
     * - LEVEL: a pulse would be dropped while the IOAPIC's remote IRR is set (after delivery, until EOI), so an
     *   event raised after the handler read the status would wait for the next one. A resampling irqfd holds the
     *   pin asserted until EOI, then drops it and signals {@code resample}; this object's thread asserts it again
     *   if the device still has an event pending, and that is delivered now that remote IRR is clear.
     * Not resampling for EDGE keeps one exit-free interrupt per event: a resampler makes every EOI of the vector
     * exit to KVM, a guest that sends EOI before reading the status (Linux's edge flow) would get an extra
     * interrupt that finds nothing, and AMD's AVIC does not report EOIs of edge-triggered vectors at all.
     */
    private final class PinEvent implements InterruptEvent {
        final int gsi;
        final EventFd trigger = new EventFd(false);
        final EventFd resample; // LEVEL only, with pending and listener
        final BooleanSupplier pending;
        final Thread listener;
        volatile boolean closed;

        PinEvent(int gsi, BooleanSupplier pending) {
            this.gsi = gsi;
            this.pending = pending;
            this.resample = pending == null ? null : new EventFd(false);
            try {
                if (resample == null) vm.irqfd(trigger, gsi);
                else vm.irqfdWithResample(trigger, gsi, resample);
            } catch (RuntimeException e) {
                trigger.close();
                if (resample != null) resample.close();
                throw e;
            }
            listener = resample == null
                    ? null
                    : Thread.ofPlatform().daemon().name("irq-resample-" + gsi).start(this::listen);
        }

        private void listen() {
            while (true) {
                try {
                    resample.await();
                } catch (RuntimeException e) {
                    if (!closed)
                        LOG.error(
                                "GSI {}: waiting for end-of-interrupt failed; the pin is no longer re-asserted",
                                gsi,
                                e);
                    return;
                }
                if (closed) return;
                if (pending.getAsBoolean()) trigger();
            }
        }

        @Override
        public void trigger() {
            if (closed) return;
            try {
                trigger.signal();
            } catch (ClosedFdException e) {
                // closed meanwhile: the VM is going away
            }
        }

        @Override
        public void close() {
            synchronized (KvmInterrupts.this) {
                if (closed) return;
                closed = true;
                deassignQuietly(trigger, gsi); // a resampler drops the pin if it was the last on it
                if (listener != null) {
                    resample.signal(); // wakes the listener, which sees closed
                    boolean interrupted = false;
                    while (listener.isAlive()) {
                        try {
                            listener.join();
                        } catch (InterruptedException e) {
                            interrupted = true;
                        }
                    }
                    if (interrupted) Thread.currentThread().interrupt();
                    resample.close();
                }
                trigger.close();
                events.remove(this);
            }
        }
    }

    private final class Route implements MsiRoute {
        final int gsi;
        final EventFd event;
        long address;
        int data;
        boolean programmed;
        boolean closed;

        Route(int gsi, EventFd event) {
            this.gsi = gsi;
            this.event = event;
        }

        @Override
        public void update(long address, int data) {
            synchronized (KvmInterrupts.this) {
                if (closed || (programmed && this.address == address && this.data == data)) return;
                this.address = address;
                this.data = data;
                this.programmed = true;
                publish();
            }
        }

        @Override
        public void trigger() {
            // An unprogrammed vector has no route: the guest has not enabled it yet, so there is nobody to tell.
            if (programmed && !closed) event.signal();
        }

        @Override
        public void close() {
            synchronized (KvmInterrupts.this) {
                if (closed) return;
                closed = true;
                deassignQuietly(event, gsi);
                event.close();
                routes.remove(this);
                usedGsis.clear(gsi);
                if (programmed) publish();
            }
        }
    }
}
