package dev.jvmm.core;

/** What a device may ask of the machine it sits in: to end the run (power-off, reset, debug exit). */
@FunctionalInterface
public interface VmControl {
    /** Ends the run with this status; the first request wins. Safe from any thread, including vCPU threads. */
    void requestExit(ExitStatus status);
}
