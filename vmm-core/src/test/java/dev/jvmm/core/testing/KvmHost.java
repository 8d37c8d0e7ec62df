package dev.jvmm.core.testing;

import java.nio.file.Path;
import java.util.ArrayList;
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
     * A jvmm process as a test starts one: this JVM's runtime and class path, the CLI's main class and {@code args}.
     * Inside the emulated machine (scripts/with-kvm) it runs C1 only, as the test JVMs there do: C2's compiler
     * threads would take the one emulated vCPU from the guest for minutes.
     */
    public static List<String> jvmmProcess(List<String> args) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        if (System.getenv("JVMM_EMULATED") != null) command.add("-XX:TieredStopAtLevel=1");
        command.addAll(List.of(
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow",
                "-cp",
                System.getProperty("java.class.path"),
                "dev.jvmm.cli.Main"));
        command.addAll(args);
        return command;
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
