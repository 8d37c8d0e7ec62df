package dev.jvmm.devices.virtio;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;

/** The transports a device test runs over, each with the guest driver that speaks it. */
public enum Transport {
    MMIO {
        @Override
        public TestDriver attach(GuestRam ram, VirtioDevice device) {
            Bus bus = new Bus("mmio");
            RecordingIrqLine irq = new RecordingIrqLine();
            VirtioMmioTransport t = new VirtioMmioTransport("dev", device, ram.memory, irq);
            bus.register("dev", 0xd000_0000L, VirtioMmioTransport.WINDOW_SIZE, t);
            return new MmioTestDriver(bus, 0xd000_0000L, irq, t);
        }
    };

    public abstract TestDriver attach(GuestRam ram, VirtioDevice device);
}
