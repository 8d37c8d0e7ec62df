package dev.jvmm.boot;

import dev.jvmm.core.VirtualMachine;
import dev.jvmm.devices.block.RawFileBackend;
import dev.jvmm.devices.virtio.blk.VirtioBlock;

import java.io.IOException;
import java.util.List;

/** Attaches the configured virtio-blk disks (vda, vdb, ...) where {@link VirtioSlots} places them. */
final class VirtioDisks {
    private VirtioDisks() {}

    static void attach(VirtualMachine vm, VirtioSlots slots, List<MachineConfig.DiskConfig> disks) {
        for (int i = 0; i < disks.size(); i++) {
            MachineConfig.DiskConfig d = disks.get(i);
            String name = "vd" + (char) ('a' + Math.min(i, 25));
            RawFileBackend backend;
            try {
                backend = RawFileBackend.open(d.path(), d.readOnly());
            } catch (IOException e) {
                throw new BootException("--disk: " + e.getMessage());
            }
            vm.own(backend); // closed after the transport (the VM closes in reverse order)
            VirtioBlock.Options options;
            try {
                options = VirtioBlock.Options.DEFAULT.withReadOnly(d.readOnly()).withSerial(d.serial().orElse(""));
            } catch (IllegalArgumentException e) {
                throw new BootException("--disk " + d.path() + ": " + e.getMessage());
            }
            slots.attach(name, new VirtioBlock(backend, options), d.transport(), "--disk " + d.path());
        }
    }
}
