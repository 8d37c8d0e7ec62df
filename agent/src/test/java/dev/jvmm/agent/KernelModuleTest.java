package dev.jvmm.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class KernelModuleTest {
    private static KernelModule m(String name, String... depends) {
        return new KernelModule(name, List.of(depends), Path.of(name + ".ko"));
    }

    @Test
    void eachModuleComesAfterWhatItNeeds() {
        List<KernelModule> order = KernelModule.loadOrder(
                List.of(
                        m(
                                "vmw_vsock_virtio_transport",
                                "virtio",
                                "vmw_vsock_virtio_transport_common",
                                "virtio_ring",
                                "vsock"),
                        m("virtio_pci", "virtio_ring", "virtio_pci_modern_dev", "virtio"),
                        m("vmw_vsock_virtio_transport_common", "vsock"),
                        m("virtio", "virtio_ring"),
                        m("virtio_ring"),
                        m("vsock"),
                        m("virtio_pci_modern_dev")),
                Set.of());
        List<String> names = order.stream().map(KernelModule::name).toList();
        assertEquals(
                List.of(
                                "virtio",
                                "virtio_ring",
                                "vmw_vsock_virtio_transport_common",
                                "vsock",
                                "vmw_vsock_virtio_transport",
                                "virtio_pci_modern_dev",
                                "virtio_pci")
                        .size(),
                names.size());
        for (KernelModule k : order)
            for (String d : k.depends())
                assertEquals(
                        true, names.indexOf(d) < names.indexOf(k.name()), d + " before " + k.name() + ": " + names);
    }

    @Test
    void builtInDependenciesAreSkippedAndMissingOnesNamed() {
        assertEquals(
                1,
                KernelModule.loadOrder(List.of(m("virtio_net", "failover")), Set.of("failover"))
                        .size());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> KernelModule.loadOrder(List.of(m("virtio_net", "failover")), Set.of()));
        assertEquals("module virtio_net needs failover, which is not given", e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> KernelModule.loadOrder(List.of(m("a", "b"), m("b", "a")), Set.of()));
    }

    @Test
    void fileNamesUseUnderscores() {
        assertEquals("virtio_rng", KernelModule.nameOf(Path.of("/x/virtio-rng.ko.xz")));
    }
}
