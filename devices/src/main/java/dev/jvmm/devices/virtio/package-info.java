/**
 * virtio: the split virtqueue ({@link dev.jvmm.devices.virtio.Virtqueue}), the transport-independent
 * device interface ({@link dev.jvmm.devices.virtio.VirtioDevice}) and what transports share
 * ({@link dev.jvmm.devices.virtio.VirtioTransport}: status, features, the device's I/O thread).
 *
 * <p>Attaching a virtio-blk disk (what {@code dev.jvmm.boot.VirtioDisks} does for the machine builder):
 * <pre>{@code
 * BlockBackend disk = DiskImage.open(path, DiskImage.Options.DEFAULT.withReadOnly(readOnly)); // raw or qcow2, probed
 * VirtioBlock blk = new VirtioBlock(disk, VirtioBlock.Options.DEFAULT.withSerial(serial));
 *
 * // virtio-mmio: a 4 KiB window, an irqfd on an IOAPIC pin (edge-triggered, as ISA IRQs are described), an
 * // ioeventfd on QueueNotify, a kernel command line option
 * VirtioMmioTransport t = new VirtioMmioTransport("vda", blk, vm.memory(), vm.interrupts(), gsi, Trigger.EDGE);
 * vm.mmioBus().register("virtio-mmio vda", base, VirtioMmioTransport.WINDOW_SIZE, t);
 * t.registerIoEvent(vm.ioEvents(), base);
 * cmdline.add(VirtioMmioTransport.cmdlineFragment(base, gsi));
 * vm.own(t);
 *
 * // virtio-pci: one host bridge per machine, then a function per disk (BARs placed from the bridge's windows)
 * PciHostBridge pci = new PciHostBridge(vm.mmioBus(), mmio32Base, mmio32Size, mmio64Base, mmio64Size);
 * vm.ioBus().register(
 *         "pci-config", PciHostBridge.CONFIG_ADDRESS_PORT, PciHostBridge.CONFIG_PORTS_LENGTH, pci.configPorts());
 * vm.mmioBus().register("pci-ecam", ecamBase, PciHostBridge.ECAM_BUS_SIZE, pci.ecam()); // announce in ACPI MCFG
 * VirtioPciTransport p = new VirtioPciTransport("vdb", blk, vm.memory(), vm.interrupts(), intxGsi, vm.ioEvents());
 * int slot = pci.attach(p.pciFunction(), "virtio-pci vdb");
 * vm.own(p);
 * }</pre>
 * Closing a transport stops its I/O thread, drops its ioeventfds, irqfds and MSI routes; the backend is the caller's.
 */
package dev.jvmm.devices.virtio;
