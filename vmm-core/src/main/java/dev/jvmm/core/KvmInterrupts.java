package dev.jvmm.core;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.irq.InterruptController;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.kvm.Cap;
import dev.jvmm.kvm.gen.KvmHeaders;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * The in-kernel irqchip's interrupt handles. MSI vectors get a GSI routing entry and an irqfd each, so a
 * device raises one by writing its eventfd. KVM_SET_GSI_ROUTING replaces the whole table, so this class keeps
 * the default irqchip routes (as KVM installs them) alongside the MSI ones.
 */
final class KvmInterrupts implements InterruptController, AutoCloseable {
    static final int IOAPIC_PINS = 24;
    private final Vm vm;
    private final BitSet usedGsis = new BitSet();
    private final List<Route> routes = new ArrayList<>();
    private final int maxGsi;

    KvmInterrupts(Vm vm) {
        this.vm = vm;
        int max = vm.checkExtension(Cap.IRQ_ROUTING);
        this.maxGsi = max > 0 ? max : 1024;
        usedGsis.set(0, IOAPIC_PINS);
    }

    @Override
    public IrqLine line(int gsi) {
        if (gsi < 0 || gsi >= IOAPIC_PINS) throw new IllegalArgumentException("GSI " + gsi + " is not an IOAPIC pin (0-23)");
        return high -> vm.irqLine(gsi, high);
    }

    @Override
    public void signalMsi(long address, int data) {
        vm.signalMsi(address, data);
    }

    @Override
    public synchronized MsiRoute msiRoute() {
        int gsi = usedGsis.nextClearBit(IOAPIC_PINS);
        if (gsi >= maxGsi) throw new IllegalStateException("no free GSI for another MSI vector (KVM allows " + maxGsi + ")");
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
                try {
                    vm.irqfdDeassign(event, gsi);
                } catch (RuntimeException ignored) {
                    // the VM is going away; closing the eventfd below releases the irqfd anyway
                }
                event.close();
                routes.remove(this);
                usedGsis.clear(gsi);
                if (programmed) publish();
            }
        }
    }
}
