package dev.jvmm.cli;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * SIGTERM as systemd's stop and virsh shutdown mean it: the guest is asked first (its ACPI power button, so an OS
 * shuts down cleanly and the run ends with a power-off), and stopped hard when it has not powered off within the
 * grace period, or at a second SIGTERM; either is said on stderr. Installed for the length of a run.
 */
final class SigtermShutdown implements AutoCloseable {
    /** What a running machine offers for this. */
    interface Target {
        void pressPowerButton();

        void stop();
    }

    private static final Signal TERM = new Signal("TERM");
    private final Target target;
    private final Duration grace;
    private final PrintWriter err;
    private final AtomicInteger signals = new AtomicInteger();
    private final SignalHandler previous;
    private volatile Thread timer;
    private volatile boolean closed;

    private SigtermShutdown(Target target, Duration grace, PrintWriter err, boolean install) {
        this.target = target;
        this.grace = grace;
        this.err = err;
        this.previous = install ? Signal.handle(TERM, s -> terminate()) : null;
    }

    static SigtermShutdown install(Target target, Duration grace, PrintWriter err) {
        return new SigtermShutdown(target, grace, err, true);
    }

    /** Without the signal handler: tests call {@link #terminate()} themselves. */
    static SigtermShutdown forTest(Target target, Duration grace, PrintWriter err) {
        return new SigtermShutdown(target, grace, err, false);
    }

    /** Whether a SIGTERM came during the run (a reboot then ends it rather than booting again). */
    boolean received() {
        return signals.get() > 0;
    }

    /** One SIGTERM. */
    void terminate() {
        if (closed) return;
        int n = signals.incrementAndGet();
        if (n == 1) {
            err.println("jvmm: SIGTERM: pressed the guest's power button; it is stopped in " + grace.toSeconds()
                    + " s if it has not powered off, or at a second SIGTERM");
            err.flush();
            target.pressPowerButton();
            timer = Thread.ofPlatform().daemon().name("jvmm-sigterm-grace").start(() -> {
                try {
                    Thread.sleep(grace);
                } catch (InterruptedException e) {
                    return; // the run ended first
                }
                if (closed) return;
                err.println(
                        "jvmm: the guest did not power off within " + grace.toSeconds() + " s of SIGTERM: stopping it");
                err.flush();
                target.stop();
            });
        } else if (n == 2) {
            err.println("jvmm: second SIGTERM: stopping the guest");
            err.flush();
            target.stop();
        }
    }

    @Override
    public void close() {
        closed = true;
        Thread t = timer;
        if (t != null) t.interrupt();
        if (previous != null) Signal.handle(TERM, previous);
    }
}
