package dev.jvmm.junit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.agent.ExecResult;
import dev.jvmm.microvm.MicroVm;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The extension with real micro-VMs: a static field (one VM for the class) and a parameter (one for the test),
 * each answering through its agent. Needs a KVM that boots a whole Linux: on a kvm_pvm host it is skipped, with
 * the reason, by {@link EnabledIfKvm#fullLinux()} (there MicroVm would wait for an agent that never comes;
 * OutsideProjectKvmTest boots through the extension in the emulated machine instead).
 */
@JvmmTest
@EnabledIfKvm(fullLinux = true)
@Tag("kvm")
@Tag("slow")
class JvmmExtensionKvmTest {
    @Vm
    static MicroVm shared;

    static MicroVm.Builder small() {
        return MicroVm.builder().memory(128 << 20).cmdline("loglevel=4");
    }

    @Test
    void aStaticFieldIsARunningVm() throws Exception {
        ExecResult r = shared.exec("uname", "-r");
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(r.stdout().matches("\\d+\\.\\d+\\S*\n"), r.stdout());
    }

    @Test
    void aParameterIsAVmOfItsOwn(@Vm(builder = "small") MicroVm mine) throws Exception {
        assertNotSame(shared, mine);
        ExecResult mem = mine.exec("sh", "-c", "grep MemTotal /proc/meminfo");
        assertEquals(0, mem.exitCode(), mem.stderr());
        long kib = Long.parseLong(mem.stdout().replaceAll("\\D", ""));
        assertTrue(kib < 128 * 1024 && kib > 64 * 1024, "the builder's 128 MiB: " + mem.stdout());
        assertEquals("shared\n", shared.exec("echo", "shared").stdout(), "the class's VM still answers");
    }
}
