package dev.jvmm.boot;

import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.devices.pci.PciBusFullException;
import dev.jvmm.devices.pci.PciHostBridge;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;
import dev.jvmm.devices.virtio.pci.VirtioPciTransport;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Places virtio devices (disks, NICs) on a machine's virtio-mmio windows or its PCI bus, which they share. The
 * layout of the MMIO hole (below 4 GiB, above RAM):
 * <pre>
 *   0xc000_0000 - 0xcfff_ffff  PCI memory window: BARs of virtio-pci functions (placed here, as firmware would)
 *   0xd000_0000 + 4 KiB * n    virtio-mmio windows, announced on the kernel command line
 *   0xe000_0000 - 0xe00f_ffff  PCI ECAM for bus 0 (configuration mechanism #1 at ports 0xcf8-0xcff as well)
 * </pre>
 * virtio-mmio devices take ISA IRQs no other device uses; virtio-pci functions interrupt through MSI-X (INTx
 * on IOAPIC pins 16-23 as the fallback, described in the MP table). Queue notifications are ioeventfds, interrupts
 * irqfds.
 */
final class VirtioSlots {
    static final long PCI_MMIO_BASE = 0xc000_0000L, PCI_MMIO_SIZE = 0x1000_0000L;
    static final long VIRTIO_MMIO_BASE = 0xd000_0000L;
    static final long ECAM_BASE = 0xe000_0000L;
    /** ISA IRQs free on jvmm's PC (0 PIT, 1/12 i8042, 2 cascade, 4 serial, 8 RTC are taken). */
    static final int[] MMIO_IRQS = {5, 6, 7, 9, 10, 11, 14, 15, 3};

    static final int PCI_INTX_FIRST_GSI = 16;

    /** What the rest of the machine needs to know: command line fragments and the PCI slots' INTx pins. */
    record Attached(List<String> cmdlineFragments, Map<Integer, Integer> pciIrqs) {
        String appendTo(String cmdline) {
            if (cmdlineFragments.isEmpty()) return cmdline;
            return (cmdline.isEmpty() ? "" : cmdline + " ") + String.join(" ", cmdlineFragments);
        }
    }

    private final VirtualMachine vm;
    private final List<String> fragments = new ArrayList<>();
    private final Map<Integer, Integer> pciIrqs = new LinkedHashMap<>();
    private PciHostBridge pci;
    private int mmioCount;

    VirtioSlots(VirtualMachine vm) {
        this.vm = vm;
    }

    /**
     * Attaches {@code device} as {@code name}; {@code option} names the user's option in error messages. The VM
     * owns the transport (closed before anything the device uses that was owned earlier).
     */
    void attach(String name, VirtioDevice device, MachineConfig.DiskConfig.Transport transport, String option) {
        if (transport == MachineConfig.DiskConfig.Transport.MMIO) {
            if (mmioCount >= MMIO_IRQS.length)
                throw new BootException(
                        Kind.TOO_MANY_DEVICES,
                        option + ": at most " + MMIO_IRQS.length
                                + " virtio-mmio devices; attach more with transport=pci");
            long base = VIRTIO_MMIO_BASE + mmioCount * VirtioMmioTransport.WINDOW_SIZE;
            int irq = MMIO_IRQS[mmioCount++];
            // ISA IRQs are edge-triggered in the MP table and the MADT (no override) and Linux programs them so,
            // but a guest may program its pin level-triggered: a pulse is then lost while the IOAPIC awaits the
            // EOI of the last one (the emulated-AMD-V runs of the C suites showed it). A resampling irqfd holds the
            // pin until EOI and re-asserts it while InterruptStatus is set, which serves both.
            VirtioMmioTransport t =
                    new VirtioMmioTransport(name, device, vm.memory(), vm.interrupts(), irq, Trigger.LEVEL);
            vm.own(t);
            t.onBroken(vm::deviceBroken);
            vm.mmioBus().register("virtio-mmio " + name, base, VirtioMmioTransport.WINDOW_SIZE, t);
            t.registerIoEvent(vm.ioEvents(), base);
            vm.snapshottable(t);
            fragments.add(VirtioMmioTransport.cmdlineFragment(base, irq));
        } else {
            if (pci == null) {
                pci = new PciHostBridge(vm.mmioBus(), PCI_MMIO_BASE, PCI_MMIO_SIZE, 0, 0);
                vm.ioBus()
                        .register(
                                "pci config",
                                PciHostBridge.CONFIG_ADDRESS_PORT,
                                PciHostBridge.CONFIG_PORTS_LENGTH,
                                pci.configPorts());
                vm.mmioBus().register("pci ecam", ECAM_BASE, PciHostBridge.ECAM_BUS_SIZE, pci.ecam());
                vm.snapshottable(pci);
            }
            int gsi = PCI_INTX_FIRST_GSI + pciIrqs.size() % 8;
            VirtioPciTransport t =
                    new VirtioPciTransport(name, device, vm.memory(), vm.interrupts(), gsi, vm.ioEvents());
            vm.own(t);
            t.onBroken(vm::deviceBroken);
            int slot;
            try {
                slot = pci.attach(t.pciFunction(), "virtio-pci " + name);
            } catch (PciBusFullException e) {
                throw new BootException(Kind.TOO_MANY_DEVICES, option + ": " + e.getMessage());
            }
            pciIrqs.put(slot, gsi);
            vm.snapshottable(t); // on a restored VM: BAR0 placed where the guest had it, with its ioeventfds
        }
    }

    Attached attached() {
        return new Attached(
                List.copyOf(fragments), java.util.Collections.unmodifiableMap(new LinkedHashMap<>(pciIrqs)));
    }
}
