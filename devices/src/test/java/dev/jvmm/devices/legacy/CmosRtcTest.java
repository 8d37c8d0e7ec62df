package dev.jvmm.devices.legacy;

import static dev.jvmm.devices.legacy.CmosRtc.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.irq.IrqLine;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The RTC and CMOS RAM through ports 0x70/0x71, with a clock the test moves. */
class CmosRtcTest {
    private static final long MIB = 1 << 20;

    /** A clock the test sets. */
    static final class TestClock extends Clock {
        Instant now;

        TestClock(Instant now) {
            this.now = now;
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Instant instant() {
            return now;
        }
    }

    /** IRQ 8 as the interrupt controller sees it. */
    static final class RecordingLine implements IrqLine {
        volatile boolean high;
        final AtomicInteger risingEdges = new AtomicInteger();

        @Override
        public void set(boolean level) {
            if (level && !high) risingEdges.incrementAndGet();
            high = level;
        }
    }

    private final RecordingLine irq = new RecordingLine();
    private final TestClock clock = new TestClock(Instant.parse("2024-02-29T23:59:58.500Z"));
    private final CmosRtc rtc = new CmosRtc(clock, irq, 64 * MIB, 0, 1);

    private int in(int reg) {
        rtc.write(0, 1, reg);
        return (int) rtc.read(1, 1);
    }

    private void out(int reg, int v) {
        rtc.write(0, 1, reg);
        rtc.write(1, 1, v);
    }

    @Test
    void timeReadsInBcdTwentyFourHourByDefault() {
        assertEquals(0x58, in(SECONDS));
        assertEquals(0x59, in(MINUTES));
        assertEquals(0x23, in(HOURS));
        assertEquals(5, in(DAY_OF_WEEK)); // Thursday, counting Sunday as 1
        assertEquals(0x29, in(DAY_OF_MONTH));
        assertEquals(0x02, in(MONTH));
        assertEquals(0x24, in(YEAR));
        assertEquals(0x20, in(CENTURY));
        assertEquals(B_24H, in(STATUS_B));
        assertEquals(D_VRT, in(STATUS_D));
        assertEquals(0, in(STATUS_C));
    }

    @Test
    void timeFollowsTheHostClock() {
        clock.now = clock.now.plusSeconds(2);
        assertEquals(0x00, in(SECONDS));
        assertEquals(0x00, in(HOURS));
        assertEquals(0x01, in(DAY_OF_MONTH));
        assertEquals(0x03, in(MONTH));
    }

    @Test
    void binaryAndTwelveHourModesAreHonoured() {
        out(STATUS_B, B_BINARY);
        assertEquals(58, in(SECONDS));
        assertEquals(11 | HOUR_PM, in(HOURS));
        assertEquals(24, in(YEAR));
        out(STATUS_B, 0); // BCD, 12-hour
        assertEquals(0x11 | HOUR_PM, in(HOURS));
        clock.now = Instant.parse("2024-03-01T00:30:00Z");
        assertEquals(0x12, in(HOURS), "half past midnight is 12 AM");
    }

    @Test
    void updateInProgressIsSetOnlyInTheLast244MicrosecondsOfASecond() {
        assertEquals(0, in(STATUS_A) & A_UIP);
        assertEquals(0x26, in(STATUS_A));
        clock.now = Instant.parse("2024-02-29T23:59:58.999800Z");
        assertEquals(A_UIP, in(STATUS_A) & A_UIP);
        out(STATUS_A, 0xa6); // UIP is read-only
        clock.now = Instant.parse("2024-02-29T23:59:59Z");
        assertEquals(0x26, in(STATUS_A));
    }

    @Test
    void theNmiMaskBitIsNotPartOfTheIndex() {
        rtc.write(0, 1, 0x80 | SECONDS);
        assertEquals(0x58, rtc.read(1, 1));
        rtc.write(0, 1, 0x80 | 0x40);
        rtc.write(1, 1, 0xab);
        assertEquals(0xab, in(0x40));
        assertEquals(0xff, rtc.read(0, 1), "the index port is write-only");
    }

    @Test
    void guestSetsTheTimeWithTheSetBitAndItKeepsRunning() {
        out(STATUS_B, B_SET | B_24H);
        out(YEAR, 0x31);
        out(MONTH, 0x12);
        out(DAY_OF_MONTH, 0x25);
        out(HOURS, 0x08);
        out(MINUTES, 0x15);
        out(SECONDS, 0x00);
        clock.now = clock.now.plusSeconds(100); // held while SET is on
        assertEquals(0x00, in(SECONDS));
        assertEquals(0, in(STATUS_A) & A_UIP);
        out(STATUS_B, B_24H);
        clock.now = clock.now.plusSeconds(61);
        assertEquals(0x01, in(SECONDS));
        assertEquals(0x16, in(MINUTES));
        assertEquals(0x25, in(DAY_OF_MONTH));
        assertEquals(0x31, in(YEAR));
        assertEquals(0x20, in(CENTURY));
    }

