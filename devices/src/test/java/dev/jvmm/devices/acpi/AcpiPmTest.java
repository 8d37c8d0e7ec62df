package dev.jvmm.devices.acpi;

import dev.jvmm.core.ExitStatus;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

class AcpiPmTest {
    private final List<ExitStatus> exits = new ArrayList<>();
    private final AcpiPm pm = new AcpiPm(exits::add);

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
}
