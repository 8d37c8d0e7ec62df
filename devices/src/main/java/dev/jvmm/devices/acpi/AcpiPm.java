package dev.jvmm.devices.acpi;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VmControl;
import dev.jvmm.core.bus.BusDevice;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Objects;

/**
 * ACPI fixed-hardware power management registers in port I/O, as the FADT describes them: the PM1a event
 * block (status, enable), the PM1a control register and the FADT reset register, packed into {@link #LENGTH}
 * ports:
 * <pre>
 *   +0  PM1_STS (16 bits, write 1 to clear)   +2  PM1_EN (16 bits)
 *   +4  PM1_CNT (16 bits)                     +6  RESET_REG (8 bits)      +7  unused
 * </pre>
 * Setting SLP_EN with SLP_TYP = {@link #SLP_TYP_S5} (the DSDT's \_S5 value) ends the run with
 * {@link ExitStatus.PowerOff}; writing {@link #RESET_VALUE} to the reset register ends it with
 * {@link ExitStatus.Reset}. Other sleep states are not offered in the DSDT; a guest that enters one anyway
 * wakes at once (WAK_STS set) rather than spinning forever. SCI_EN always reads as set: the machine is in
 * ACPI mode from the start (the FADT has no SMI command port). The device never raises the SCI.
 */
public final class AcpiPm implements BusDevice {
    private static final Logger LOG = LoggerFactory.getLogger(AcpiPm.class);
    public static final int LENGTH = 8;
    public static final int PM1_EVT_OFFSET = 0, PM1_EVT_LENGTH = 4;
    public static final int PM1_CNT_OFFSET = 4, PM1_CNT_LENGTH = 2;
    public static final int RESET_OFFSET = 6;
    /** The value the FADT tells the guest to write to the reset register. */
    public static final int RESET_VALUE = 0x0f;
    /** SLP_TYP for S5 (soft off), as the DSDT's \_S5 package says. */
    public static final int SLP_TYP_S5 = 5;

    static final int STS_WAK = 1 << 15;
    /** PM1_EN bits: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN, PCIEXP_WAKE_DIS; kept as written. */
    static final int EN_DEFINED = 0x4721;
    static final int CNT_SCI_EN = 1, CNT_SLP_TYP_SHIFT = 10, CNT_SLP_TYP_MASK = 7 << CNT_SLP_TYP_SHIFT, CNT_SLP_EN = 1 << 13;
    /** PM1_CNT bits that read back as written (SLP_TYP, BM_RLD); SCI_EN is fixed, SLP_EN and GBL_RLS write-only. */
    static final int CNT_STORED = CNT_SLP_TYP_MASK | 0x2;

    private final VmControl control;
    // Guarded by this.
    private int status;
    private int enable;
    private int control16;

    public AcpiPm(VmControl control) {
        this.control = Objects.requireNonNull(control, "control");
    }

    @Override
    public synchronized long read(long offset, int size) {
        long v = 0;
        for (int i = 0; i < size; i++) v |= (long) readByte(offset + i) << (8 * i);
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
            case 0 -> status & 0xff;
            case 1 -> status >>> 8;
            case 2 -> enable & 0xff;
            case 3 -> enable >>> 8;
            case 4 -> (control16 | CNT_SCI_EN) & 0xff;
            case 5 -> control16 >>> 8;
            default -> 0; // the reset register reads as zero; outside the block as well
        };
    }

    private void writeByte(long offset, int b) {
        switch ((int) offset) {
            case 0 -> status &= ~b;
            case 1 -> status &= ~(b << 8);
            case 2 -> enable = (enable & 0xff00) | (b & EN_DEFINED);
            case 3 -> enable = (enable & 0x00ff) | ((b << 8) & EN_DEFINED);
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
            default -> { }
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
}
