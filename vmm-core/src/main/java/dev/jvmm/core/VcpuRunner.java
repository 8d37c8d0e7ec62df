package dev.jvmm.core;

import dev.jvmm.core.bus.Bus;
import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.gen.KvmHeaders;
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
 * One vCPU's thread: KVM_RUN in a loop, each exit dispatched to the bus or ending the run. The loop
 * allocates nothing per exit: kvm_run is read at offsets computed once.
 *
 * <p>To take the thread out of KVM_RUN (pause, stop), {@link #kick()} sets kvm_run.immediate_exit and sends
 * the thread a signal, so KVM_RUN returns EINTR whether the guest spins, halts or is about to enter.
 */
final class VcpuRunner {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private static final long EXIT_REASON = kvm_run.exit_reason$offset();
    private static final long IMMEDIATE_EXIT = kvm_run.immediate_exit$offset();
    private static final long IO = kvm_run.io$offset();
    private static final long IO_DIRECTION = IO + kvm_run.io.direction$offset();
    private static final long IO_SIZE = IO + kvm_run.io.size$offset();
    private static final long IO_PORT = IO + kvm_run.io.port$offset();
    private static final long IO_COUNT = IO + kvm_run.io.count$offset();
    private static final long IO_DATA_OFFSET = IO + kvm_run.io.data_offset$offset();
    private static final long MMIO = kvm_run.mmio$offset();
    private static final long MMIO_ADDR = MMIO + kvm_run.mmio.phys_addr$offset();
    private static final long MMIO_DATA = MMIO + kvm_run.mmio.data$offset();
    private static final long MMIO_LEN = MMIO + kvm_run.mmio.len$offset();
    private static final long MMIO_IS_WRITE = MMIO + kvm_run.mmio.is_write$offset();

    private static final int EXIT_IO = KvmHeaders.KVM_EXIT_IO();
    private static final int EXIT_MMIO = KvmHeaders.KVM_EXIT_MMIO();
    private static final int EXIT_HLT = KvmHeaders.KVM_EXIT_HLT();
    private static final int EXIT_SHUTDOWN = KvmHeaders.KVM_EXIT_SHUTDOWN();
    private static final int EXIT_SYSTEM_EVENT = KvmHeaders.KVM_EXIT_SYSTEM_EVENT();
    private static final int EXIT_INTERNAL_ERROR = KvmHeaders.KVM_EXIT_INTERNAL_ERROR();
    private static final int EXIT_FAIL_ENTRY = KvmHeaders.KVM_EXIT_FAIL_ENTRY();
    private static final int EXIT_IRQ_WINDOW_OPEN = KvmHeaders.KVM_EXIT_IRQ_WINDOW_OPEN();
    private static final int EXIT_INTR = KvmHeaders.KVM_EXIT_INTR();

    private static volatile int kickSignal;

    private final VirtualMachine machine;
    private final Vcpu vcpu;
    private final MemorySegment run;
    private final Bus ioBus;
    private final Bus mmioBus;
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
        this.ioBus = machine.ioBus();
        this.mmioBus = machine.mmioBus();
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

    void awaitPaused() {
        synchronized (pauseLock) {
            while (pauseRequested && !paused && thread.isAlive()) {
                try {
                    pauseLock.wait(10);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
                if (!paused) kick(); // the signal may have landed just before KVM_RUN; immediate_exit covers it, retry anyway
            }
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
                    machine.requestExit(new ExitStatus.Error("KVM_RUN on vCPU " + vcpu.id() + " failed: "
                            + Errno.name(-r) + " (" + Libc.strerror(-r) + ")", null));
                    return;
                }
                long t0 = System.nanoTime();
                int reason = run.get(ValueLayout.JAVA_INT, EXIT_REASON);
                handle(reason);
                stats.record(reason, System.nanoTime() - t0);
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

    private void holdWhilePaused() {
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

    private void handle(int reason) {
        if (reason == EXIT_IO) {
            handleIo();
        } else if (reason == EXIT_MMIO) {
            handleMmio();
        } else if (reason == EXIT_IRQ_WINDOW_OPEN || reason == EXIT_INTR) {
            // nothing to do: the next KVM_RUN delivers what is pending
        } else if (reason == EXIT_HLT) {
            // Only without an in-kernel irqchip: nothing can wake the vCPU, so the guest is done.
            machine.requestExit(new ExitStatus.PowerOff());
        } else if (reason == EXIT_SHUTDOWN) {
            machine.requestExit(new ExitStatus.Crash("triple fault on vCPU " + vcpu.id() + " (KVM_EXIT_SHUTDOWN)", report()));
        } else if (reason == EXIT_SYSTEM_EVENT) {
            int type = kvm_run.system_event.type(kvm_run.system_event(run));
            if (type == KvmHeaders.KVM_SYSTEM_EVENT_SHUTDOWN()) machine.requestExit(new ExitStatus.PowerOff());
            else if (type == KvmHeaders.KVM_SYSTEM_EVENT_RESET()) machine.requestExit(new ExitStatus.Reset());
            else machine.requestExit(new ExitStatus.Crash("system event " + type + " on vCPU " + vcpu.id(), report()));
        } else if (reason == EXIT_INTERNAL_ERROR) {
            MemorySegment internal = kvm_run.internal(run);
            int sub = kvm_run.internal.suberror(internal);
            String what = sub == KvmHeaders.KVM_INTERNAL_ERROR_EMULATION()
                    ? "an instruction KVM cannot emulate" : "KVM internal error, suberror " + sub;
            int ndata = Math.min(kvm_run.internal.ndata(internal), 16);
            StringBuilder data = new StringBuilder();
            for (int i = 0; i < ndata; i++) data.append(String.format(" 0x%x", kvm_run.internal.data(internal, i)));
            machine.requestExit(new ExitStatus.Crash(what + " on vCPU " + vcpu.id() + " (KVM_EXIT_INTERNAL_ERROR, suberror "
                    + sub + ")", "internal error data:" + data + "\n" + report()));
        } else if (reason == EXIT_FAIL_ENTRY) {
            long hw = kvm_run.fail_entry.hardware_entry_failure_reason(kvm_run.fail_entry(run));
            machine.requestExit(new ExitStatus.Crash(String.format("KVM could not enter vCPU %d (KVM_EXIT_FAIL_ENTRY, reason 0x%x)",
                    vcpu.id(), hw), report()));
        } else {
            machine.requestExit(new ExitStatus.Crash("unexpected exit " + ExitReason.name(reason) + " on vCPU " + vcpu.id(), report()));
        }
    }

    private void handleIo() {
        int port = run.get(U16, IO_PORT) & 0xffff;
        int size = run.get(ValueLayout.JAVA_BYTE, IO_SIZE);
        int count = run.get(U32, IO_COUNT);
        long data = run.get(U64, IO_DATA_OFFSET);
        boolean out = run.get(ValueLayout.JAVA_BYTE, IO_DIRECTION) == KvmHeaders.KVM_EXIT_IO_OUT();
        // String I/O (rep outsb/insb) arrives as count items back to back in the data area.
        for (int i = 0; i < count; i++) {
            long at = data + (long) i * size;
            if (out) ioBus.write(port, size, readValue(at, size));
            else writeValue(at, size, ioBus.read(port, size));
        }
    }

    private void handleMmio() {
        long addr = run.get(U64, MMIO_ADDR);
        int len = run.get(U32, MMIO_LEN);
        if (len <= 0 || len > 8) return; // KVM never sends these; ignore rather than trust
        if (run.get(ValueLayout.JAVA_BYTE, MMIO_IS_WRITE) != 0) mmioBus.write(addr, len, readValue(MMIO_DATA, len));
        else writeValue(MMIO_DATA, len, mmioBus.read(addr, len));
    }

    private long readValue(long offset, int size) {
        return switch (size) {
            case 1 -> run.get(ValueLayout.JAVA_BYTE, offset) & 0xffL;
            case 2 -> run.get(U16, offset) & 0xffffL;
            case 4 -> run.get(U32, offset) & 0xffff_ffffL;
            case 8 -> run.get(U64, offset);
            default -> {
                long v = 0;
                for (int i = 0; i < size; i++) v |= (run.get(ValueLayout.JAVA_BYTE, offset + i) & 0xffL) << (8 * i);
                yield v;
            }
        };
    }

    private void writeValue(long offset, int size, long value) {
        switch (size) {
            case 1 -> run.set(ValueLayout.JAVA_BYTE, offset, (byte) value);
            case 2 -> run.set(U16, offset, (short) value);
            case 4 -> run.set(U32, offset, (int) value);
            case 8 -> run.set(U64, offset, value);
            default -> {
                for (int i = 0; i < size; i++) run.set(ValueLayout.JAVA_BYTE, offset + i, (byte) (value >>> (8 * i)));
            }
        }
    }

    /** Registers, control registers and the bytes at RIP, for crash reports. */
    String report() {
        StringBuilder sb = new StringBuilder();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = kvm_regs.allocate(arena);
            MemorySegment s = kvm_sregs.allocate(arena);
            vcpu.getRegs(r);
            vcpu.getSregs(s);
            sb.append(String.format("vCPU %d: rip=%016x rsp=%016x rflags=%08x%n", vcpu.id(), kvm_regs.rip(r), kvm_regs.rsp(r), kvm_regs.rflags(r)));
            sb.append(String.format("rax=%016x rbx=%016x rcx=%016x rdx=%016x%n", kvm_regs.rax(r), kvm_regs.rbx(r), kvm_regs.rcx(r), kvm_regs.rdx(r)));
            sb.append(String.format("rsi=%016x rdi=%016x rbp=%016x%n", kvm_regs.rsi(r), kvm_regs.rdi(r), kvm_regs.rbp(r)));
            MemorySegment cs = kvm_sregs.cs(s);
            sb.append(String.format("cs=%04x base=%x l=%d db=%d cr0=%x cr2=%x cr3=%x cr4=%x efer=%x%n",
                    kvm_segment.selector(cs) & 0xffff, kvm_segment.base(cs), kvm_segment.l(cs), kvm_segment.db(cs),
                    kvm_sregs.cr0(s), kvm_sregs.cr2(s), kvm_sregs.cr3(s), kvm_sregs.cr4(s), kvm_sregs.efer(s)));
            long linear = kvm_segment.base(cs) + kvm_regs.rip(r);
            long phys = (kvm_sregs.cr0(s) & 0x8000_0000L) != 0 ? vcpu.translate(linear) : linear;
            if (phys >= 0 && machine.memory().isValid(phys, 16)) {
                byte[] code = new byte[16];
                machine.memory().read(phys, code, 0, 16);
                sb.append("code at rip: ").append(HexFormat.ofDelimiter(" ").formatHex(code)).append('\n');
            } else {
                sb.append(String.format("code at rip: not in guest RAM (linear %x)%n", linear));
            }
        } catch (RuntimeException e) {
            sb.append("(registers unavailable: ").append(e.getMessage()).append(")\n");
        }
        return sb.toString();
    }
}
