package dev.jvmm.bench;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.event.IoEventRegistry;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.core.x86.EntryState;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;

/**
 * A jvmm VM running the benchmark guest, wired as refvmm wires it: the guest's sink port and MMIO page
 * answered by a device that does nothing, the control port that brackets batches, debugcon, debug-exit, two
 * ioeventfds and (for the irq benchmark) an MSI route with a thread that pings the guest through its irqfd.
 *
 * <p>In gate mode the guest asks the control port for each batch, and {@link #runBatch} hands one over: that
 * is how JMH drives jvmm's own vCPU thread. Nothing on the exit path allocates.
 */
public final class BenchMachine implements AutoCloseable {
    public static final long LOAD_ADDR = 0x10_0000;
    static final long MBI_ADDR = 0x7000;
    static final long CMDLINE_ADDR = 0x7100;
    static final int MULTIBOOT_MAGIC = 0x2BADB002;
    static final int BENCH_PORT = 0x5a0;
    static final int IOEVENT_PORT = 0x5a4;
    static final int IRQ_READY_PORT = 0x5a8;
    static final int CTL_PORT = 0x5b0;
    static final int DEBUGCON_PORT = 0xe9;
    static final int DEBUG_EXIT_PORT = 0xf4;
    static final long BENCH_MMIO = 0xd000_0000L;
    static final long MSI_ADDRESS = 0xfee0_0000L;
    static final int WAKE_VECTOR = 0x40;
    /** Histogram range: 1 ns to 10 s, 3 significant digits. */
    static final long HISTOGRAM_MAX_NS = 10_000_000_000L;

    private final VirtualMachine vm;
    private final Control control;
    private final Sink sink;
    private final Console console;
    private final int tscKhz;

