package dev.jvmm.core.snapshot;

import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A paused machine's state outside guest RAM: KVM's VM-wide state, each vCPU's, each device's, and optionally the
 * description of the machine built around the VM (a machine builder's config, opaque here), from which a builder
 * recreates the same devices before their states are loaded.
 */
public record MachineState(
        VmState vm, List<VcpuState> vcpus, List<DeviceState> devices, Optional<DeviceState> machine) {
    /** Without a machine description: a bare VM whose devices the caller attaches itself. */
    public MachineState(VmState vm, List<VcpuState> vcpus, List<DeviceState> devices) {
        this(vm, vcpus, devices, Optional.empty());
    }

    public MachineState {
        java.util.Objects.requireNonNull(machine);
        vcpus = List.copyOf(vcpus);
        devices = List.copyOf(devices);
        if (vcpus.isEmpty()) throw new IllegalArgumentException("a machine has at least one vCPU");
        for (int i = 0; i < vcpus.size(); i++)
            if (vcpus.get(i).id() != i)
                throw new IllegalArgumentException(
                        "vCPU " + i + " has id " + vcpus.get(i).id());
        Set<String> ids = new HashSet<>();
        for (DeviceState d : devices)
            if (!ids.add(d.id())) throw new IllegalArgumentException("two devices named " + d.id());
    }

    /** Refuses, before anything is created, a state this host's KVM cannot take. */
    public void checkHost(HostCapabilities host) {
        vm.checkHost(host);
        for (VcpuState v : vcpus) v.checkHost(host);
    }
}
