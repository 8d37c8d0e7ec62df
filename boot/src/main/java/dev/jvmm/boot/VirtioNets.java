package dev.jvmm.boot;

import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.devices.net.DeferredNetBackend;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.net.NetBackendException;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.tap.TapBackend;
import dev.jvmm.devices.net.user.UserNetBackend;
import dev.jvmm.devices.virtio.net.VirtioNet;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;

/** Opens the configured network backends and attaches a virtio-net NIC for each where {@link VirtioSlots} places it. */
final class VirtioNets {
    /** QEMU's default for the first NIC, so guests configured for QEMU's user networking find what they expect. */
    static final long FIRST_DEFAULT_MAC = 0x52_54_00_12_34_56L;

    private VirtioNets() {}

    static List<VirtioNet> attach(VirtualMachine vm, VirtioSlots slots, List<MachineConfig.NicConfig> nics) {
        List<VirtioNet> attached = new ArrayList<>();
        for (int i = 0; i < nics.size(); i++) {
            MachineConfig.NicConfig n = nics.get(i);
            String option = "--net " + kind(n.backend());
            MacAddress mac = n.backend().mac().orElseGet(() -> defaultMac(n.backend(), attached.size()));
            NetBackend backend = open(n.backend(), option);
            vm.own(backend); // closed after the transport (the VM closes in reverse order)
            VirtioNet net = new VirtioNet(backend, VirtioNet.Options.of(mac).withRateLimits(n.rxLimit(), n.txLimit()));
            slots.attach("net" + i, net, n.transport(), option);
            attached.add(net);
        }
        return List.copyOf(attached);
    }

    /** The NICs with their MAC addresses chosen (the configured one, or the default for the kind and place). */
    static List<MachineConfig.NicConfig> withMacs(List<MachineConfig.NicConfig> nics) {
        List<MachineConfig.NicConfig> out = new ArrayList<>();
        for (int i = 0; i < nics.size(); i++) {
            MachineConfig.NicConfig n = nics.get(i);
            MacAddress mac = n.backend().mac().orElse(defaultMac(n.backend(), i));
            out.add(new MachineConfig.NicConfig(
                    MachineDescription.withMac(n.backend(), mac), n.transport(), n.rxLimit(), n.txLimit()));
        }
        return List.copyOf(out);
    }

    private static String kind(NetConfig c) {
        return switch (c) {
            case NetConfig.User u -> "user";
            case NetConfig.Tap t -> "tap,ifname=" + t.ifname();
        };
    }

    /**
     * User networking: QEMU's 52:54:00:12:34:56 upwards (each guest has a network of its own). TAP: a random
     * address in the same locally administered prefix, since several guests may share a bridge.
     */
    static MacAddress defaultMac(NetConfig c, int index) {
        if (c instanceof NetConfig.User) return new MacAddress(FIRST_DEFAULT_MAC + index);
        return new MacAddress(0x52_54_00_00_00_00L | (new SecureRandom().nextInt() & 0xff_ffffL));
    }

    /**
     * User networking without port forwards starts when the guest's driver first brings the NIC up: a guest that
     * never uses its network pays nothing for it. Forwards listen from the start, so a busy port fails the launch.
     */
    static NetBackend open(NetConfig c, String option) {
        try {
            return switch (c) {
                case NetConfig.User u
                when u.forwards().isEmpty() ->
                    new DeferredNetBackend(UserNetBackend.CAPABILITIES, () -> UserNetBackend.start(u));
                case NetConfig.User u -> UserNetBackend.start(u);
                case NetConfig.Tap t -> TapBackend.open(t);
            };
        } catch (NetBackendException e) {
            throw new BootException(Kind.NETWORK_UNAVAILABLE, option + ": " + e.getMessage(), e);
        }
    }
}
