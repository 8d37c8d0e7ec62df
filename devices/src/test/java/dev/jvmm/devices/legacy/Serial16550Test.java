package dev.jvmm.devices.legacy;

import static dev.jvmm.devices.legacy.Serial16550.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The UART driven through its registers as a guest driver would, including hostile sequences. */
class Serial16550Test {
    private final RecordingIrqLine irq = new RecordingIrqLine();
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private Serial16550 uart = new Serial16550(irq, out);

    @AfterEach
    void close() {
        uart.close();
    }

    private int in(int reg) {
        return (int) uart.read(reg, 1);
    }

    private void out(int reg, int v) {
        uart.write(reg, 1, v);
    }

    private String output() {
        uart.flush();
        synchronized (out) {
            return out.toString(StandardCharsets.ISO_8859_1);
        }
    }

    @Test
    void resetStateIsAnIdle16550WithAConnectedPeer() {
        assertEquals(IIR_NONE, in(IIR_FCR));
        assertEquals(LSR_THRE | LSR_TEMT, in(LSR));
        assertEquals(MSR_CTS | MSR_DSR | MSR_DCD, in(MSR));
        assertEquals(0, in(IER_DLM));
        assertEquals(0, in(LCR));
        assertEquals(0, in(MCR));
        assertEquals(List.of(), irq.transitions());
    }

