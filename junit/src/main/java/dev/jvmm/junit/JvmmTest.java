package dev.jvmm.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A test class whose {@link Vm @Vm} fields and parameters are micro-VMs that jvmm starts and closes: a static field
 * holds one VM for the whole class (started before the first test, closed after the last), an instance field and a
 * parameter a fresh one per test. When a test fails, the console of each VM it could see goes into its report.
 * <pre>{@code
 * @JvmmTest
 * class GuestTest {
 *     @Vm(memoryMiB = 256) static MicroVm vm;
 *
 *     @Test
 *     void uname() throws Exception {
 *         assertEquals(0, vm.exec("uname", "-r").exitCode());
 *     }
 * }
 * }</pre>
 */
@Documented
@Inherited
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@ExtendWith(JvmmExtension.class)
public @interface JvmmTest {}
