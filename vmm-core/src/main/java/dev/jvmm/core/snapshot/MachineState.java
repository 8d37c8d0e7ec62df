package dev.jvmm.core.snapshot;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** A paused machine's state outside guest RAM: KVM's VM-wide state, each vCPU's, each device's. */
public record MachineState(VmState vm, List<VcpuState> vcpus, List<DeviceState> devices) {
    public MachineState {
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
