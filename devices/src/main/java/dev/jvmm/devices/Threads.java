package dev.jvmm.devices;

/** Thread lifecycle helpers the devices' I/O threads share. */
public final class Threads {
    private Threads() {}

    /**
     * Waits until {@code thread} has ended, however often the caller is interrupted meanwhile: a device stopping
     * its I/O thread must not go on while that thread may still touch queues or guest memory. The caller's
     * interrupt status is restored afterwards.
     */
    public static void joinUninterruptibly(Thread thread) {
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }
}
