package dev.jvmm.core.testing;

import dev.jvmm.core.Kvm;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/** Enables {@link RequiresKvm} tests where /dev/kvm can be opened; under CI=true its absence is an error. */
public final class KvmCondition implements ExecutionCondition {
    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        try (Kvm ignored = Kvm.open()) {
            return ConditionEvaluationResult.enabled("/dev/kvm is available");
        } catch (RuntimeException e) {
            if ("true".equals(System.getenv("CI")))
                throw new IllegalStateException("CI=true but /dev/kvm cannot be used: " + e.getMessage(), e);
            return ConditionEvaluationResult.disabled("skipped: /dev/kvm cannot be used here: " + e.getMessage());
        }
    }
}
