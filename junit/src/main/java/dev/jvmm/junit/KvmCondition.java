package dev.jvmm.junit;

import dev.jvmm.core.Kvm;
import java.util.Optional;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.platform.commons.support.AnnotationSupport;

/** {@link EnabledIfKvm}'s decision. */
final class KvmCondition implements ExecutionCondition {
    /** What the decision looks at, apart from the test: a seam for testing it on any host. */
    record Host(Optional<String> kvmError, boolean emulatesGuestKernel, boolean ci) {
        static Host current() {
            Optional<String> error;
            try (Kvm ignored = Kvm.open()) {
                error = Optional.empty();
            } catch (RuntimeException e) {
                error = Optional.of(String.valueOf(e.getMessage()));
            }
            return new Host(error, Kvm.emulatesGuestKernel(), "true".equals(System.getenv("CI")));
        }
    }

    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        // Found on the element itself: a class's annotation was decided on the class, a method's on the method.
        Optional<EnabledIfKvm> annotation = AnnotationSupport.findAnnotation(context.getElement(), EnabledIfKvm.class);
        if (annotation.isEmpty()) return ConditionEvaluationResult.enabled("no @EnabledIfKvm here");
        return evaluate(annotation.get().fullLinux(), Host.current());
    }

    static ConditionEvaluationResult evaluate(boolean fullLinux, Host host) {
        if (host.kvmError().isPresent()) {
            String why = "/dev/kvm cannot be used here: " + host.kvmError().get();
            if (host.ci()) throw new ExtensionConfigurationException("CI=true but " + why);
            return ConditionEvaluationResult.disabled("skipped: " + why);
        }
        if (fullLinux && host.emulatesGuestKernel())
            return ConditionEvaluationResult.disabled("skipped: this /dev/kvm is kvm_pvm, which emulates guest kernel"
                    + " mode, so Linux stops in its early boot; the test needs KVM with hardware virtualisation"
                    + " (or jvmm's scripts/with-kvm, whose emulated machine has it)");
        return ConditionEvaluationResult.enabled(
                fullLinux ? "/dev/kvm boots a whole Linux here" : "/dev/kvm is available");
    }
}
