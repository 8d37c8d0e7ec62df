package dev.jvmm.junit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.junit.KvmCondition.Host;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.platform.engine.TestExecutionResult;

/** {@link EnabledIfKvm}'s decision for each kind of host, and once through JUnit on this one. */
class KvmConditionTest {
    private static final Host NONE = new Host(Optional.of("No such file or directory"), false, false);
    private static final Host HARDWARE = new Host(Optional.empty(), false, false);
    private static final Host PVM = new Host(Optional.empty(), true, false);

    @Test
    void withoutKvmTheTestIsSkippedWithTheReason() {
        ConditionEvaluationResult r = KvmCondition.evaluate(false, NONE);
        assertTrue(r.isDisabled());
        assertEquals(
                "skipped: /dev/kvm cannot be used here: No such file or directory",
                r.getReason().orElseThrow());
    }

    @Test
    void underCiAMissingKvmFails() {
        Host ci = new Host(NONE.kvmError(), false, true);
        var e = assertThrows(ExtensionConfigurationException.class, () -> KvmCondition.evaluate(false, ci));
        assertTrue(e.getMessage().startsWith("CI=true but /dev/kvm cannot be used here"), e.getMessage());
    }

    @Test
    void fullLinuxSkipsKvmPvmWithTheReasonEvenUnderCi() {
        assertFalse(KvmCondition.evaluate(false, PVM).isDisabled());
        ConditionEvaluationResult r = KvmCondition.evaluate(true, new Host(Optional.empty(), true, true));
        assertTrue(r.isDisabled());
        assertTrue(
                r.getReason().orElseThrow().contains("kvm_pvm"), r.getReason().orElseThrow());
        assertFalse(KvmCondition.evaluate(true, HARDWARE).isDisabled());
    }

    @EnabledIfKvm(fullLinux = true)
    static class NeedsLinux {
        @Test
        void t() {}
    }

    @Test
    void thisHostsDecisionReachesJUnit() {
        Recorder r = Recorder.run(NeedsLinux.class, false);
        Host here = Host.current();
        if (here.kvmError().isPresent() && here.ci()) {
            assertEquals(TestExecutionResult.Status.FAILED, r.status("KvmConditionTest$NeedsLinux"));
        } else if (here.kvmError().isPresent() || here.emulatesGuestKernel()) {
            assertTrue(r.skipped.get("KvmConditionTest$NeedsLinux").startsWith("skipped: "), r.skipped.toString());
        } else {
            assertEquals(TestExecutionResult.Status.SUCCESSFUL, r.status("t()"));
        }
    }
}
