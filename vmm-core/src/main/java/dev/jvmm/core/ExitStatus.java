package dev.jvmm.core;

/** How a VM ended. */
public sealed interface ExitStatus {
    /** The process exit code a command-line run reports for this outcome. */
    int exitCode();

    /** One line for a person. */
    String describe();

    /** The guest powered off (ACPI, KVM_SYSTEM_EVENT_SHUTDOWN, or a halt with nothing left to wake it). */
    record PowerOff() implements ExitStatus {
        public int exitCode() {
            return 0;
        }

        public String describe() {
            return "guest powered off";
        }
    }

    /** The guest asked for a reset (keyboard controller, triple-fault-as-reset is a Crash instead). */
    record Reset() implements ExitStatus {
        public int exitCode() {
            return 0;
        }

        public String describe() {
            return "guest reset";
        }
    }

    /** The guest wrote to a debug-exit device; code is its value, exitCode QEMU's (value << 1) | 1. */
    record GuestExit(int code) implements ExitStatus {
        public int exitCode() {
            return ((code << 1) | 1) & 0xff;
        }

        public String describe() {
            return "guest exited with debug-exit code " + code;
        }
    }

    /**
     * The guest crashed (triple fault, an instruction KVM cannot emulate, a failed entry); report has the registers.
     */
    record Crash(String reason, String report) implements ExitStatus {
        public int exitCode() {
            return 2;
        }

        public String describe() {
            return "guest crashed: " + reason;
        }
    }

    /** jvmm itself failed while running the guest. */
    record Error(String reason, Throwable cause) implements ExitStatus {
        public int exitCode() {
            return 3;
        }

        public String describe() {
            return "VMM error: " + reason;
        }
    }

    /** The host stopped the VM (stop(), Ctrl-C, a test's timeout). */
    record Stopped() implements ExitStatus {
        public int exitCode() {
            return 130;
        }

        public String describe() {
            return "stopped by the host";
        }
    }
}
