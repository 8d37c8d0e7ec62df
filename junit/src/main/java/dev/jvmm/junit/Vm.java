package dev.jvmm.junit;

import dev.jvmm.microvm.MicroVm;
import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A {@link MicroVm} field or test-method parameter that {@link JvmmTest} starts (its agent answering) and closes: a
 * static field once per class, an instance field and a parameter once per test. Configured by the attributes, or,
 * for anything they do not cover, by {@link #builder()}: a static method of the test class that returns the
 * {@link MicroVm.Builder} to start.
 */
@Documented
@Target({ElementType.FIELD, ElementType.PARAMETER})
@Retention(RetentionPolicy.RUNTIME)
public @interface Vm {
    /** Guest memory in MiB. */
    int memoryMiB() default 256;

    /** vCPUs. */
    int cpus() default 1;

    /** User-mode networking ({@link MicroVm.Builder#network()}); forwarded ports turn it on too. */
    boolean network() default false;

    /** Guest TCP ports forwarded from free host ports on 127.0.0.1 ({@link MicroVm#hostPort(int)} says which). */
    int[] forwardPorts() default {};

    /** Appended to the kernel command line ({@link MicroVm#BASE_CMDLINE}). */
    String cmdline() default "";

    /**
     * The name of a static, parameterless method of the test class (or a superclass) that returns a
     * {@link MicroVm.Builder}; the VM is that builder's. The other attributes must then keep their defaults.
     */
    String builder() default "";
}
