package dev.jvmm.devices.legacy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.snapshot.DeviceState;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.Snapshottable;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The UART's, the RTC's and the keyboard controller's state across a snapshot: saved, loaded into a device built
 * afresh, and the new device behaves as the old one would have; and what a restore refuses.
 */
class LegacySnapshotTest {
    private static final long MIB = 1 << 20;

    static DeviceState copy(DeviceState d, int version, byte[] state) {
        return new DeviceState(d.id(), version, state);
    }

    /** Every way of cutting a device's state short is refused as CORRUPT, naming the device. */
    static void assertTruncationsRefused(DeviceState saved, java.util.function.Supplier<Snapshottable> fresh) {
        byte[] s = saved.state();
        for (int n = 0; n < s.length; n++) {
            DeviceState cut = copy(saved, saved.version(), Arrays.copyOf(s, n));
            SnapshotException e = assertThrows(SnapshotException.class, () -> cut.restoreInto(fresh.get()), "" + n);
            assertEquals(SnapshotException.Kind.CORRUPT, e.kind(), e.getMessage());
            assertTrue(e.getMessage().contains("device " + saved.id()), e.getMessage());
        }
        DeviceState longer = copy(saved, saved.version(), Arrays.copyOf(s, s.length + 1));
        assertEquals(
                SnapshotException.Kind.CORRUPT,
                assertThrows(SnapshotException.class, () -> longer.restoreInto(fresh.get()))
                        .kind());
        DeviceState newer = copy(saved, saved.version() + 1, s);
        SnapshotException e = assertThrows(SnapshotException.class, () -> newer.restoreInto(fresh.get()));
        assertEquals(SnapshotException.Kind.UNSUPPORTED_VERSION, e.kind());
        assertTrue(e.getMessage().contains("version " + (saved.version() + 1)), e.getMessage());
    }

    // ---- UART

    private static int reg(Serial16550 u, int r) {
        return (int) u.read(r, 1);
    }

    @Test
    void theUartKeepsItsRegistersFifoUnreadInputAndInterrupt() {
        RecordingIrqLine irqA = new RecordingIrqLine();
        Serial16550 a = new Serial16550(irqA, new ByteArrayOutputStream());
        a.write(Serial16550.LCR, 1, 0x80);
        a.write(0, 1, 0x01); // divisor 115200
        a.write(Serial16550.LCR, 1, 0x03);
        a.write(Serial16550.IIR_FCR, 1, 0x81); // FIFO on, trigger level 8
        a.write(Serial16550.MCR, 1, Serial16550.MCR_OUT2 | Serial16550.MCR_DTR);
        a.write(Serial16550.SCR, 1, 0x5a);
        a.write(Serial16550.IER_DLM, 1, Serial16550.IER_RDA);
        byte[] typed = "a paste longer than the sixteen-byte FIFO\n".getBytes(StandardCharsets.US_ASCII);
        a.receive(typed);
        assertEquals('a', reg(a, 0));
        assertTrue(irqA.level(), "received data raises the interrupt");
        DeviceState saved = DeviceState.of(a);
        a.close();

        RecordingIrqLine irqB = new RecordingIrqLine();
        Serial16550 b = new Serial16550(irqB, new ByteArrayOutputStream());
        saved.restoreInto(b);
        assertEquals(List.of(true), irqB.transitions(), "the line is driven as it was");
        assertEquals(0x03, reg(b, Serial16550.LCR));
        assertEquals(Serial16550.IIR_RDA | Serial16550.IIR_FIFO_ENABLED, reg(b, Serial16550.IIR_FCR));
        assertEquals(0x5a, reg(b, Serial16550.SCR));
        b.write(Serial16550.LCR, 1, 0x83);
        assertEquals(0x01, reg(b, 0), "divisor latch");
        b.write(Serial16550.LCR, 1, 0x03);
        StringBuilder rest = new StringBuilder();
        while ((reg(b, Serial16550.LSR) & Serial16550.LSR_DR) != 0) rest.append((char) reg(b, 0));
        assertEquals(new String(typed, StandardCharsets.US_ASCII).substring(1), rest.toString());
        assertTrue(!irqB.level(), "read empty: the interrupt drops");
        b.close();
    }

