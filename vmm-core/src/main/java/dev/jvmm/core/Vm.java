package dev.jvmm.core;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.event.IoEventRegistry.Space;
import dev.jvmm.kvm.Cap;
import dev.jvmm.kvm.KvmIoctls;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.OwnedFd;
import dev.jvmm.kvm.gen.KvmHeaders;
import dev.jvmm.kvm.gen.kvm_clock_data;
import dev.jvmm.kvm.gen.kvm_enable_cap;
import dev.jvmm.kvm.gen.kvm_ioeventfd;
import dev.jvmm.kvm.gen.kvm_irq_level;
import dev.jvmm.kvm.gen.kvm_irq_routing;
import dev.jvmm.kvm.gen.kvm_irq_routing_entry;
import dev.jvmm.kvm.gen.kvm_irq_routing_irqchip;
import dev.jvmm.kvm.gen.kvm_irq_routing_msi;
import dev.jvmm.kvm.gen.kvm_irqchip;
import dev.jvmm.kvm.gen.kvm_irqfd;
import dev.jvmm.kvm.gen.kvm_msi;
import dev.jvmm.kvm.gen.kvm_pit_config;
import dev.jvmm.kvm.gen.kvm_pit_state2;
import dev.jvmm.kvm.gen.kvm_userspace_memory_region;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/** A KVM VM fd: one method per VM ioctl; every one throws ClosedFdException after close(). */
public final class Vm implements AutoCloseable {
    private final Kvm kvm;
    private final OwnedFd fd;
    private final Arena arena = Arena.ofShared();
    /**
     * KVM_IRQ_LINE's argument, made once: the legacy devices (serial, i8042, ACPI SCI) drive their lines twice per
     * event. Callers on different threads take turns on it; the kernel serialises the irqchip anyway.
     */
    private final MemorySegment irqLevel = kvm_irq_level.allocate(arena);

    Vm(Kvm kvm, OwnedFd fd) {
        this.kvm = kvm;
        this.fd = fd;
    }

    public Kvm kvm() {
        return kvm;
    }

    /** KVM_CHECK_EXTENSION on the VM (some answers differ per VM). */
    public int checkExtension(Cap capability) {
        return Libc.ioctl(fd.get(), "KVM_CHECK_EXTENSION", KvmIoctls.KVM_CHECK_EXTENSION, capability.number());
    }

