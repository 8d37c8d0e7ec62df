package dev.jvmm.core;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.gen.kvm_regs;
import dev.jvmm.kvm.gen.kvm_run;
import dev.jvmm.kvm.gen.kvm_segment;
import dev.jvmm.kvm.gen.kvm_sregs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HexFormat;
import java.util.concurrent.CountDownLatch;

/**
 * One vCPU's thread: KVM_RUN in a loop, each exit decoded by a {@link VcpuExit} and acted on by an
 * {@link ExitPolicy} (dispatched to a bus, or ending the run). The loop allocates nothing per exit: the view
 * over kvm_run and the policy are made once.
 *
 * <p>To take the thread out of KVM_RUN (pause, stop), {@link #kick()} sets kvm_run.immediate_exit and sends
 * the thread a signal, so KVM_RUN returns EINTR whether the guest spins, halts or is about to enter.
 */
final class VcpuRunner {
    private static final long IMMEDIATE_EXIT = kvm_run.immediate_exit$offset();

    private static volatile int kickSignal;

    private final VirtualMachine machine;
    private final Vcpu vcpu;
    private final MemorySegment run;
    private final VcpuExit exit;
    private final ExitPolicy policy;
    private final ExitStats stats;
    private final Thread thread;
    private final CountDownLatch started = new CountDownLatch(1);
    private final Object pauseLock = new Object();
    private volatile long pthread;
    private volatile boolean pauseRequested;
    private boolean paused; // guarded by pauseLock

    VcpuRunner(VirtualMachine machine, Vcpu vcpu) {
        this.machine = machine;
        this.vcpu = vcpu;
        this.run = vcpu.runArea();
        this.exit = VcpuExit.over(run);
        this.policy = new ExitPolicy(vcpu.id(), machine.ioBus(), machine.mmioBus(), this::report);
        this.stats = machine.stats();
        this.thread = Thread.ofPlatform().name("vcpu-" + vcpu.id()).unstarted(this::loop);
    }

    /**
     * Installs a no-op handler for the kick signal once per JVM. Its only job is to make KVM_RUN return
     * EINTR; the JVM lets applications handle SIGUSR2 (and SIGUSR1 where USR2 is taken).
     */
    static synchronized void installKickSignal() {
        if (kickSignal != 0) return;
        for (String name : new String[] {"USR2", "USR1"}) {
            try {
                sun.misc.Signal s = new sun.misc.Signal(name);
                sun.misc.Signal.handle(s, sig -> {});
                kickSignal = s.getNumber();
                return;
            } catch (IllegalArgumentException taken) {
                // try the next one
            }
        }
        throw new IllegalStateException("neither SIGUSR2 nor SIGUSR1 is free to kick vCPUs out of KVM_RUN");
    }

    void start() {
        thread.start();
    }

