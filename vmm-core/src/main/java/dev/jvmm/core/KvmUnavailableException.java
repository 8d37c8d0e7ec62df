package dev.jvmm.core;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.SyscallException;

/** /dev/kvm cannot be used; the message says what a person can do about it. */
public final class KvmUnavailableException extends SyscallException {
    KvmUnavailableException(String call, int errno, String remedy) {
        super(call, errno, remedy);
    }

    /** True when there is no KVM device at all (rather than one this process may not open). */
    public boolean deviceMissing() {
        return errno() == Errno.ENOENT || errno() == Errno.ENODEV || errno() == Errno.ENXIO;
    }

    public static KvmUnavailableException of(String path, SyscallException e) {
        String remedy = switch (e.errno()) {
            case Errno.ENOENT, Errno.ENODEV, Errno.ENXIO ->
                path + " does not exist: turn on the CPU's virtualisation"
                        + " (vmx or svm must appear in /proc/cpuinfo; check the firmware settings) and load the "
                        + "kvm module"
                        + " (modprobe kvm_intel or kvm_amd)";
            case Errno.EACCES, Errno.EPERM ->
                "no permission to open " + path + ": add the user to the kvm group"
                        + " (usermod -aG kvm $USER, then log in again) or run as root";
            default -> "cannot open " + path + ": " + e.getMessage();
        };
        return new KvmUnavailableException(e.call(), e.errno(), remedy);
    }
}
