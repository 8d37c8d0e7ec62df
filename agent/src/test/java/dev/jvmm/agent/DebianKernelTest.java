package dev.jvmm.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Debian's kernel package (fetched into the cache as the boot tests do): its bzImage and the agent's modules. */
@Tag("slow")
class DebianKernelTest {
    @Test
    void theAgentsModulesComeInLoadOrder() throws Exception {
        DebianKernel debian;
        try {
            debian = DebianKernel.resolve();
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("Debian's kernel could not be fetched: " + e.getMessage());
            return;
        }
        assertTrue(Files.size(debian.kernel()) > 1 << 20);
        List<KernelModule> mods = debian.modules(AgentInitramfs.VSOCK_MODULES);
        List<String> names = mods.stream().map(KernelModule::name).toList();
        assertTrue(names.containsAll(List.of("virtio_pci", "vmw_vsock_virtio_transport", "vsock")), names.toString());
        for (KernelModule m : mods) {
            for (String d : m.depends())
                assertTrue(names.indexOf(d) < names.indexOf(m.name()), d + " before " + m.name() + ": " + names);
            assertEquals(m.name(), KernelModule.read(m.file()).name());
        }
        System.out.println(debian.release() + " loads " + names);
    }

    /** Debian's busybox-static, taken out of its package as for a host without one. */
    @Test
    void busyboxComesOutOfItsPackage(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path deb;
        try {
            deb = AptPackages.download("busybox-static", dir.resolve("deb"));
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("busybox-static could not be fetched: " + e.getMessage());
            return;
        }
        java.nio.file.Path busybox = dir.resolve("busybox");
        AptPackages.extract(deb, "bin/busybox", busybox);
        assertTrue(AgentInitramfs.isStaticElf(busybox), "a static executable");
    }
}
