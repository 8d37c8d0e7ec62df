package dev.jvmm.bench;

import java.util.List;

/** The exits the benchmark guest (src/main/c/guest/bench.c) can loop on; names are its {@code kind=} values. */
public enum ExitKind {
    PIO_OUT("pio_out", "port I/O write to userspace", true, true),
    PIO_IN("pio_in", "port I/O read from userspace", true, true),
    MMIO_WRITE("mmio_write", "MMIO write to userspace", true, true),
    MMIO_READ("mmio_read", "MMIO read from userspace", true, true),
    IOEVENTFD("ioeventfd", "ioeventfd write (completed in the kernel)", true, false),
    IRQ("irq", "irqfd MSI wakes a halted vCPU, guest answers via ioeventfd (round trip)", false, false);

    private final String guestName;
    private final String description;
    private final boolean userModeToo;
    private final boolean qemuComparable;

    ExitKind(String guestName, String description, boolean userModeToo, boolean qemuComparable) {
        this.guestName = guestName;
        this.description = description;
        this.userModeToo = userModeToo;
        this.qemuComparable = qemuComparable;
    }

    public String guestName() {
        return guestName;
    }

    public String description() {
        return description;
    }

    /** HLT is privileged, so the irq benchmark runs in kernel mode only. */
    public List<Integer> cpls() {
        return userModeToo ? List.of(0, 3) : List.of(0);
    }

    /**
     * Whether QEMU serves the same exit: it has no ioeventfd or irqfd at the benchmark's ports without a
     * device of its own, so those kinds have no QEMU column.
     */
    public boolean qemuComparable() {
        return qemuComparable;
    }

    public static ExitKind byGuestName(String name) {
        for (ExitKind k : values()) if (k.guestName.equals(name)) return k;
        throw new IllegalArgumentException("unknown exit kind '" + name + "'");
    }

    /** The multiboot command line the guest parses. */
    public String cmdline(int cpl, int n, int reps, boolean gate) {
        return "kind=" + guestName + " n=" + n + " reps=" + reps + " cpl=" + cpl + " gate=" + (gate ? 1 : 0);
    }
}
