package dev.jvmm.core.testing;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A test that runs guests on the real /dev/kvm. Tagged "kvm" so the fast suite can leave it out
 * ({@code ./test -Dtests.exclude=kvm}). Without /dev/kvm it is skipped with the reason, except under
 * CI=true, where the absence fails the run: CI machines have /dev/kvm, and a silent skip would hide that.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag("kvm")
@ExtendWith(KvmCondition.class)
public @interface RequiresKvm {}
