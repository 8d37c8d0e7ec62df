package dev.jvmm.devices.acpi;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VmControl;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import java.util.Objects;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * ACPI fixed-hardware power management registers in port I/O, as the FADT describes them: the PM1a event
 * block (status, enable), the PM1a control register, the FADT reset register and the PM timer, packed into
 * {@link #LENGTH} ports:
 * <pre>
 *   +0  PM1_STS (16 bits, write 1 to clear)   +2  PM1_EN (16 bits)
 *   +4  PM1_CNT (16 bits)                     +6  RESET_REG (8 bits)      +7  unused
 *   +8  PM_TMR (32-bit read, 24 bits counting at 3.579545 MHz)
 * </pre>
 * Setting SLP_EN with SLP_TYP = {@link #SLP_TYP_S5} (the DSDT's \_S5 value) ends the run with
 * {@link ExitStatus.PowerOff}; writing {@link #RESET_VALUE} to the reset register ends it with
 * {@link ExitStatus.Reset}. Other sleep states are not offered in the DSDT; a guest that enters one anyway
 * wakes at once (WAK_STS set) rather than spinning forever. SCI_EN always reads as set: the machine is in
 * ACPI mode from the start (the FADT has no SMI command port).
 *
 * <p>The fixed-feature power button: {@link #pressPowerButton()} sets PWRBTN_STS, and the SCI (a level
 * interrupt) is held high while a status bit is set whose enable bit is set too; the guest's handler clears
 * the status and so lowers the line. The PM timer is the reference clock Linux checks other clocksources
 * against; its TMR_STS (the counter's top bit toggled) is kept, but TMR_EN raises no SCI: no OS relies on it.
 */
public final class AcpiPm implements BusDevice, Snapshottable {
    private static final Logger LOG = LoggerFactory.getLogger(AcpiPm.class);
    public static final int LENGTH = 12;
    public static final int PM1_EVT_OFFSET = 0, PM1_EVT_LENGTH = 4;
    public static final int PM1_CNT_OFFSET = 4, PM1_CNT_LENGTH = 2;
    public static final int RESET_OFFSET = 6;
    public static final int PM_TMR_OFFSET = 8, PM_TMR_LENGTH = 4;
    /** The ACPI PM timer's fixed frequency (ACPI 6.5 section 4.8.3.3). */
    public static final long PM_TIMER_HZ = 3_579_545;

    static final int PM_TIMER_BITS = 24;
    /** The value the FADT tells the guest to write to the reset register. */
    public static final int RESET_VALUE = 0x0f;
    /** SLP_TYP for S5 (soft off), as the DSDT's \_S5 package says. */
    public static final int SLP_TYP_S5 = 5;

    static final int STS_TMR = 1, STS_PWRBTN = 1 << 8, STS_WAK = 1 << 15;
    /** PM1_EN bits: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN, PCIEXP_WAKE_DIS; kept as written. */
    static final int EN_DEFINED = 0x4721;
    /** Events that raise the SCI when enabled. */
    static final int SCI_EVENTS = STS_PWRBTN;

    static final int CNT_SCI_EN = 1,
            CNT_SLP_TYP_SHIFT = 10,
            CNT_SLP_TYP_MASK = 7 << CNT_SLP_TYP_SHIFT,
            CNT_SLP_EN = 1 << 13;
    /** PM1_CNT bits that read back as written (SLP_TYP, BM_RLD); SCI_EN is fixed, SLP_EN and GBL_RLS write-only. */
    static final int CNT_STORED = CNT_SLP_TYP_MASK | 0x2;

    private final VmControl control;
    private final IrqLine sci;
    private final LongSupplier nanoTime;
    private long startNanos; // guarded by this: a restore moves it
    // Guarded by this.
    private int status;
    private int enable;
    private int control16;
    private boolean sciHigh;
    /** The PM timer's count >> 23 when TMR_STS was last cleared: TMR_STS is set once that changes. */
    private long timerEpochAtClear;

    public AcpiPm(VmControl control, IrqLine sci) {
        this(control, sci, System::nanoTime);
    }

    AcpiPm(VmControl control, IrqLine sci, LongSupplier nanoTime) {
        this.control = Objects.requireNonNull(control, "control");
        this.sci = Objects.requireNonNull(sci, "sci");
        this.nanoTime = nanoTime;
        this.startNanos = nanoTime.getAsLong();
    }

    /** The power button is pressed (and released): the guest's OS decides what to do, usually a clean shutdown. */
    public synchronized void pressPowerButton() {
        status |= STS_PWRBTN;
        updateSci();
    }

    /** The PM timer's count since the machine was made, before it is cut to the register's 24 bits. */
    private long timerTicks() {
        long ns = nanoTime.getAsLong() - startNanos;
        return ns / 1_000_000_000L * PM_TIMER_HZ + ns % 1_000_000_000L * PM_TIMER_HZ / 1_000_000_000L;
    }

    private int statusNow() {
        if ((timerTicks() >>> (PM_TIMER_BITS - 1)) != timerEpochAtClear) status |= STS_TMR;
        return status;
    }

    private void updateSci() {
        boolean high = (status & enable & SCI_EVENTS) != 0;
        if (high != sciHigh) {
            sciHigh = high;
            sci.set(high);
        }
    }

    @Override
    public synchronized long read(long offset, int size) {
        long v = 0;
        // The timer is sampled once per access, so that a 32-bit read is one consistent value.
        long timer = timerTicks() & ((1L << PM_TIMER_BITS) - 1);
        for (int i = 0; i < size; i++) {
            long at = offset + i;
            int b = at >= PM_TMR_OFFSET && at < PM_TMR_OFFSET + PM_TMR_LENGTH
                    ? (int) (timer >>> (8 * (at - PM_TMR_OFFSET))) & 0xff
                    : readByte(at);
            v |= (long) b << (8 * i);
        }
        return v;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        // Byte by byte: a guest may use any width; SLP_TYP and SLP_EN share PM1_CNT's high byte, so one
        // byte write carries a whole sleep request.
        for (int i = 0; i < size; i++) writeByte(offset + i, (int) (value >>> (8 * i)) & 0xff);
    }

    private int readByte(long offset) {
        return switch ((int) offset) {
            case 0 -> statusNow() & 0xff;
            case 1 -> statusNow() >>> 8;
            case 2 -> enable & 0xff;
            case 3 -> enable >>> 8;
            case 4 -> (control16 | CNT_SCI_EN) & 0xff;
            case 5 -> control16 >>> 8;
            default -> 0; // the reset register reads as zero; outside the block as well
        };
    }

    private void writeByte(long offset, int b) {
        switch ((int) offset) {
            case 0 -> {
                if ((b & STS_TMR) != 0) timerEpochAtClear = timerTicks() >>> (PM_TIMER_BITS - 1);
                status &= ~b;
                updateSci();
            }
            case 1 -> {
                status &= ~(b << 8);
                updateSci();
            }
            case 2 -> {
                enable = (enable & 0xff00) | (b & EN_DEFINED);
                updateSci();
            }
            case 3 -> {
                enable = (enable & 0x00ff) | ((b << 8) & EN_DEFINED);
                updateSci();
            }
            case 4 -> control16 = (control16 & 0xff00) | (b & CNT_STORED);
            case 5 -> {
                int cnt = (control16 & 0x00ff) | (b << 8);
                control16 = cnt & CNT_STORED;
                if ((cnt & CNT_SLP_EN) != 0) sleep((cnt & CNT_SLP_TYP_MASK) >>> CNT_SLP_TYP_SHIFT);
            }
            case RESET_OFFSET -> {
                if (b == RESET_VALUE) control.requestExit(new ExitStatus.Reset());
                else LOG.debug("ACPI reset register: ignored value 0x{}", Integer.toHexString(b));
            }
            default -> {}
        }
    }

    private void sleep(int type) {
        if (type == SLP_TYP_S5) {
            control.requestExit(new ExitStatus.PowerOff());
        } else {
            LOG.debug("ACPI sleep type {} is not offered; the guest wakes at once", type);
            status |= STS_WAK;
        }
    }

    // ---- snapshots

    static final int STATE_VERSION = 1;

    @Override
    public String snapshotId() {
        return "acpi-pm";
    }

    @Override
    public int snapshotVersion() {
        return STATE_VERSION;
    }

    /**
     * The PM timer is saved as its count: a restored guest's timer goes on from there, as its TSC and kvm-clock do,
     * rather than jumping by the time the snapshot lay on disk.
     */
    @Override
    public synchronized void saveState(StateOutput out) {
        out.u16(statusNow())
                .u16(enable)
                .u16(control16)
                .bool(sciHigh)
                .u64(timerEpochAtClear)
                .u64(timerTicks());
    }

    @Override
    public synchronized void restoreState(int version, StateInput in) {
        int nStatus = in.u16("PM1 status"), nEnable = in.u16("PM1 enable"), nControl = in.u16("PM1 control");
        boolean nSci = in.bool("SCI level");
        long nEpoch = in.u64("timer epoch at TMR_STS clear");
        long ticks = in.u64("PM timer count");
        in.expectEnd();
        if (ticks < 0 || (nEnable & ~EN_DEFINED) != 0 || (nControl & ~CNT_STORED) != 0)
            throw new SnapshotException(
                    SnapshotException.Kind.CORRUPT,
                    in.where() + ": PM1 enable 0x" + Integer.toHexString(nEnable) + ", control 0x"
                            + Integer.toHexString(nControl) + ", timer count " + ticks + " are out of range");
        status = nStatus;
        enable = nEnable;
        control16 = nControl;
        timerEpochAtClear = nEpoch;
        long ns = ticks / PM_TIMER_HZ * 1_000_000_000L + (ticks % PM_TIMER_HZ) * 1_000_000_000L / PM_TIMER_HZ;
        startNanos = nanoTime.getAsLong() - ns;
        sciHigh = nSci;
        sci.set(nSci); // whatever the restored interrupt controller holds
    }
}
