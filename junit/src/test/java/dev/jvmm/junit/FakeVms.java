package dev.jvmm.junit;

import java.util.ArrayList;
import java.util.List;

/**
 * A {@link VmFactory} without KVM for the extension's own tests: each "VM" is a {@link FakeVm}; what happens is
 * written to one shared log, which the fixtures' tests write to as well, so a test can check the order.
 */
final class FakeVms implements VmFactory<FakeVms.FakeVm> {
    static final List<String> LOG = new ArrayList<>();
    static final List<FakeVm> STARTED = new ArrayList<>();
    /** The console each new VM gets. */
    static String console = "";

    static final class FakeVm {
        final int id;
        final Spec spec;
        final String console;
        boolean closed;

        FakeVm(int id, Spec spec, String console) {
            this.id = id;
            this.spec = spec;
            this.console = console;
        }

        @Override
        public String toString() {
            return "vm" + id;
        }
    }

    static synchronized void reset() {
        LOG.clear();
        STARTED.clear();
        console = "";
    }

    static synchronized void log(String line) {
        LOG.add(line);
    }

    static synchronized long closedCount() {
        return STARTED.stream().filter(v -> v.closed).count();
    }

    @Override
    public Class<FakeVm> type() {
        return FakeVm.class;
    }

    @Override
    public FakeVm start(Spec spec) {
        synchronized (FakeVms.class) {
            if (spec.vm().cmdline().equals("fail")) throw new IllegalStateException("no agent: " + spec.name());
            FakeVm vm = new FakeVm(STARTED.size(), spec, console);
            STARTED.add(vm);
            log("start " + vm + " " + spec.name());
            return vm;
        }
    }

    @Override
    public String console(FakeVm vm) {
        return vm.console;
    }

    @Override
    public void close(FakeVm vm) {
        synchronized (FakeVms.class) {
            if (vm.closed) throw new AssertionError(vm + " closed twice");
            vm.closed = true;
            log("close " + vm);
        }
    }
}
