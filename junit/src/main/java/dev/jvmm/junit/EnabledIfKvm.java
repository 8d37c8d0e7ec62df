package dev.jvmm.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Runs a test class or method only where /dev/kvm can be opened, and skips it with the reason elsewhere, except
 * under {@code CI=true}, where a missing /dev/kvm fails the test: a CI machine is meant to have one, and a silent
 * skip would hide that it has not.
 */
@Documented
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@ExtendWith(KvmCondition.class)
public @interface EnabledIfKvm {
    /**
     * Also require a KVM on which a whole Linux boots. On a {@code kvm_pvm} host (a nested, paravirtual KVM that
     * emulates guest kernel mode instruction by instruction) Linux stops in its early boot, so a
     * {@link dev.jvmm.microvm.MicroVm} never reaches its agent: with this set, such a host skips the test with the
     * reason (even under CI) instead of waiting for an agent that will not answer.
     */
    boolean fullLinux() default false;
}