    private BenchMachine(Builder b) {
        vm = VirtualMachine.builder().memory(b.memoryBytes).build();
        try {
            vm.memory().write(LOAD_ADDR, b.image);
            byte[] cmd = (b.cmdline + "\0").getBytes(StandardCharsets.US_ASCII);
            if (cmd.length > 0x800) throw new IllegalArgumentException("command line too long: " + b.cmdline);
            vm.memory().write(CMDLINE_ADDR, cmd);
            vm.memory().fill(MBI_ADDR, 0x80, (byte) 0);
            vm.memory().writeInt(MBI_ADDR, 1 << 2); // flags: cmdline present
            vm.memory().writeInt(MBI_ADDR + 16, (int) CMDLINE_ADDR);
            vm.setEntry(
                    0,
                    EntryState.protectedMode(LOAD_ADDR).withRax(MULTIBOOT_MAGIC).withRbx(MBI_ADDR));

            sink = new Sink(b.sampling);
            control = new Control(vm, b.gate, b.maxBatches, sink);
            console = new Console(b.echo);
            vm.ioBus().register("bench-sink", BENCH_PORT, 4, sink);
            vm.mmioBus().register("bench-sink", BENCH_MMIO, 0x1000, sink);
            vm.ioBus().register("bench-control", CTL_PORT, 12, control);
            vm.ioBus().register("debugcon", DEBUGCON_PORT, 1, console);
            vm.ioBus().register("debug-exit", DEBUG_EXIT_PORT, 4, new BusDevice() {
                public long read(long offset, int size) {
                    return 0;
                }

                public void write(long offset, int size, long value) {
                    vm.requestExit(new ExitStatus.GuestExit((int) value));
                }
            });

            EventFd ioevent = new EventFd(false);
            vm.own(ioevent);
            vm.own(vm.ioEvents().register(IoEventRegistry.Space.PIO, IOEVENT_PORT, 1, ioevent));
            EventFd ready = new EventFd(false);
            vm.own(ready);
            vm.own(vm.ioEvents().register(IoEventRegistry.Space.PIO, IRQ_READY_PORT, 1, ready));
            if (b.irqPinger) {
                MsiRoute route = vm.interrupts().msiRoute();
                route.update(MSI_ADDRESS, WAKE_VECTOR);
                vm.own(route);
                vm.own(new Pinger(ready, route)); // closed first: owned resources close in reverse order
            }
            tscKhz = vm.vcpus().get(0).tscKhz();
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    public static Builder builder(byte[] image, String cmdline) {
        return new Builder(image, cmdline);
    }

    /** The machine for one exit benchmark. */
    public static Builder forKind(byte[] image, ExitKind kind, int cpl, int n, int reps, boolean gate) {
        return new Builder(image, kind.cmdline(cpl, n, reps, gate))
                .irqPinger(kind == ExitKind.IRQ)
                .gate(gate);
    }

    public void start() {
        vm.start();
    }

    public VirtualMachine vm() {
        return vm;
    }

    /** Gate mode: lets the guest run one batch of n exits and returns its host-side time in ns. */
    public long runBatch(int n) {
        return control.runBatch(n);
    }

    /** Gate mode: tells the guest no more batches come; it then ends through debug-exit. */
    public void finish() {
        control.finish();
    }

    public Optional<ExitStatus> awaitExit(Duration timeout) throws InterruptedException {
        return vm.awaitExit(timeout);
    }

    /** Host-side ns of each completed batch (between the guest's start and end markers). */
    public long[] batchNanos() {
        return control.batchNanos();
    }

    /** The guest's rdtsc delta of each completed batch. */
    public long[] guestCycles() {
        return control.guestCycles();
    }

    public int tscKhz() {
        return tscKhz;
    }

    /** Intervals between consecutive sink exits inside batches (only when built with sampling). */
    public Histogram histogram() {
        return sink.histogram;
    }

    public String console() {
        return console.text();
    }

    /**
     * Gate mode: the time the vCPU thread spent inside control-port reads waiting for the next batch. It is
     * counted in ExitStats' handling time of IO exits, and is not jvmm's, so dispatch figures subtract it.
     */
    public long gateWaitNanos() {
        return control.gateWaitNanos;
    }

    /** The vCPU thread's id, known once the guest has made its first control-port access. */
    public long vcpuThreadId() {
        Thread t = control.vcpuThread;
        return t == null ? -1 : t.threadId();
    }

    @Override
    public void close() {
        control.finish();
        vm.close();
    }

    public static final class Builder {
        private final byte[] image;
        private final String cmdline;
        private long memoryBytes = 64L << 20;
        private boolean gate;
        private boolean sampling;
        private boolean irqPinger;
        private int maxBatches = 4096;
        private OutputStream echo;

        private Builder(byte[] image, String cmdline) {
            this.image = image;
            this.cmdline = cmdline;
        }

        public Builder memory(long bytes) {
            this.memoryBytes = bytes;
            return this;
        }

        public Builder gate(boolean on) {
            this.gate = on;
            return this;
        }

        /** Records each exit-to-exit interval of the sink into an HdrHistogram (one nanoTime per exit). */
        public Builder sampling(boolean on) {
            this.sampling = on;
            return this;
        }

        public Builder irqPinger(boolean on) {
            this.irqPinger = on;
            return this;
        }

        /** Copies guest debugcon output to a stream, byte by byte as it comes. */
        public Builder echo(OutputStream out) {
            this.echo = out;
            return this;
        }

        public BenchMachine build() {
            return new BenchMachine(this);
        }
    }

    /** The sink port and MMIO page: reads answer 0, writes are dropped; optionally timed. */
    static final class Sink implements BusDevice {
        final Histogram histogram;
        private final boolean sampling;
        boolean inBatch; // vCPU thread only
        long last;

        Sink(boolean sampling) {
            this.sampling = sampling;
            this.histogram = sampling ? new Histogram(HISTOGRAM_MAX_NS, 3) : null;
        }

        void batchStarts(long now) {
            inBatch = true;
            last = now;
        }

        @Override
        public long read(long offset, int size) {
            if (sampling) sample();
            return 0;
        }

        @Override
        public void write(long offset, int size, long value) {
            if (sampling) sample();
        }

        private void sample() {
            if (!inBatch) return;
            long t = System.nanoTime();
            histogram.recordValue(Math.min(Math.max(t - last, 1), HISTOGRAM_MAX_NS));
            last = t;
        }
    }

    /**
     * The control port: offset 0 read = the next batch size (gate mode: waits for {@link #runBatch}), write 1
     * / 2 = batch starts / ends; offsets 4 and 8 = the batch's guest rdtsc delta, low then high half.
     */
    static final class Control implements BusDevice {
        private final VirtualMachine vm;
        private final boolean gate;
        private final Sink sink;
        private final long[] batches;
        private final long[] cycles;
        private volatile int completed;
        private int cyclesSeen;
        private long cyclesLow;
        private long batchStart;
        private volatile int pending;
        private volatile boolean finished;
        private volatile long lastBatch;
        private volatile long gateWaitNanos;
        volatile Thread vcpuThread;
        private volatile Thread driver;

        Control(VirtualMachine vm, boolean gate, int maxBatches, Sink sink) {
            this.vm = vm;
            this.gate = gate;
            this.sink = sink;
            this.batches = new long[maxBatches];
            this.cycles = new long[maxBatches];
        }

        @Override
        public long read(long offset, int size) {
            if (offset != 0 || !gate) return 0;
            vcpuThread = Thread.currentThread();
            long waitStart = System.nanoTime();
            int n;
            while ((n = pending) == 0) {
                if (finished || vm.exitStatus().isPresent()) return 0;
                LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(50));
            }
            pending = 0;
            batchStart = System.nanoTime();
            gateWaitNanos += batchStart - waitStart; // only this (vCPU) thread writes it
            sink.batchStarts(batchStart);
            return n;
        }

        @Override
        public void write(long offset, int size, long value) {
            if (offset == 0 && value == 1) {
                vcpuThread = Thread.currentThread();
                batchStart = System.nanoTime();
                sink.batchStarts(batchStart);
            } else if (offset == 0 && value == 2) {
                long ns = System.nanoTime() - batchStart;
                sink.inBatch = false;
                int i = completed;
                if (i < batches.length) batches[i] = ns;
                lastBatch = ns;
                completed = i + 1;
                Thread d = driver;
                if (d != null) LockSupport.unpark(d);
            } else if (offset == 4) {
                cyclesLow = value & 0xffff_ffffL;
            } else if (offset == 8) {
                if (cyclesSeen < cycles.length) cycles[cyclesSeen] = (value << 32) | cyclesLow;
                cyclesSeen++;
            }
        }

        long runBatch(int n) {
            if (!gate) throw new IllegalStateException("runBatch needs a machine built in gate mode");
            if (n <= 0) throw new IllegalArgumentException("a batch needs at least one exit, not " + n);
            driver = Thread.currentThread();
            int target = completed + 1;
            pending = n;
            Thread v = vcpuThread;
            if (v != null) LockSupport.unpark(v);
            while (completed < target) {
                LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(20));
                if (completed < target && vm.exitStatus().isPresent())
                    throw new IllegalStateException("the benchmark guest ended during a batch: "
                            + vm.exitStatus().get());
            }
            return lastBatch;
        }

        void finish() {
            finished = true;
            Thread v = vcpuThread;
            if (v != null) LockSupport.unpark(v);
        }

        long[] batchNanos() {
            return Arrays.copyOf(batches, Math.min(completed, batches.length));
        }

        long[] guestCycles() {
            return Arrays.copyOf(cycles, Math.min(cyclesSeen, cycles.length));
        }
    }

