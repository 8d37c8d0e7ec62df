package dev.jvmm.core.testing;

import java.util.List;

/**
 * What the /dev/kvm a test runs on can do. Two kinds are known (HOST.md): KVM with hardware virtualisation (real
 * VT-x/AMD-V, or AMD-V emulated by QEMU inside scripts/with-kvm), where a whole Linux boots; and {@code kvm_pvm},
 * which executes guest kernel mode in KVM's instruction emulator, so Linux stops in its early boot. Tests check
 * the stronger outcome where the host allows it, and say which one they checked.
 */
public final class KvmHost {
    private KvmHost() {}

    /** True where guest kernel code is emulated instruction by instruction (kvm_pvm): no full OS boots there. */
    public static boolean emulatesGuestKernel() {
        return dev.jvmm.core.Kvm.emulatesGuestKernel();
    }

    /**
     * Options for the JVMs a test starts (a jvmm process): C1 only inside the emulated machine (scripts/with-kvm), where
     * C2's compiler threads would take the one emulated vCPU from the guest for minutes (JVMs run 20-40x slower
     * there), and none elsewhere.
     */
    public static List<String> childJvmOptions() {
        return System.getenv("JVMM_EMULATED") != null ? List.of("-XX:TieredStopAtLevel=1") : List.of();
    }

    /** One line for a test's output naming the outcome it checked on this host. */
    public static void checked(String test, String outcome) {
        System.out.println(test + ": checked " + outcome
                + (emulatesGuestKernel()
                        ? " (kvm_pvm host: guest kernel mode is emulated, Linux stops in early boot)"
                        : " (hardware-virtualisation KVM"
                                + (System.getenv("JVMM_EMULATED") != null ? ", inside the emulated machine)" : ")")));
    }
}
