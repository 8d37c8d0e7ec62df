package dev.jvmm.core.snapshot;

import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.testing.Guests;
import dev.jvmm.core.testing.RecordingDevice;
import dev.jvmm.core.x86.EntryState;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The counter32 guest (src/test/guest/counter32.c) and its devices: a ticket device the guest takes each count from
 * (saved in snapshots as a {@link Snapshottable}), a port it reports every {@link #STEP}th count on, and one it
 * reports a wrong ticket on. Also the main class of the child JVM that restores a snapshot in a new process.
 */
final class CounterGuest implements AutoCloseable {
    static final long COUNTER = 0x20000;
    static final int TICKET_PORT = 0xf0, REPORT_PORT = 0xf4, ERROR_PORT = 0xf8;
    static final int STEP = 256;
    static final Duration WAIT = Duration.ofSeconds(60);

    /** Hands out 1, 2, 3, ... to reads; its next ticket is its saved state. */
    static final class Tickets implements BusDevice, Snapshottable {
        private long next = 1;

        @Override
        public synchronized long read(long offset, int size) {
            return next++ & 0xffffffffL;
        }

        @Override
        public void write(long offset, int size, long value) {}

        synchronized long next() {
            return next;
        }

        @Override
        public String snapshotId() {
            return "tickets";
        }

        @Override
        public int snapshotVersion() {
            return 1;
        }

        @Override
        public synchronized void saveState(StateOutput out) {
            out.u64(next);
        }

        @Override
        public synchronized void restoreState(int version, StateInput in) {
            next = in.u64("next ticket");
            in.expectEnd();
        }
    }

    final VirtualMachine vm;
    final Tickets tickets = new Tickets();
    final RecordingDevice reports = new RecordingDevice(() -> 0);
    final RecordingDevice errors = new RecordingDevice(() -> 0);

    private CounterGuest(VirtualMachine vm) {
        this.vm = vm;
        try {
            vm.ioBus().register("tickets", TICKET_PORT, 4, tickets);
            vm.ioBus().register("reports", REPORT_PORT, 4, reports);
            vm.ioBus().register("errors", ERROR_PORT, 4, errors);
            vm.snapshottable(tickets);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** A new VM running counter32 on vCPU 0; vCPU 1 (when cpus is 2) waits for a SIPI that never comes. */
    static CounterGuest boot(int cpus) {
        CounterGuest g = new CounterGuest(
                VirtualMachine.builder().cpus(cpus).memory(64 << 20).build());
        try {
            g.vm.memory().write(0x10000, Guests.load("counter32.bin"));
            g.vm.setEntry(0, EntryState.protectedMode(0x10000).withRsp(0x80000));
            return g;
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
    }

    /** The guest restored from {@code snapshot}, its devices attached and the ticket device's state loaded. */
    static CounterGuest restore(SnapshotFile snapshot) {
        return new CounterGuest(VirtualMachine.restore(snapshot));
    }

    /** The counts reported so far. */
    List<Long> reports() {
        List<Long> out = new ArrayList<>();
        for (RecordingDevice.Access a : reports.accesses()) if (a.write()) out.add(a.value());
        return out;
    }

    /** Waits for {@code n} reports in all; fails at once naming the ticket if the guest reported a wrong one. */
    void awaitReports(int n) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!reports.awaitWrites(n, 100)) {
            checkNoErrors();
            if (System.nanoTime() > deadline) throw new AssertionError("only " + reports() + " reported in " + WAIT);
        }
        checkNoErrors();
    }

    void checkNoErrors() {
        if (!errors.accesses().isEmpty())
            throw new AssertionError(
                    "counter32 got ticket " + errors.accesses().getFirst().value() + " after counting to " + counter()
                            + " (a ticket skipped or repeated)");
    }

    long counter() {
        return Integer.toUnsignedLong(vm.memory().readInt(COUNTER));
    }

    /** Reports were made and each is the one before plus {@link #STEP}, from {@code first}. */
    static void checkConsecutive(List<Long> reports, long first) {
        if (reports.isEmpty()) throw new AssertionError("no reports");
        for (int i = 0; i < reports.size(); i++)
            if (reports.get(i) != first + (long) i * STEP)
                throw new AssertionError("report " + i + " is " + reports.get(i) + ", expected "
                        + (first + (long) i * STEP) + " (all: " + reports + ")");
    }

    @Override
    public void close() {
        vm.close();
    }

    /**
     * The child JVM: restores the snapshot in args[0], runs it until args[1] reports came, and prints them one per
     * line as "report N", then "counter N"; exit status 0 when it got them and no wrong ticket.
     */
    public static void main(String[] args) throws Exception {
        int want = Integer.parseInt(args[1]);
        List<Long> reports;
        long counter;
        try (CounterGuest g = restore(SnapshotFile.read(Path.of(args[0])))) {
            g.vm.start();
            g.awaitReports(want);
            g.vm.stop();
            g.checkNoErrors();
            reports = g.reports();
            counter = g.counter();
        }
        for (long r : reports) System.out.println("report " + r);
        System.out.println("counter " + counter);
    }
}