    @Test
    void linuxAutoconfigSequenceIdentifiesA16550A() {
        // IER probe: only the four low bits exist (bit 6 would make Linux think of an XScale UART).
        out(IER_DLM, 0);
        assertEquals(0, in(IER_DLM) & 0x0f);
        out(IER_DLM, 0x0f);
        assertEquals(0x0f, in(IER_DLM));
        out(IER_DLM, 0xff);
        assertEquals(0x0f, in(IER_DLM));
        out(IER_DLM, 0);
        // Loopback test: MCR = LOOP | OUT2 | RTS shows CTS and DCD.
        out(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
        assertEquals(0x90, in(MSR) & 0xf0);
        out(MCR, 0);
        // FIFO probe: IIR bits 7:6 = 11 means 16550A; the 64-byte FIFO bit (16750) stays clear.
        out(LCR, 0);
        out(IIR_FCR, FCR_ENABLE | 0x20);
        int iir = in(IIR_FCR);
        assertEquals(3, iir >> 6);
        assertEquals(0, iir & 0x20);
        // EFR probe (LCR = 0xBF): offset 2 still reads IIR, which is not 0, so no 16650 EFR is assumed.
        out(LCR, 0xbf);
        assertTrue(in(IIR_FCR) != 0);
        out(LCR, 0);
        out(IIR_FCR, 0);
        assertEquals(0, in(IIR_FCR) >> 6, "FIFO bits clear when the FIFO is off");
    }

    @Test
    void dlabSwitchesOffsetsZeroAndOneToTheDivisorLatch() {
        out(LCR, LCR_DLAB | 0x03);
        out(RBR_THR_DLL, 0x01);
        out(IER_DLM, 0x02);
        out(LCR, 0x03);
        out(IER_DLM, 0x05);
        out(RBR_THR_DLL, 'x');
        assertEquals(0x05, in(IER_DLM));
        out(LCR, LCR_DLAB | 0x03);
        assertEquals(0x01, in(RBR_THR_DLL));
        assertEquals(0x02, in(IER_DLM));
        out(RBR_THR_DLL, 'y'); // a divisor, not a character
        out(LCR, 0x03);
        assertEquals(0x05, in(IER_DLM));
        assertEquals("x", output());
    }

    @Test
    void transmittedBytesReachTheOutputInOrder() {
        for (byte b : "hello\nworld".getBytes(StandardCharsets.US_ASCII)) out(RBR_THR_DLL, b);
        assertEquals("hello\nworld", output());
        assertEquals(LSR_THRE | LSR_TEMT, in(LSR));
    }

    @Test
    void thrEmptyInterruptFollowsTheChip() {
        out(MCR, MCR_OUT2);
        out(IER_DLM, IER_THRE); // enabling it with THR empty raises it
        assertEquals(IIR_THRE, in(IIR_FCR)); // and reading IIR acknowledges it
        assertEquals(IIR_NONE, in(IIR_FCR));
        assertEquals(List.of(true, false), irq.transitions());
        out(RBR_THR_DLL, 'a'); // THR empties again at once: raised again
        assertTrue(irq.level());
        assertEquals(LSR_THRE | LSR_TEMT, in(LSR)); // reading LSR does not acknowledge it
        assertTrue(irq.level());
        // Linux's THRE test: IER=0, then IER=THRI again must reassert.
        out(IER_DLM, 0);
        assertFalse(irq.level());
        out(IER_DLM, IER_THRE);
        assertTrue(irq.level());
        assertEquals(IIR_THRE, in(IIR_FCR));
        assertEquals(List.of(true, false, true, false, true, false), irq.transitions());
    }

    @Test
    void writingIerAgainWithThreAlreadyEnabledDoesNotRaiseAnAcknowledgedInterrupt() {
        out(MCR, MCR_OUT2);
        out(IER_DLM, IER_THRE);
        in(IIR_FCR);
        out(IER_DLM, IER_THRE | IER_RDA);
        assertEquals(IIR_NONE, in(IIR_FCR));
        assertFalse(irq.level());
    }

    @Test
    void out2GatesTheLineAndLoopbackForcesItOff() {
        out(IER_DLM, IER_THRE);
        assertEquals(List.of(), irq.transitions(), "OUT2 low: the PC's IRQ buffer is off");
        out(MCR, MCR_OUT2);
        assertEquals(List.of(true), irq.transitions());
        out(MCR, MCR_OUT2 | MCR_LOOP);
        assertEquals(List.of(true, false), irq.transitions());
        assertEquals(IIR_THRE, in(IIR_FCR), "the interrupt is still pending inside the chip");
    }

    @Test
    void fifoModeReportsTimeoutBelowTheTriggerAndDataAvailableAtIt() {
        out(MCR, MCR_OUT2);
        out(IER_DLM, IER_RDA);
        out(IIR_FCR, FCR_ENABLE | 0x80); // trigger level 8
        uart.receive("abc".getBytes(StandardCharsets.US_ASCII));
        assertEquals(IIR_FIFO_ENABLED | IIR_CTI, in(IIR_FCR));
        assertTrue(irq.level());
        uart.receive("defghijklm".getBytes(StandardCharsets.US_ASCII));
        assertEquals(IIR_FIFO_ENABLED | IIR_RDA, in(IIR_FCR));
        StringBuilder got = new StringBuilder();
        while ((in(LSR) & LSR_DR) != 0) got.append((char) in(RBR_THR_DLL));
        assertEquals("abcdefghijklm", got.toString());
        assertEquals(IIR_FIFO_ENABLED | IIR_NONE, in(IIR_FCR));
        assertEquals(List.of(true, false), irq.transitions());
    }

    @Test
    void withoutTheFifoOneByteIsHeldAndTheRestWaitsOnTheLine() {
        uart.receive(new byte[] {1, 2, 3});
        assertEquals(LSR_DR | LSR_THRE | LSR_TEMT, in(LSR));
        out(IER_DLM, IER_RDA);
        assertEquals(IIR_RDA, in(IIR_FCR));
        assertEquals(1, in(RBR_THR_DLL));
        assertEquals(2, in(RBR_THR_DLL));
        assertEquals(3, in(RBR_THR_DLL));
        assertEquals(0, in(LSR) & LSR_DR);
        assertEquals(0, in(RBR_THR_DLL), "reading an empty receiver is harmless");
    }

    @Test
    void aLargePasteArrivesWhole() {
        byte[] paste = new byte[200_000];
        new Random(1).nextBytes(paste);
        out(IIR_FCR, FCR_ENABLE | 0xc0); // before the input: switching the FIFO on empties the receiver
        uart.receive(paste);
        byte[] got = new byte[paste.length];
        int n = 0;
        while ((in(LSR) & LSR_DR) != 0) got[n++] = (byte) in(RBR_THR_DLL);
        assertEquals(paste.length, n);
        assertArrayEquals(paste, got);
        assertEquals(0, uart.droppedInputBytes());
    }

    @Test
    void inputBeyondTheBacklogIsDroppedCountedAndShownAsOverrun() {
        uart.close();
        uart = new Serial16550(irq, out, 1000);
        out(MCR, MCR_OUT2);
        out(IER_DLM, IER_RLS | IER_RDA);
        assertEquals(1000, uart.receive(new byte[2000], 0, 2000));
        assertEquals(1000, uart.droppedInputBytes());
        assertEquals(IIR_RLS, in(IIR_FCR), "line status outranks received data");
        assertEquals(LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT, in(LSR));
        assertEquals(LSR_DR | LSR_THRE | LSR_TEMT, in(LSR), "reading LSR clears OE");
        assertEquals(IIR_RDA, in(IIR_FCR));
        int n = 0;
        while ((in(LSR) & LSR_DR) != 0) {
            in(RBR_THR_DLL);
            n++;
        }
        assertEquals(1000, n);
        assertFalse(irq.level());
    }

    @Test
    void awaitInputRoomReturnsOnceTheGuestReads() throws Exception {
        uart.close();
        uart = new Serial16550(irq, out, 10);
        uart.receive(new byte[10]);
        assertEquals(1, uart.inputRoom()); // one byte already moved to the holding register
        assertFalse(uart.awaitInputRoom(5, 10));
        AtomicReference<Boolean> result = new AtomicReference<>();
        Thread waiter = Thread.ofPlatform().start(() -> {
            try {
                result.set(uart.awaitInputRoom(5, 10_000));
            } catch (InterruptedException e) {
                result.set(false);
            }
        });
        for (int i = 0; i < 6; i++) in(RBR_THR_DLL);
        waiter.join(10_000);
        assertEquals(Boolean.TRUE, result.get());
    }

    @Test
    void loopbackSendsTransmittedBytesToTheReceiverNotTheOutput() {
        out(IIR_FCR, FCR_ENABLE);
        out(MCR, MCR_LOOP);
        for (int i = 0; i < FIFO_SIZE + 1; i++) out(RBR_THR_DLL, 'A' + i);
        assertEquals("", output());
        assertEquals(LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT, in(LSR), "the 17th byte overran the FIFO");
        StringBuilder got = new StringBuilder();
        while ((in(LSR) & LSR_DR) != 0) got.append((char) in(RBR_THR_DLL));
        assertEquals("ABCDEFGHIJKLMNOP", got.toString());
        out(MCR, 0);
        out(RBR_THR_DLL, 'z');
        assertEquals("z", output());
        assertEquals(0, in(LSR) & LSR_DR);
    }

    @Test
    void loopbackWithoutFifoOverwritesTheHoldingRegister() {
        out(MCR, MCR_LOOP);
        out(RBR_THR_DLL, 'a');
        out(RBR_THR_DLL, 'b');
        assertEquals(LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT, in(LSR));
        assertEquals('b', in(RBR_THR_DLL));
    }

    @Test
    void hostInputWaitsWhileInLoopbackAndFlowsAfterwards() {
        out(MCR, MCR_LOOP);
        uart.receive("hi".getBytes(StandardCharsets.US_ASCII));
        assertEquals(0, in(LSR) & LSR_DR);
        out(MCR, MCR_OUT2);
        assertEquals('h', in(RBR_THR_DLL));
        assertEquals('i', in(RBR_THR_DLL));
    }

    @Test
    void modemStatusDeltasAndInterrupt() {
        out(MCR, MCR_OUT2);
        out(IER_DLM, IER_MSI);
        assertEquals(List.of(), irq.transitions());
        // Entering loopback with all outputs low drops CTS, DSR and DCD: three deltas.
        out(MCR, MCR_LOOP | MCR_OUT1);
        assertEquals(MSR_RI | MSR_DCTS | MSR_DDSR | MSR_DDCD, in(MSR));
        assertEquals(MSR_RI, in(MSR), "reading MSR clears the deltas");
        out(MCR, MCR_LOOP); // RI falls: trailing-edge ring indicator
        assertEquals(MSR_TERI, in(MSR));
        out(MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2);
        assertEquals(MSR_CTS | MSR_DSR | MSR_DCD | MSR_DCTS | MSR_DDSR | MSR_DDCD, in(MSR));
        out(MCR, MCR_OUT2); // leaving loopback: the host's lines are the same, no delta
        assertEquals(IIR_NONE, in(IIR_FCR));
        out(MCR, MCR_OUT2 | MCR_LOOP | MCR_DTR);
        out(MCR, MCR_OUT2); // DSR back up, CTS and DCD rise: deltas pending, OUT2 on, not looped
        assertEquals(IIR_MSI, in(IIR_FCR));
        assertTrue(irq.level());
        in(MSR);
        assertFalse(irq.level());
    }

    @Test
    void fifoClearDropsReceivedBytesButNotThoseStillOnTheLine() {
        uart.receive(new byte[40]);
        out(IIR_FCR, FCR_ENABLE);
        out(IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
        int n = 0;
        while ((in(LSR) & LSR_DR) != 0) {
            in(RBR_THR_DLL);
            n++;
        }
        assertEquals(40 - 16 - 1, n); // one byte in the holding register, then 16 in the FIFO, were cleared
    }

    @Test
    void writeOnlyAndReadOnlyRegistersAreNotConfused() {
        out(IIR_FCR, 0xc7); // FCR
        assertEquals(IIR_FIFO_ENABLED | IIR_NONE, in(IIR_FCR)); // reads IIR, not the FCR value
        out(LSR, 0xff);
        out(MSR, 0x00);
        assertEquals(LSR_THRE | LSR_TEMT, in(LSR));
        assertEquals(MSR_CTS | MSR_DSR | MSR_DCD, in(MSR));
        out(SCR, 0x5a);
        assertEquals(0x5a, in(SCR));
    }

    @Test
    void aWideAccessReachesConsecutiveRegisters() {
        out(SCR, 0x77);
        uart.write(IER_DLM, 2, 0x0305); // IER = 5, FCR = 3
        assertEquals(0x05, in(IER_DLM));
        assertEquals(0xff77L, uart.read(SCR, 2), "SCR, then a port beyond the UART");
        assertEquals(0xc1, in(IIR_FCR) & 0xff, "FCR got the second byte");
        assertEquals(0xffff_ffffL, uart.read(8, 4), "beyond the UART reads all ones");
    }

    @Test
    void concurrentInputAndGuestReadsKeepEveryByteInOrder() throws Exception {
        byte[] data = new byte[100_000];
        for (int i = 0; i < data.length; i++) data[i] = (byte) i;
        out(IIR_FCR, FCR_ENABLE);
        Thread host = Thread.ofPlatform().start(() -> {
            for (int off = 0; off < data.length; off += 100) {
                while (uart.receive(data, off, 100) == 0) Thread.onSpinWait();
            }
        });
        byte[] got = new byte[data.length];
        int n = 0;
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (n < data.length && System.nanoTime() < deadline) {
            if ((in(LSR) & LSR_DR) != 0) got[n++] = (byte) in(RBR_THR_DLL);
        }
        host.join();
        assertArrayEquals(data, got);
    }
}