    @Test
    void aUartStateCutShortOrNewerIsRefused() {
        Serial16550 a = new Serial16550(high -> {}, new ByteArrayOutputStream());
        a.receive("xyz".getBytes(StandardCharsets.US_ASCII));
        DeviceState saved = DeviceState.of(a);
        assertTruncationsRefused(saved, () -> new Serial16550(high -> {}, new ByteArrayOutputStream()));
        byte[] bad = saved.state();
        bad[0] = (byte) 0xf0; // IER bits a 16550A does not have
        SnapshotException e = assertThrows(
                SnapshotException.class,
                () -> copy(saved, 1, bad).restoreInto(new Serial16550(high -> {}, new ByteArrayOutputStream())));
        assertTrue(e.getMessage().contains("IER 0xf0"), e.getMessage());
    }

    // ---- RTC

    @Test
    void theRtcKeepsItsOffsetFromHostTimeAndItsRegisters() {
        CmosRtcTest.TestClock clockA = new CmosRtcTest.TestClock(Instant.parse("2024-02-29T23:59:58.500Z"));
        CmosRtc a = new CmosRtc(clockA, high -> {}, 64 * MIB, 0, 1);
        a.write(0, 1, CmosRtc.STATUS_B);
        a.write(1, 1, CmosRtc.B_24H | CmosRtc.B_BINARY);
        a.write(0, 1, CmosRtc.HOURS);
        a.write(1, 1, 10); // the guest sets its clock to 10:59:58, 13 hours behind the host
        a.write(0, 1, 0x40);
        a.write(1, 1, 0x77); // a byte of CMOS RAM
        a.write(0, 1, CmosRtc.SECONDS); // the index register
        DeviceState saved = DeviceState.of(a);
        a.close();

        // Restored a minute of host time later: the guest's clock has gone on with the host's, offset kept.
        CmosRtcTest.TestClock clockB = new CmosRtcTest.TestClock(clockA.now.plusSeconds(60));
        CmosRtc b = new CmosRtc(clockB, high -> {}, 64 * MIB, 0, 1);
        saved.restoreInto(b);
        assertEquals(58, b.read(1, 1), "the index register is kept: seconds");
        assertEquals(11, b.readCmos(CmosRtc.HOURS));
        assertEquals(0, b.readCmos(CmosRtc.MINUTES));
        assertEquals(0x77, b.readCmos(0x40));
        assertEquals(CmosRtc.B_24H | CmosRtc.B_BINARY, b.readCmos(CmosRtc.STATUS_B));
        b.close();
        assertTruncationsRefused(saved, () -> new CmosRtc(clockB, high -> {}, 64 * MIB, 0, 1));
    }

    // ---- i8042

    @Test
    void theKeyboardControllerKeepsItsQueueAndCommandByte() {
        RecordingIrqLine kbd = new RecordingIrqLine(), aux = new RecordingIrqLine();
        I8042 a = new I8042(s -> {}, kbd, aux);
        a.writeCommand(0xaa); // self-test: 0x55 queued
        a.writeCommand(0x60);
        a.writeData(0x47); // command byte: keyboard interrupt, translation, system flag, aux interrupt off... set
        a.writeCommand(0xaa);
        DeviceState saved = DeviceState.of(a);

        RecordingIrqLine kbdB = new RecordingIrqLine(), auxB = new RecordingIrqLine();
        I8042 b = new I8042(s -> {}, kbdB, auxB);
        saved.restoreInto(b);
        assertEquals(List.of(true), kbdB.transitions(), "IRQ 1 driven for the queued bytes");
        assertEquals(List.of(false), auxB.transitions());
        assertEquals(a.readStatus(), b.readStatus());
        assertArrayEquals(new int[] {0x55, 0x55}, new int[] {b.readData(), b.readData()});
        b.writeCommand(0x20);
        assertEquals(0x47, b.readData(), "the command byte");
        assertTruncationsRefused(saved, () -> new I8042(s -> {}));
    }
}
