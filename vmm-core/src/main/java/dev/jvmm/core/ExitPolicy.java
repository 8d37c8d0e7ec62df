package dev.jvmm.core;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.kvm.gen.KvmHeaders;
import java.util.function.Supplier;

/**
 * What a vCPU does with each decoded exit: port I/O and MMIO go to their bus, and the exits that end the
 * guest become an {@link ExitStatus}. It knows nothing of fds or KVM_RUN, so tests drive it with a
 * {@link VcpuExit} over plain memory. Handling I/O, MMIO and the wake-up exits allocates nothing; only the
 * exits that end the VM build a status (and a register report, through the supplier, for crashes).
 */
final class ExitPolicy {
    private static final int INTERNAL_ERROR_EMULATION = KvmHeaders.KVM_INTERNAL_ERROR_EMULATION();

    private final int vcpuId;
    private final Bus ioBus;
    private final Bus mmioBus;
    private final Supplier<String> report;

    /** report: the vCPU's registers and code at RIP, asked for only when the guest crashed. */
    ExitPolicy(int vcpuId, Bus ioBus, Bus mmioBus, Supplier<String> report) {
        this.vcpuId = vcpuId;
        this.ioBus = ioBus;
        this.mmioBus = mmioBus;
        this.report = report;
    }

    /** Acts on the exit exit.decode() just found: null to enter the guest again, or how the VM ends. */
    ExitStatus handle(VcpuExit exit) {
        return switch (exit.kind()) {
            case IO_OUT -> {
                // String I/O (rep outsb) arrives as count items back to back in the data area.
                int port = exit.ioPort(), size = exit.ioSize(), count = exit.ioCount();
                for (int i = 0; i < count; i++) ioBus.write(port, size, exit.ioData(i));
                yield null;
            }
            case IO_IN -> {
                int port = exit.ioPort(), size = exit.ioSize(), count = exit.ioCount();
                for (int i = 0; i < count; i++) exit.setIoData(i, ioBus.read(port, size));
                yield null;
            }
            case MMIO_WRITE -> {
                mmioBus.write(exit.mmioAddress(), exit.mmioLength(), exit.mmioData());
                yield null;
            }
            case MMIO_READ -> {
                exit.setMmioData(mmioBus.read(exit.mmioAddress(), exit.mmioLength()));
                yield null;
            }
            // nothing to do: the next KVM_RUN delivers what is pending
            case IRQ_WINDOW_OPEN, INTR -> null;
            // Only without an in-kernel irqchip: nothing can wake the vCPU, so the guest is done.
            case HLT -> new ExitStatus.PowerOff();
            case SHUTDOWN ->
                new ExitStatus.Crash("triple fault on vCPU " + vcpuId + " (KVM_EXIT_SHUTDOWN)", report.get());
            case SYSTEM_EVENT ->
                switch (exit.systemEvent()) {
                    case SHUTDOWN -> new ExitStatus.PowerOff();
                    case RESET -> new ExitStatus.Reset();
                    case CRASH, OTHER ->
                        new ExitStatus.Crash(
                                "system event " + exit.systemEventType() + " on vCPU " + vcpuId, report.get());
                };
            case INTERNAL_ERROR -> internalError(exit);
            case FAIL_ENTRY ->
                new ExitStatus.Crash(
                        String.format(
                                "KVM could not enter vCPU %d (KVM_EXIT_FAIL_ENTRY, reason 0x%x)",
                                vcpuId, exit.failEntryReason()),
                        report.get());
            // KVM never sends these. An MMIO access of a length no bus carries is ignored, as it always was; port
            // I/O whose data would lie outside kvm_run ends the VM rather than be trusted.
            case MALFORMED ->
                exit.reason() == VcpuExit.EXIT_MMIO
                        ? null
                        : new ExitStatus.Error(
                                "vCPU " + vcpuId + ": malformed exit, " + exit.describeMalformed(), null);
            case UNKNOWN ->
                new ExitStatus.Crash(
                        "unexpected exit " + ExitReason.name(exit.reason()) + " on vCPU " + vcpuId, report.get());
        };
    }

    private ExitStatus internalError(VcpuExit exit) {
        int sub = exit.internalSuberror();
        String what = sub == INTERNAL_ERROR_EMULATION
                ? "an instruction KVM cannot emulate"
                : "KVM internal error, suberror " + sub;
        StringBuilder data = new StringBuilder();
        for (int i = 0, n = exit.internalDataCount(); i < n; i++)
            data.append(String.format(" 0x%x", exit.internalData(i)));
        return new ExitStatus.Crash(
                what + " on vCPU " + vcpuId + " (KVM_EXIT_INTERNAL_ERROR, suberror " + sub + ")",
                "internal error data:" + data + "\n" + report.get());
    }
}