    /** KVM_SET_USER_MEMORY_REGION: maps host memory at a guest-physical address (size 0 deletes the slot). */
    public void setUserMemoryRegion(int slot, int flags, long guestPhysAddr, MemorySegment host) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = kvm_userspace_memory_region.allocate(arena);
            kvm_userspace_memory_region.slot(r, slot);
            kvm_userspace_memory_region.flags(r, flags);
            kvm_userspace_memory_region.guest_phys_addr(r, guestPhysAddr);
            kvm_userspace_memory_region.memory_size(r, host.byteSize());
            kvm_userspace_memory_region.userspace_addr(r, host.address());
            Libc.ioctl(fd.get(), "KVM_SET_USER_MEMORY_REGION", KvmIoctls.KVM_SET_USER_MEMORY_REGION, r);
        }
    }

    /** KVM_SET_TSS_ADDR: three pages below 4 GiB that Intel hosts use for real-mode emulation. */
    public void setTssAddr(long address) {
        Libc.ioctl(fd.get(), "KVM_SET_TSS_ADDR", KvmIoctls.KVM_SET_TSS_ADDR, address);
    }

    /** KVM_SET_IDENTITY_MAP_ADDR: one page for the EPT identity map used in unpaged real mode. */
    public void setIdentityMapAddr(long address) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, address);
            Libc.ioctl(fd.get(), "KVM_SET_IDENTITY_MAP_ADDR", KvmIoctls.KVM_SET_IDENTITY_MAP_ADDR, a);
        }
    }

    /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and local APICs. */
    public void createIrqchip() {
        Libc.ioctl(fd.get(), "KVM_CREATE_IRQCHIP", KvmIoctls.KVM_CREATE_IRQCHIP, 0);
    }

    /** KVM_CREATE_PIT2: the in-kernel i8254 timer. */
    public void createPit2(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = kvm_pit_config.allocate(arena);
            kvm_pit_config.flags(c, flags);
            Libc.ioctl(fd.get(), "KVM_CREATE_PIT2", KvmIoctls.KVM_CREATE_PIT2, c);
        }
    }

    /**
     * KVM_GET_IRQCHIP: fills {@code chip} (a kvm_irqchip) with the state of the chip its chip_id names
     * (KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC).
     */
    public void getIrqchip(MemorySegment chip) {
        Libc.ioctl(fd.get(), "KVM_GET_IRQCHIP", KvmIoctls.KVM_GET_IRQCHIP, checked(chip, kvm_irqchip.sizeof()));
    }

    /** KVM_SET_IRQCHIP: loads the state of the chip {@code chip}'s chip_id names. */
    public void setIrqchip(MemorySegment chip) {
        Libc.ioctl(fd.get(), "KVM_SET_IRQCHIP", KvmIoctls.KVM_SET_IRQCHIP, checked(chip, kvm_irqchip.sizeof()));
    }

    /** KVM_GET_PIT2 (needs KVM_CAP_PIT_STATE2 and a PIT). */
    public void getPit2(MemorySegment pit) {
        Libc.ioctl(fd.get(), "KVM_GET_PIT2", KvmIoctls.KVM_GET_PIT2, checked(pit, kvm_pit_state2.sizeof()));
    }

    /** KVM_SET_PIT2 (needs KVM_CAP_PIT_STATE2 and a PIT). */
    public void setPit2(MemorySegment pit) {
        Libc.ioctl(fd.get(), "KVM_SET_PIT2", KvmIoctls.KVM_SET_PIT2, checked(pit, kvm_pit_state2.sizeof()));
    }

    /** KVM_GET_CLOCK: the VM's kvmclock value in ns (needs KVM_CAP_ADJUST_CLOCK). */
    public void getClock(MemorySegment clock) {
        Libc.ioctl(fd.get(), "KVM_GET_CLOCK", KvmIoctls.KVM_GET_CLOCK, checked(clock, kvm_clock_data.sizeof()));
    }

    /** KVM_SET_CLOCK: sets the VM's kvmclock (only KVM_CLOCK_REALTIME is accepted in flags). */
    public void setClock(MemorySegment clock) {
        Libc.ioctl(fd.get(), "KVM_SET_CLOCK", KvmIoctls.KVM_SET_CLOCK, checked(clock, kvm_clock_data.sizeof()));
    }

    private static MemorySegment checked(MemorySegment s, long size) {
        if (s.byteSize() < size)
            throw new IllegalArgumentException("buffer of " + s.byteSize() + " bytes, need " + size);
        return s;
    }

    /** KVM_IRQ_LINE: drives a GSI of the in-kernel irqchip. */
    public void irqLine(int gsi, boolean high) {
        synchronized (irqLevel) {
            int f = fd.get(); // before touching irqLevel, which close() frees
            kvm_irq_level.irq(irqLevel, gsi);
            kvm_irq_level.level(irqLevel, high ? 1 : 0);
            Libc.ioctl(f, "KVM_IRQ_LINE", KvmIoctls.KVM_IRQ_LINE, irqLevel);
        }
    }

    /** KVM_IRQFD: a write to {@code event} raises {@code gsi} (edge-triggered). */
    public void irqfd(EventFd event, int gsi) {
        irqfd(event, gsi, null, 0);
    }

    /**
     * KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE: a write to {@code event} asserts the level-triggered {@code gsi};
     * KVM signals {@code resample} when the guest acknowledges it, so the device can re-assert it if still pending.
     */
    public void irqfdWithResample(EventFd event, int gsi, EventFd resample) {
        irqfd(event, gsi, resample, KvmHeaders.KVM_IRQFD_FLAG_RESAMPLE());
    }

    /** KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN: undoes {@link #irqfd} or {@link #irqfdWithResample}. */
    public void irqfdDeassign(EventFd event, int gsi) {
        irqfd(event, gsi, null, KvmHeaders.KVM_IRQFD_FLAG_DEASSIGN());
    }

    private void irqfd(EventFd event, int gsi, EventFd resample, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment f = kvm_irqfd.allocate(arena);
            kvm_irqfd.fd(f, event.fd());
            kvm_irqfd.gsi(f, gsi);
            if (resample != null) kvm_irqfd.resamplefd(f, resample.fd());
            kvm_irqfd.flags(f, flags);
            Libc.ioctl(fd.get(), "KVM_IRQFD", KvmIoctls.KVM_IRQFD, f);
        }
    }

    /**
     * KVM_IOEVENTFD: a guest write to {@code address} that {@code datamatch} accepts signals {@code event} in the
     * kernel instead of exiting to userspace.
     */
    public void ioeventfd(EventFd event, IoEventAddress address, Datamatch datamatch) {
        ioeventfd(event, address, datamatch, 0);
    }

    /** KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN: undoes {@link #ioeventfd} called with the same arguments. */
    public void ioeventfdDeassign(EventFd event, IoEventAddress address, Datamatch datamatch) {
        ioeventfd(event, address, datamatch, KvmHeaders.KVM_IOEVENTFD_FLAG_DEASSIGN());
    }

    private void ioeventfd(EventFd event, IoEventAddress address, Datamatch datamatch, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment e = kvm_ioeventfd.allocate(arena);
            if (address.space() == Space.PIO) flags |= KvmHeaders.KVM_IOEVENTFD_FLAG_PIO();
            if (datamatch.value().isPresent()) {
                flags |= KvmHeaders.KVM_IOEVENTFD_FLAG_DATAMATCH();
                kvm_ioeventfd.datamatch(e, datamatch.value().getAsLong());
            }
            kvm_ioeventfd.addr(e, address.address());
            kvm_ioeventfd.len(e, datamatch.length());
            kvm_ioeventfd.fd(e, event.fd());
            kvm_ioeventfd.flags(e, flags);
            Libc.ioctl(fd.get(), "KVM_IOEVENTFD", KvmIoctls.KVM_IOEVENTFD, e);
        }
    }

    /** A GSI routing entry: an irqchip pin or an MSI message. */
    public sealed interface Route permits IrqchipRoute, MsiRouteEntry {
        int gsi();
    }

    public record IrqchipRoute(int gsi, int irqchip, int pin) implements Route {}

    public record MsiRouteEntry(int gsi, long address, int data) implements Route {}

    /** KVM_SET_GSI_ROUTING: replaces the whole routing table. */
    public void setGsiRouting(List<? extends Route> routes) {
        try (Arena arena = Arena.ofConfined()) {
            long entrySize = kvm_irq_routing_entry.sizeof();
            MemorySegment r = arena.allocate(kvm_irq_routing.sizeof() + routes.size() * entrySize, 8);
            kvm_irq_routing.nr(r, routes.size());
            MemorySegment entries = r.asSlice(kvm_irq_routing.entries$offset());
            for (int i = 0; i < routes.size(); i++) {
                MemorySegment e = kvm_irq_routing_entry.asSlice(entries, i);
                Route route = routes.get(i);
                kvm_irq_routing_entry.gsi(e, route.gsi());
                MemorySegment u = kvm_irq_routing_entry.u(e);
                switch (route) {
                    case IrqchipRoute c -> {
                        kvm_irq_routing_entry.type(e, KvmHeaders.KVM_IRQ_ROUTING_IRQCHIP());
                        kvm_irq_routing_irqchip.irqchip(u, c.irqchip());
                        kvm_irq_routing_irqchip.pin(u, c.pin());
                    }
                    case MsiRouteEntry m -> {
                        kvm_irq_routing_entry.type(e, KvmHeaders.KVM_IRQ_ROUTING_MSI());
                        kvm_irq_routing_msi.address_lo(u, (int) m.address());
                        kvm_irq_routing_msi.address_hi(u, (int) (m.address() >>> 32));
                        kvm_irq_routing_msi.data(u, m.data());
                    }
                }
            }
            Libc.ioctl(fd.get(), "KVM_SET_GSI_ROUTING", KvmIoctls.KVM_SET_GSI_ROUTING, r);
        }
    }

    /** KVM_SIGNAL_MSI: injects one MSI; true if delivered, false if the guest blocked it. */
    public boolean signalMsi(long address, int data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = kvm_msi.allocate(arena);
            kvm_msi.address_lo(m, (int) address);
            kvm_msi.address_hi(m, (int) (address >>> 32));
            kvm_msi.data(m, data);
            return Libc.ioctl(fd.get(), "KVM_SIGNAL_MSI", KvmIoctls.KVM_SIGNAL_MSI, m) > 0;
        }
    }

    /** KVM_ENABLE_CAP on the VM. */
    public void enableCap(Cap capability, long... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = kvm_enable_cap.allocate(arena);
            kvm_enable_cap.cap(c, capability.number());
            for (int i = 0; i < args.length; i++) kvm_enable_cap.args(c, i, args[i]);
            Libc.ioctl(fd.get(), "KVM_ENABLE_CAP", KvmIoctls.KVM_ENABLE_CAP, c);
        }
    }

    /** KVM_CREATE_VCPU, and the mmap of its kvm_run area. */
    public Vcpu createVcpu(int id) {
        OwnedFd vcpuFd =
                new OwnedFd(Libc.ioctl(fd.get(), "KVM_CREATE_VCPU", KvmIoctls.KVM_CREATE_VCPU, id), "Vcpu " + id);
        try {
            MemorySegment run = Libc.mmap(
                    MemorySegment.NULL,
                    kvm.vcpuMmapSize(),
                    Libc.PROT_READ | Libc.PROT_WRITE,
                    Libc.MAP_SHARED,
                    vcpuFd.get(),
                    0);
            return new Vcpu(id, vcpuFd, run);
        } catch (RuntimeException e) {
            vcpuFd.close();
            throw e;
        }
    }

    @Override
    public void close() {
        synchronized (irqLevel) { // not while an irqLine() is using it
            if (fd.isClosed()) return;
            fd.close();
            arena.close();
        }
    }
}