    @Test
    void aDirectWriteWithoutSetTakesEffectAtOnce() {
        out(MINUTES, 0x10);
        assertEquals(0x10, in(MINUTES));
        assertEquals(0x58, in(SECONDS));
        assertEquals(0x23, in(HOURS));
    }

    @Test
    void invalidTimeValuesAreIgnored() {
        out(SECONDS, 0x99 + 1); // not BCD
        out(SECONDS, 0x61);
        out(MONTH, 0x13);
        out(DAY_OF_MONTH, 0x31); // February has no 31st
        out(HOURS, 0x24);
        assertEquals(0x58, in(SECONDS));
        assertEquals(0x02, in(MONTH));
        assertEquals(0x29, in(DAY_OF_MONTH));
        assertEquals(0x23, in(HOURS));
        out(STATUS_B, 0); // 12-hour: 0 and 13 are not hours
        out(HOURS, 0x00);
        out(HOURS, 0x13);
        assertEquals(0x11 | HOUR_PM, in(HOURS));
        out(HOURS, 0x12); // 12 AM
        assertEquals(0x12, in(HOURS));
        out(STATUS_B, B_24H);
        assertEquals(0x00, in(HOURS));
    }

    @Test
    void memoryBytesMatchQemuFor64MiB() {
        assertEquals(640, word(0x15));
        assertEquals(63 * 1024, word(0x17));
        assertEquals(63 * 1024, word(0x30));
        assertEquals(48 * 16, word(0x34));
        assertEquals(0, in(0x5b) | in(0x5c) | in(0x5d));
        assertEquals(0, in(0x5f));
    }

    @Test
    void memoryBytesMatchQemuFor4GiBSplitAroundTheHole() {
        CmosRtc big = new CmosRtc(clock, irq, 3072 * MIB, 1024 * MIB, 4);
        assertEquals(640, word(big, 0x15));
        assertEquals(0xffff, word(big, 0x17), "capped");
        assertEquals(0xffff, word(big, 0x30));
        assertEquals((3072 - 16) * 16, word(big, 0x34));
        assertEquals(0x4000, word(big, 0x5b) | big.readCmos(0x5d) << 16);
        assertEquals(3, big.readCmos(0x5f));
        CmosRtc tiny = new CmosRtc(clock, irq, 512 * 1024, 0, 1);
        assertEquals(512, word(tiny, 0x15));
        assertEquals(0, word(tiny, 0x17));
        assertEquals(0, word(tiny, 0x34));
    }

    @Test
    void ramIsReadWriteAndTheStatusRegistersCAndDAreReadOnly() {
        for (int r = 0x0e; r < 0x80; r++) {
            if (r == CENTURY) continue;
            out(r, r ^ 0x5a);
        }
        for (int r = 0x0e; r < 0x80; r++) {
            if (r == CENTURY) continue;
            assertEquals(r ^ 0x5a, in(r), "register 0x" + Integer.toHexString(r));
        }
        out(STATUS_C, 0xff);
        out(STATUS_D, 0x00);
        assertEquals(0, in(STATUS_C));
        assertEquals(D_VRT, in(STATUS_D));
    }

    private int word(int reg) {
        return word(rtc, reg);
    }

    private static int word(CmosRtc r, int reg) {
        return r.readCmos(reg) | r.readCmos(reg + 1) << 8;
    }

    /** Status C without the periodic flag, which the chip latches at its default 1024 Hz whether enabled or not. */
    private int statusCButPeriodic() {
        return in(STATUS_C) & ~C_PF;
    }

    private void advance(String duration) {
        clock.now = clock.now.plus(java.time.Duration.parse(duration));
        rtc.tick(); // what the timer thread does when the event is due
    }

    @Test
    void updateEndedFlagIsLatchedEachSecondAndClearedByReadingC() {
        out(HOURS_ALARM, 0x12); // the alarm's 00:00:00 would match midnight, two seconds on
        advance("PT0.4S");
        assertEquals(0, statusCButPeriodic(), "no second has started");
        advance("PT0.2S");
        assertEquals(C_UF, statusCButPeriodic());
        assertEquals(0, statusCButPeriodic(), "reading C acknowledged it");
        advance("PT5S");
        assertEquals(C_UF, statusCButPeriodic(), "several seconds latch one flag");
        assertFalse(irq.high, "not enabled: no interrupt");
        assertEquals(0, irq.risingEdges.get());
    }

