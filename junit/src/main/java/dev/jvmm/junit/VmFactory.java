package dev.jvmm.junit;

import dev.jvmm.microvm.MicroVm;

/**
 * How the extension starts, reads and closes a VM. {@link MicroVmFactory} is the one users get; the extension's own
 * tests name another with the configuration parameter {@link JvmmExtension#FACTORY_PARAMETER}, so that its
 * lifecycle is tested without /dev/kvm. Package-private: nothing outside this package can stand in for a VM.
 */
interface VmFactory<T> {
    /** What {@link #start} returns: the type a {@link Vm} field or parameter must accept. */
    Class<T> type();

    T start(Spec spec) throws Exception;

    /** The VM's console so far. */
    String console(T vm);

    void close(T vm) throws Exception;

    /**
     * One VM to start: where it is declared (for messages), its annotation, and the builder made from the
     * annotation's attributes or returned by its {@link Vm#builder()} method.
     */
    record Spec(String name, Vm vm, MicroVm.Builder builder, boolean fromBuilderMethod) {}
}