    /** debugcon: collects the guest's text and optionally echoes it unbuffered. */
    static final class Console implements BusDevice {
        private final StringBuilder text = new StringBuilder();
        private final OutputStream echo;

        Console(OutputStream echo) {
            this.echo = echo;
        }

        @Override
        public long read(long offset, int size) {
            return 0xe9; // the port's conventional "present" answer
        }

        @Override
        public synchronized void write(long offset, int size, long value) {
            text.append((char) (value & 0xff));
            if (echo != null) {
                try {
                    echo.write((int) value & 0xff);
                    echo.flush();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }

        synchronized String text() {
            return text.toString();
        }
    }

    /** The irq benchmark's host side: each "ready" from the guest (ioeventfd) is answered by one MSI (irqfd). */
    static final class Pinger implements AutoCloseable {
        private final EventFd ready;
        private final Thread thread;
        private volatile boolean stopping;

        Pinger(EventFd ready, MsiRoute route) {
            this.ready = ready;
            this.thread = Thread.ofPlatform().daemon().name("bench-irq-pinger").start(() -> {
                while (true) {
                    ready.await();
                    if (stopping) return;
                    route.trigger();
                }
            });
        }

        @Override
        public void close() throws InterruptedException {
            stopping = true;
            ready.signal();
            thread.join(5000);
        }
    }
}
