package dev.jvmm.core.snapshot;

import dev.jvmm.core.Vm;
import dev.jvmm.kvm.SyscallException;
import dev.jvmm.kvm.gen.KvmHeaders;
import dev.jvmm.kvm.gen.kvm_clock_data;
import dev.jvmm.kvm.gen.kvm_irqchip;
import dev.jvmm.kvm.gen.kvm_pit_state2;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * The VM-wide state KVM keeps: the in-kernel irqchip (both 8259 PICs and the IOAPIC, each a kvm_irqchip as
 * KVM_GET_IRQCHIP gives it), the i8254 PIT, and the kvmclock.
 *
 * @param irqchips the master PIC, the slave PIC and the IOAPIC, in that order; empty without an in-kernel irqchip
 * @param pit absent without an in-kernel PIT (or KVM_CAP_PIT_STATE2)
 * @param clockNs the kvmclock in ns (KVM_GET_CLOCK); absent without KVM_CAP_ADJUST_CLOCK. Restored as it was, so the
 *     guest's clock does not count the time the VM spent saved.
 */
public record VmState(List<StructBytes> irqchips, Optional<StructBytes> pit, OptionalLong clockNs) {
    public static final int VERSION = 1;
    private static final int[] CHIPS = {
        KvmHeaders.KVM_IRQCHIP_PIC_MASTER(), KvmHeaders.KVM_IRQCHIP_PIC_SLAVE(), KvmHeaders.KVM_IRQCHIP_IOAPIC()
    };

    public VmState {
        irqchips = List.copyOf(irqchips);
        if (!irqchips.isEmpty() && irqchips.size() != CHIPS.length)
            throw new IllegalArgumentException(irqchips.size() + " irqchips, need none or " + CHIPS.length);
    }

    public boolean hasIrqchip() {
        return !irqchips.isEmpty();
    }

    /** Reads the VM's state; its vCPUs must be paused. */
    public static VmState capture(Vm vm, HostCapabilities host, boolean irqchip, boolean pit) {
        try (Arena arena = Arena.ofConfined()) {
            List<StructBytes> chips = new ArrayList<>();
            if (irqchip) {
                for (int id : CHIPS) {
                    MemorySegment c = kvm_irqchip.allocate(arena);
                    kvm_irqchip.chip_id(c, id);
                    vm.getIrqchip(c);
                    chips.add(StructBytes.copyOf(c));
                }
            }
            Optional<StructBytes> pitState = Optional.empty();
            if (pit && host.pitState2()) {
                MemorySegment p = kvm_pit_state2.allocate(arena);
                vm.getPit2(p);
                pitState = Optional.of(StructBytes.copyOf(p));
            }
            OptionalLong clock = OptionalLong.empty();
            if (host.adjustClock()) {
                MemorySegment c = kvm_clock_data.allocate(arena);
                vm.getClock(c);
                clock = OptionalLong.of(kvm_clock_data.clock(c));
            }
            return new VmState(chips, pitState, clock);
        }
    }

    public void checkHost(HostCapabilities host) {
        if (pit.isPresent() && !host.pitState2())
            throw SnapshotException.host(
                    "the snapshot has PIT state, but this host's KVM offers no KVM_CAP_PIT_STATE2");
        if (clockNs.isPresent() && !host.adjustClock())
            throw SnapshotException.host(
                    "the snapshot has a kvmclock value, but this host's KVM offers no KVM_CAP_ADJUST_CLOCK");
    }

    /** Loads this state into a VM made with the same irqchip and PIT, before its vCPUs' state (as Firecracker does). */
    public void restore(Vm vm, HostCapabilities host) {
        checkHost(host);
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < irqchips.size(); i++) {
                MemorySegment c = irqchips.get(i).toSegment(arena, kvm_irqchip.sizeof());
                if (kvm_irqchip.chip_id(c) != CHIPS[i])
                    throw SnapshotException.corrupt(
                            "irqchip " + i + " has chip_id " + kvm_irqchip.chip_id(c) + ", expected " + CHIPS[i]);
                set("irqchip " + CHIPS[i], () -> vm.setIrqchip(c));
            }
            pit.ifPresent(p -> set("PIT", () -> vm.setPit2(p.toSegment(arena, kvm_pit_state2.sizeof()))));
            if (clockNs.isPresent()) {
                MemorySegment c = kvm_clock_data.allocate(arena);
                kvm_clock_data.clock(c, clockNs.getAsLong());
                set("kvmclock", () -> vm.setClock(c));
            }
        }
    }

    private static void set(String what, Runnable ioctl) {
        try {
            ioctl.run();
        } catch (SyscallException e) {
            throw SnapshotException.host("this host's KVM refused the saved " + what + ": " + e.getMessage());
        }
    }

    void write(StateOutput out) {
        out.u8(irqchips.size());
        for (StructBytes c : irqchips) out.bytes(c);
        out.bool(pit.isPresent());
        pit.ifPresent(out::bytes);
        out.bool(clockNs.isPresent());
        if (clockNs.isPresent()) out.u64(clockNs.getAsLong());
    }

    static VmState read(StateInput in) {
        int n = in.u8("irqchip count");
        if (n != 0 && n != CHIPS.length)
            throw SnapshotException.corrupt(in.where() + ": irqchip count " + n + ", not 0 or " + CHIPS.length);
        List<StructBytes> chips = new ArrayList<>();
        for (int i = 0; i < n; i++) chips.add(in.struct("kvm_irqchip", kvm_irqchip.sizeof()));
        Optional<StructBytes> pit = in.bool("PIT present")
                ? Optional.of(in.struct("kvm_pit_state2", kvm_pit_state2.sizeof()))
                : Optional.empty();
        OptionalLong clock = in.bool("kvmclock present") ? OptionalLong.of(in.u64("kvmclock")) : OptionalLong.empty();
        return new VmState(chips, pit, clock);
    }
}
