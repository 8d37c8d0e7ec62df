package dev.jvmm.devices.virtio;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.devices.pci.PciHostBridge;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;
import dev.jvmm.devices.virtio.pci.VirtioPciTransport;

/** The transports a device test runs over, each with the guest driver that speaks it. */
public enum Transport {
    MMIO {
        @Override
        public TestDriver attach(GuestRam ram, VirtioDevice device) {
            Bus bus = new Bus("mmio");
            FakeInterruptController irqs = new FakeInterruptController();
            VirtioMmioTransport t = new VirtioMmioTransport("dev", device, ram.memory, irqs, 5, Trigger.LEVEL);
            bus.register("dev", 0xd000_0000L, VirtioMmioTransport.WINDOW_SIZE, t);
            return new MmioTestDriver(bus, 0xd000_0000L, irqs.events.get(5), t);
        }
    },
    PCI_MSIX {
        @Override
        public TestDriver attach(GuestRam ram, VirtioDevice device) {
            return pci(ram, device, true);
        }
    },
    PCI_INTX {
        @Override
        public TestDriver attach(GuestRam ram, VirtioDevice device) {
            return pci(ram, device, false);
        }
    };
    public static final long ECAM_BASE = 0xb000_0000L, MMIO32_BASE = 0xc000_0000L, MMIO64_BASE = 0x80_0000_0000L;

    static PciTestDriver pci(GuestRam ram, VirtioDevice device, boolean msix) {
        Bus mmio = new Bus("mmio"), pio = new Bus("pio");
        PciHostBridge host = new PciHostBridge(mmio, MMIO32_BASE, 0x1000_0000L, MMIO64_BASE, 1L << 32);
        pio.register(
                "pci-config", PciHostBridge.CONFIG_ADDRESS_PORT, PciHostBridge.CONFIG_PORTS_LENGTH, host.configPorts());
        mmio.register("pci-ecam", ECAM_BASE, PciHostBridge.ECAM_BUS_SIZE, host.ecam());
        FakeInterruptController irqs = new FakeInterruptController();
        VirtioPciTransport t = new VirtioPciTransport("dev", device, ram.memory, irqs, 11, null);
        int slot = host.attach(t.pciFunction(), "dev");
        return new PciTestDriver(mmio, pio, irqs, slot, 11, msix, t);
    }

    public abstract TestDriver attach(GuestRam ram, VirtioDevice device);
}