    @Test
    void enabledUpdateInterruptRaisesIrq8UntilCIsRead() {
        out(HOURS_ALARM, 0x12);
        out(STATUS_B, B_24H | B_UIE);
        advance("PT0.4S");
        assertFalse(irq.high);
        advance("PT0.2S");
        assertTrue(irq.high, "the second started: IRQ 8 up");
        advance("PT1S");
        assertEquals(1, irq.risingEdges.get(), "held high, not pulsed again, until acknowledged");
        assertEquals(C_IRQF | C_UF, statusCButPeriodic());
        assertFalse(irq.high, "reading C lowers the line");
        advance("PT1S");
        assertTrue(irq.high);
        assertEquals(2, irq.risingEdges.get());
        out(STATUS_B, B_24H);
        assertFalse(irq.high, "disabling the interrupt lowers the line");
        assertEquals(C_UF, statusCButPeriodic(), "the flag stays latched without its enable");
    }

    @Test
    void alarmMatchesTheTimeWithDontCareBytes() {
        out(SECONDS_ALARM, 0x05);
        out(MINUTES_ALARM, 0x00);
        out(HOURS_ALARM, 0x00); // 00:00:05, seven seconds on
        out(STATUS_B, B_24H | B_AIE);
        advance("PT2S");
        assertFalse(irq.high);
        assertEquals(C_UF, statusCButPeriodic());
        advance("PT5S");
        assertTrue(irq.high);
        assertEquals(C_IRQF | C_AF | C_UF, statusCButPeriodic());
        advance("PT1S");
        assertEquals(C_UF, statusCButPeriodic(), "00:00:06 does not match");
        out(SECONDS_ALARM, 0x10);
        out(MINUTES_ALARM, ALARM_ANY);
        out(HOURS_ALARM, 0xff); // at second 10 of every minute
        advance("PT120S"); // 00:02:06
        assertEquals(C_IRQF | C_AF | C_UF, statusCButPeriodic());
        advance("PT2S");
        assertEquals(C_UF, statusCButPeriodic());
        advance("PT2S");
        assertEquals(C_IRQF | C_AF | C_UF, statusCButPeriodic());
    }

    @Test
    void alarmIsFoundAfterALongGapWithoutWalkingEverySecond() {
        out(SECONDS_ALARM, 0x30);
        out(MINUTES_ALARM, 0x30);
        out(HOURS_ALARM, 0x12);
        advance("P400D"); // a guest that read nothing for a year: at most a day of seconds is compared
        assertEquals(C_AF | C_UF, statusCButPeriodic());
        out(SECONDS_ALARM, 0x99); // never a time: never matches
        advance("P3D");
        assertEquals(C_UF, statusCButPeriodic());
    }

    @Test
    void periodicFlagFollowsTheRateInStatusA() {
        out(STATUS_A, 0x2f); // rate 15: 2 Hz
        out(STATUS_B, B_24H | B_PIE);
        advance("PT0.4S");
        assertFalse(irq.high);
        advance("PT0.2S"); // 500 ms after the rate was set
        assertTrue(irq.high);
        assertEquals(C_IRQF | C_PF | C_UF, in(STATUS_C));
        advance("PT0.3S");
        assertFalse(irq.high, "the next period ends at 1 s");
        out(STATUS_A, 0x20); // rate 0: no periodic interrupt
        advance("PT10S");
        assertFalse(irq.high);
        assertEquals(C_UF, in(STATUS_C) & ~(C_PF | C_AF), "what the old rate latched may remain, nothing after");
        advance("PT10S");
        assertEquals(C_UF, in(STATUS_C));
    }

    @Test
    void setHaltsUpdatesAndANewTimeIsNotAnUpdate() {
        out(STATUS_B, B_SET | B_24H);
        advance("PT10S");
        assertEquals(0, statusCButPeriodic(), "SET stops the update cycle");
        out(STATUS_B, B_24H | B_UIE);
        assertEquals(0, statusCButPeriodic());
        assertFalse(irq.high);
        advance("PT0.999S");
        assertTrue(irq.high, "the update cycle runs again after SET");
    }

    @Test
    void aGuestTimeThousandsOfYearsAwayKeepsInterruptsWorking() {
        out(CENTURY, 0x99);
        out(STATUS_B, B_24H | B_UIE | B_AIE | B_PIE);
        advance("PT1S");
        assertTrue(irq.high);
        assertEquals(0x99, in(CENTURY));
        assertEquals(C_IRQF | C_UF | C_PF, in(STATUS_C) & ~C_AF);
    }

    @Test
    void theTimerThreadRaisesTheUpdateInterruptOnTheHostClock() throws InterruptedException {
        try (CmosRtc real = new CmosRtc(irq, 64 * MIB, 0, 1)) {
            real.write(0, 1, STATUS_B);
            real.write(1, 1, B_24H | B_UIE);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (!irq.high && System.nanoTime() < deadline) Thread.sleep(10);
            assertTrue(irq.high, "a second started within 10 s");
            real.write(0, 1, STATUS_C);
            assertEquals(C_IRQF | C_UF, real.read(1, 1) & (C_IRQF | C_UF));
            assertFalse(irq.high);
        }
    }
}
