package dev.jvmm.devices.acpi;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.jvmm.core.ExitStatus;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class AcpiPmTest {
    private final List<ExitStatus> exits = new ArrayList<>();
    private final List<Boolean> sci = new ArrayList<>();
    private long now = 5_000_000_000L;
    private final AcpiPm pm = new AcpiPm(exits::add, sci::add, () -> now);

    @Test
    void powerButtonRaisesTheSciWhileItsStatusIsSetAndEnabled() {
        pm.pressPowerButton();
        assertEquals(0x0100, pm.read(0, 2) & 0x0100, "PWRBTN_STS");
        assertEquals(List.of(), sci, "not enabled: no interrupt");
        pm.write(2, 2, 0x0100); // PWRBTN_EN, as Linux's ACPI button driver sets it
        assertEquals(List.of(true), sci, "enabling a pending event raises the level SCI");
        pm.write(0, 2, 0x0001); // clearing another bit leaves it
        assertEquals(List.of(true), sci);
        pm.write(0, 2, 0x0100); // the guest's handler acknowledges
        assertEquals(List.of(true, false), sci);
        assertEquals(0, pm.read(0, 2) & 0x0100);
        pm.pressPowerButton();
        assertEquals(List.of(true, false, true), sci, "a second press while enabled");
        pm.write(1, 1, 0x01); // byte access to the status register's high byte
        assertEquals(List.of(true, false, true, false), sci);
    }

    @Test
    void pmTimerCountsAt3579545HzIn24Bits() {
        long t0 = pm.read(AcpiPm.PM_TMR_OFFSET, 4);
        assertEquals(0, t0);
        now += 1_000_000_000L;
        assertEquals(3_579_545, pm.read(AcpiPm.PM_TMR_OFFSET, 4), "one second");
        now += 1_000_000L;
        assertEquals(3_579_545 + 3_579, pm.read(AcpiPm.PM_TMR_OFFSET, 4), "one more millisecond");
        now += 4_000_000_000L; // 5.001 s: 17,901,304 ticks, past 2^24
        assertEquals(17_901_304 & 0xffffff, pm.read(AcpiPm.PM_TMR_OFFSET, 4), "wraps at 24 bits");
        assertEquals((17_901_304 >> 8) & 0xff, pm.read(AcpiPm.PM_TMR_OFFSET + 1, 1), "byte reads");
        now += 3600L * 1_000_000_000L; // no overflow after hours
        long ticks = 3605L * 3_579_545 + 3_579;
        assertEquals(ticks & 0xffffff, pm.read(AcpiPm.PM_TMR_OFFSET, 4));
    }

    @Test
    void timerStatusIsSetWhenTheTopBitTogglesAndClearsOnWriteOfOne() {
        assertEquals(0, pm.read(0, 2) & 1);
        now += 2_400_000_000L; // 8.59 M ticks > 2^23
        assertEquals(1, pm.read(0, 2) & 1, "TMR_STS");
        pm.write(0, 2, 1);
        assertEquals(0, pm.read(0, 2) & 1, "cleared");
        assertEquals(List.of(), sci, "TMR_EN is not enabled: no SCI");
    }

    /** What ACPICA does for S5: SLP_TYP written first without SLP_EN, then with it (16-bit accesses). */
    @Test
    void sleepTypeFiveWithSleepEnablePowersOff() {
        int cnt = (int) pm.read(AcpiPm.PM1_CNT_OFFSET, 2);
        assertEquals(1, cnt & 1, "SCI_EN reads as set: ACPI mode from the start");
        cnt = (cnt & ~0x3c00) | (AcpiPm.SLP_TYP_S5 << 10);
        pm.write(AcpiPm.PM1_CNT_OFFSET, 2, cnt);
        assertEquals(List.of(), exits, "SLP_TYP alone does not sleep");
        assertEquals(AcpiPm.SLP_TYP_S5 << 10 | 1, pm.read(AcpiPm.PM1_CNT_OFFSET, 2), "SLP_TYP reads back");
        pm.write(AcpiPm.PM1_CNT_OFFSET, 2, cnt | (1 << 13));
        assertEquals(List.of(new ExitStatus.PowerOff()), exits);
        assertEquals(0, pm.read(AcpiPm.PM1_CNT_OFFSET, 2) & (1 << 13), "SLP_EN is write-only");
    }

    @Test
    void oneByteWriteOfTheHighControlByteIsAWholeRequest() {
        pm.write(AcpiPm.PM1_CNT_OFFSET + 1, 1, (AcpiPm.SLP_TYP_S5 << 2) | (1 << 5));
        assertEquals(List.of(new ExitStatus.PowerOff()), exits);
    }

    @Test
    void otherSleepTypesWakeAtOnceAndWakeStatusClearsOnWriteOfOne() {
        pm.write(AcpiPm.PM1_CNT_OFFSET, 2, (3 << 10) | (1 << 13)); // S3: not offered
        assertEquals(List.of(), exits);
        assertEquals(0x8000, pm.read(0, 2), "WAK_STS set");
        pm.write(0, 2, 0x0001); // clearing another bit leaves WAK_STS
        assertEquals(0x8000, pm.read(0, 2));
        pm.write(0, 2, 0x8000);
        assertEquals(0, pm.read(0, 2));
    }

    @Test
    void enableRegisterKeepsDefinedBitsOnly() {
        pm.write(2, 2, 0xffff);
        assertEquals(0x4721, pm.read(2, 2));
        assertEquals(0x4721L << 16, pm.read(0, 4), "a 32-bit read of the event block: status low, enable high");
    }

    @Test
    void resetRegisterResetsOnlyWithTheFadtValue() {
        pm.write(AcpiPm.RESET_OFFSET, 1, 0x06);
        assertEquals(List.of(), exits);
        pm.write(AcpiPm.RESET_OFFSET, 1, AcpiPm.RESET_VALUE);
        assertEquals(List.of(new ExitStatus.Reset()), exits);
        assertEquals(0, pm.read(AcpiPm.RESET_OFFSET, 1));
    }

    @Test
    void hostileOffsetsAndWidthsAreHarmless() {
        pm.write(7, 1, 0xff);
        pm.write(5, 4, 0xffff_ffffL); // runs past the block: SLP_TYP 7 with SLP_EN, then nothing
        assertEquals(List.of(), exits);
        assertEquals(0, pm.read(7, 1));
        assertEquals(0, pm.read(100, 2));
    }

    @Test
    void aSnapshotKeepsTheRegistersAndTheTimerGoesOnFromItsCount() {
        now += 2_000_000_000L;
        pm.write(2, 2, 0x0100);
        pm.pressPowerButton();
        long timer = pm.read(AcpiPm.PM_TMR_OFFSET, 4);
        dev.jvmm.core.snapshot.DeviceState saved = dev.jvmm.core.snapshot.DeviceState.of(pm);

        // Restored in another process whose monotonic clock is somewhere else entirely.
        long[] later = {987_654_321_000L};
        List<Boolean> sciB = new ArrayList<>();
        AcpiPm b = new AcpiPm(exits::add, sciB::add, () -> later[0]);
        saved.restoreInto(b);
        assertEquals(List.of(true), sciB, "the SCI is driven as it was");
        assertEquals(timer, b.read(AcpiPm.PM_TMR_OFFSET, 4), "the timer goes on from its count");
        later[0] += 1_000_000_000L;
        assertEquals((timer + 3_579_545) & 0xffffff, b.read(AcpiPm.PM_TMR_OFFSET, 4));
        assertEquals(pm.read(0, 2) & 0x0100, b.read(0, 2) & 0x0100, "PWRBTN_STS");
        assertEquals(0x0100, b.read(2, 2), "PWRBTN_EN");

        byte[] cut = java.util.Arrays.copyOf(saved.state(), saved.state().length - 1);
        var e = org.junit.jupiter.api.Assertions.assertThrows(
                dev.jvmm.core.snapshot.SnapshotException.class,
                () -> new dev.jvmm.core.snapshot.DeviceState(saved.id(), 1, cut)
                        .restoreInto(new AcpiPm(exits::add, sciB::add, () -> 0)));
        assertEquals(dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT, e.kind());
    }
}
