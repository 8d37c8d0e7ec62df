package dev.jvmm.devices.legacy;

import static dev.jvmm.devices.legacy.I8042.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.bus.BusDevice;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The keyboard controller driven as Linux's i8042 driver and reboot code drive it. */
class I8042Test {
    private final List<ExitStatus> exits = new ArrayList<>();
    private final RecordingIrqLine kbdIrq = new RecordingIrqLine();
    private final RecordingIrqLine auxIrq = new RecordingIrqLine();
    private final I8042 kbc = new I8042(exits::add, kbdIrq, auxIrq);
    private final BusDevice data = kbc.dataPort();
    private final BusDevice cmd = kbc.commandPort();

    private int status() {
        return (int) cmd.read(0, 1);
    }

    private void command(int c) {
        cmd.write(0, 1, c);
    }

    /** As Linux's i8042_wait_read: the byte must be there, then it is read. */
    private int readByte() {
        assertTrue((status() & STR_OBF) != 0, "output buffer full");
        return (int) data.read(0, 1);
    }

    @Test
    void idleControllerHasNothingToFlushAndIsNotBusy() {
        int s = status();
        assertEquals(0, s & (STR_OBF | STR_IBF));
        assertTrue((s & STR_SYS) != 0, "POST passed");
    }

    @Test
    void selfTestsAnswerAsAHealthyController() {
        command(0xaa);
        assertEquals(0x55, readByte());
        command(0xab);
        assertEquals(0x00, readByte());
        command(0xa9);
        assertEquals(0x00, readByte());
        assertEquals(0, status() & STR_OBF);
        assertEquals(List.of(), exits);
    }

    @Test
    void commandByteReadsBackWhatWasWrittenAndTracksDisableCommands() {
        command(0x20);
        int ctr = readByte();
        assertEquals(CTR_XLATE | CTR_SYS | CTR_KBDINT, ctr);
        command(0x60);
        assertTrue((status() & STR_CMD) != 0, "last write was a command");
        data.write(0, 1, 0x56);
        assertEquals(0, status() & STR_CMD);
        command(0x20);
        assertEquals(0x56, readByte());
        command(0xae);
        command(0xa8);
        command(0x20);
        assertEquals(0x56 & ~(CTR_KBDDIS | CTR_AUXDIS), readByte());
        command(0xad);
        command(0xa7);
        command(0x20);
        assertEquals(0x56 | CTR_KBDDIS | CTR_AUXDIS, readByte());
        // The rest of the controller RAM is addressable too.
        command(0x65);
        data.write(0, 1, 0x99);
        command(0x25);
        assertEquals(0x99, readByte());
    }

    @Test
    void pulseResetEndsTheRunWithReset() {
        command(0xff); // pulses nothing
        assertEquals(List.of(), exits);
        command(0xfe);
        assertEquals(List.of(new ExitStatus.Reset()), exits);
    }

    @Test
    void outputPortReadWriteAndResetBit() {
        command(0xd0);
        assertEquals(OUT_RESET | OUT_A20, readByte());
        command(0xd1);
        data.write(0, 1, OUT_RESET); // A20 off, no reset
        assertEquals(List.of(), exits);
        command(0xd0);
        assertEquals(OUT_RESET, readByte());
        command(0xdf);
        command(0xd0);
        assertEquals(OUT_RESET | OUT_A20, readByte());
        command(0xd1);
        data.write(0, 1, OUT_A20); // bit 0 clear: the CPU reset line
        assertEquals(List.of(new ExitStatus.Reset()), exits);
    }

    @Test
    void auxLoopbackEchoesAsMouseDataAndRaisesIrq12WhenEnabled() {
        command(0x60);
        data.write(0, 1, CTR_AUXINT);
        command(0xd3);
        data.write(0, 1, 0x5a);
        int s = status();
        assertEquals(STR_OBF | STR_AUXDATA, s & (STR_OBF | STR_AUXDATA | STR_TIMEOUT));
        assertEquals(List.of(true), auxIrq.transitions());
        assertEquals(0x5a, readByte());
        assertEquals(List.of(true, false), auxIrq.transitions());
        assertEquals(List.of(), kbdIrq.transitions());
    }

    @Test
    void absentKeyboardAndMouseAnswerWithATimeout() {
        data.write(0, 1, 0xf2); // keyboard GET ID
        assertEquals(STR_OBF | STR_TIMEOUT, status() & (STR_OBF | STR_AUXDATA | STR_TIMEOUT));
        assertEquals(List.of(true), kbdIrq.transitions());
        assertEquals(NO_DEVICE, readByte());
        assertEquals(List.of(true, false), kbdIrq.transitions());
        command(0xd4);
        data.write(0, 1, 0xff); // mouse reset
        assertEquals(STR_OBF | STR_AUXDATA | STR_TIMEOUT, status() & (STR_OBF | STR_AUXDATA | STR_TIMEOUT));
        assertEquals(NO_DEVICE, readByte());
        assertEquals(List.of(), auxIrq.transitions(), "mouse interrupt not enabled");
    }

    @Test
    void aGuestThatNeverReadsCannotGrowTheOutputBuffer() {
        for (int i = 0; i < 10_000; i++) command(0xaa);
        int n = 0;
        while ((status() & STR_OBF) != 0) {
            data.read(0, 1);
            n++;
        }
        assertEquals(OUTPUT_QUEUE, n);
        assertEquals(0x55, (int) data.read(0, 1), "an empty buffer still reads its last byte");
    }

    @Test
    void unknownCommandsAndWideAccessesAreHarmless() {
        for (int c = 0; c < 256; c++) {
            if (c >= 0xf0 && (c & 1) == 0) continue; // reset pulses
            if (c == 0xd1) continue; // would take the next byte as the output port
            command(c);
        }
        assertEquals(List.of(), exits);
        assertEquals(0xff00L | status(), cmd.read(0, 2) & 0xffffL);
    }
}