    void awaitStarted() {
        try {
            started.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    void join() {
        if (Thread.currentThread() == thread) return;
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Takes the vCPU out of KVM_RUN as soon as possible. Safe from any thread. */
    void kick() {
        run.set(ValueLayout.JAVA_BYTE, IMMEDIATE_EXIT, (byte) 1);
        long t = pthread;
        if (t != 0 && thread.isAlive() && Thread.currentThread() != thread) Libc.pthreadKill(t, kickSignal);
    }

    void requestPause(boolean pause) {
        synchronized (pauseLock) {
            pauseRequested = pause;
            pauseLock.notifyAll();
        }
        if (pause) kick();
    }

    /**
     * Waits until the vCPU is held, its pause was withdrawn or its thread ended: true then; false when
     * {@code deadlineNanos} (a {@link System#nanoTime()} value; Long.MAX_VALUE: none) passed first or this thread
     * was interrupted.
     */
    boolean awaitPaused(long deadlineNanos) {
        synchronized (pauseLock) {
            while (pauseRequested && !paused && thread.isAlive()) {
                if (deadlineNanos != Long.MAX_VALUE && System.nanoTime() - deadlineNanos >= 0) return false;
                try {
                    pauseLock.wait(10);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
                if (!paused)
                    kick(); // the signal may have landed just before KVM_RUN; immediate_exit covers it, retry anyway
            }
            return true;
        }
    }

    private void loop() {
        pthread = Libc.pthreadSelf();
        started.countDown();
        try {
            while (!machine.exitRequested()) {
                if (pauseRequested) {
                    holdWhilePaused();
                    continue;
                }
                int r = vcpu.run();
                if (r < 0) {
                    if (r == -Errno.EINTR || r == -Errno.EAGAIN) {
                        run.set(ValueLayout.JAVA_BYTE, IMMEDIATE_EXIT, (byte) 0);
                        continue;
                    }
                    machine.requestExit(new ExitStatus.Error(
                            "KVM_RUN on vCPU " + vcpu.id() + " failed: " + Errno.name(-r) + " (" + Libc.strerror(-r)
                                    + ")",
                            null));
                    return;
                }
                handleExit();
            }
        } catch (Throwable t) {
            // A device or VMM bug ends this VM, not the JVM, and is reported with its cause.
            machine.requestExit(new ExitStatus.Error("vCPU " + vcpu.id() + ": " + t, t));
        } finally {
            synchronized (pauseLock) {
                pauseLock.notifyAll();
            }
        }
    }

    private void handleExit() {
        long t0 = System.nanoTime();
        exit.decode();
        ExitStatus end = policy.handle(exit);
        if (end != null) machine.requestExit(end);
        stats.record(exit.reason(), System.nanoTime() - t0);
    }

    /**
     * Completes the exit this vCPU last took before it is held: KVM finishes an I/O or MMIO exit (the data of an IN
     * into its register, the RIP past an OUT) only on the next KVM_RUN, keeping that pending work where no ioctl can
     * read it, so a snapshot taken before it would replay an OUT or lose an IN. KVM_RUN with immediate_exit set does
     * that work and returns EINTR without running the guest; a string instruction's next chunk can still exit to
     * userspace first, and is handled like any exit. False when the run ended meanwhile.
     */
    private boolean settle() {
        while (!machine.exitRequested()) {
            run.set(ValueLayout.JAVA_BYTE, IMMEDIATE_EXIT, (byte) 1);
            int r = vcpu.run();
            if (r == -Errno.EINTR || r == -Errno.EAGAIN) return true;
            if (r < 0) {
                machine.requestExit(new ExitStatus.Error(
                        "KVM_RUN (completing an exit before a pause) on vCPU " + vcpu.id() + " failed: "
                                + Errno.name(-r),
                        null));
                return false;
            }
            handleExit();
        }
        return false;
    }

    private void holdWhilePaused() {
        if (!settle()) return;
        synchronized (pauseLock) {
            paused = true;
            pauseLock.notifyAll();
            while (pauseRequested && !machine.exitRequested()) {
                try {
                    pauseLock.wait(50);
                } catch (InterruptedException e) {
                    break;
                }
            }
            paused = false;
        }
        run.set(ValueLayout.JAVA_BYTE, IMMEDIATE_EXIT, (byte) 0);
    }

    /** Registers, control registers and the bytes at RIP, for crash reports. */
    String report() {
        StringBuilder sb = new StringBuilder();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = kvm_regs.allocate(arena);
            MemorySegment s = kvm_sregs.allocate(arena);
            vcpu.getRegs(r);
            vcpu.getSregs(s);
            sb.append(String.format(
                    "vCPU %d: rip=%016x rsp=%016x rflags=%08x%n",
                    vcpu.id(), kvm_regs.rip(r), kvm_regs.rsp(r), kvm_regs.rflags(r)));
            sb.append(String.format(
                    "rax=%016x rbx=%016x rcx=%016x rdx=%016x%n",
                    kvm_regs.rax(r), kvm_regs.rbx(r), kvm_regs.rcx(r), kvm_regs.rdx(r)));
            sb.append(String.format(
                    "rsi=%016x rdi=%016x rbp=%016x%n", kvm_regs.rsi(r), kvm_regs.rdi(r), kvm_regs.rbp(r)));
            MemorySegment cs = kvm_sregs.cs(s);
            sb.append(String.format(
                    "cs=%04x base=%x l=%d db=%d cr0=%x cr2=%x cr3=%x cr4=%x efer=%x%n",
                    kvm_segment.selector(cs) & 0xffff,
                    kvm_segment.base(cs),
                    kvm_segment.l(cs),
                    kvm_segment.db(cs),
                    kvm_sregs.cr0(s),
                    kvm_sregs.cr2(s),
                    kvm_sregs.cr3(s),
                    kvm_sregs.cr4(s),
                    kvm_sregs.efer(s)));
            long linear = kvm_segment.base(cs) + kvm_regs.rip(r);
            long phys = (kvm_sregs.cr0(s) & 0x8000_0000L) != 0 ? vcpu.translate(linear) : linear;
            if (phys >= 0 && machine.memory().isValid(phys, 16)) {
                byte[] code = new byte[16];
                machine.memory().read(phys, code, 0, 16);
                sb.append("code at rip: ")
                        .append(HexFormat.ofDelimiter(" ").formatHex(code))
                        .append('\n');
            } else {
                sb.append(String.format("code at rip: not in guest RAM (linear %x)%n", linear));
            }
        } catch (RuntimeException e) {
            sb.append("(registers unavailable: ").append(e.getMessage()).append(")\n");
        }
        return sb.toString();
    }
}
