package dev.jvmm.devices.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.testing.Guests;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.core.x86.EntryState;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Multiboot guests in C talking to the legacy devices on the real /dev/kvm with the in-kernel irqchip. */
@RequiresKvm
class LegacyDevicesKvmTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(120);
    private static final long RAM = 16L << 20;
    private static final long MULTIBOOT_INFO = 0x9000;

    /** A PC's legacy devices on a fresh VM with the guest loaded. */
    private static final class Pc implements AutoCloseable {
        final VirtualMachine vm = VirtualMachine.builder().memory(RAM).build();
        final SyncBuffer console = new SyncBuffer();
        final SyncBuffer serialOut = new SyncBuffer();
        final RecordingIrqLine com1Irq = new RecordingIrqLine(vm.interrupts().line(Serial16550.COM1_IRQ));
        final Serial16550 serial = new Serial16550(com1Irq, serialOut);
        final DebugCon debugCon = new DebugCon(console);

        Pc(String guest) {
            vm.own(serial);
            vm.own(debugCon);
            I8042 kbc = new I8042(
                    vm,
                    vm.interrupts().line(I8042.KEYBOARD_IRQ),
                    vm.interrupts().line(I8042.AUX_IRQ));
            vm.ioBus().register("serial0", Serial16550.COM1_BASE, Serial16550.PORT_COUNT, serial);
            vm.ioBus().register("debugcon", DebugCon.DEFAULT_PORT, 1, debugCon);
            vm.ioBus().register("debug-exit", DebugExit.DEFAULT_IOBASE, DebugExit.DEFAULT_IOSIZE, new DebugExit(vm));
            vm.ioBus().register("i8042-data", I8042.DATA_PORT, 1, kbc.dataPort());
            vm.ioBus().register("i8042-cmd", I8042.COMMAND_PORT, 1, kbc.commandPort());
            CmosRtc rtc = new CmosRtc(vm.interrupts().line(CmosRtc.IRQ), RAM, 0, 1);
            vm.own(rtc);
            vm.ioBus().register("rtc", CmosRtc.INDEX_PORT, CmosRtc.PORT_COUNT, rtc);
            vm.ioBus().register("post", PostCodePort.PORT, 1, new PostCodePort());
            long entry = MultibootElf.load(vm.memory(), Guests.load(guest));
            vm.memory().writeInt(MULTIBOOT_INFO, 0); // flags: no optional fields
            vm.setEntry(0, EntryState.protectedMode(entry).withRax(0x2BADB002L).withRbx(MULTIBOOT_INFO));
        }

        ExitStatus runToExit() throws InterruptedException {
            vm.start();
            return awaitExit();
        }

        ExitStatus awaitExit() throws InterruptedException {
            ExitStatus s = vm.awaitExit(TIMEOUT)
                    .orElseThrow(() -> new AssertionError("guest did not finish; console: " + console));
            vm.stop();
            serial.flush();
            debugCon.flush();
            return s;
        }

        @Override
        public void close() {
            vm.close();
        }
    }

    /** An output stream the test can wait on. */
    static final class SyncBuffer extends ByteArrayOutputStream {
        @Override
        public synchronized void write(byte[] b, int off, int len) {
            super.write(b, off, len);
            notifyAll();
        }

        @Override
        public synchronized void write(int b) {
            super.write(b);
            notifyAll();
        }

        synchronized void await(String text, Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!toString(StandardCharsets.ISO_8859_1).contains(text)) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                if (left <= 0) throw new AssertionError("no \"" + text + "\" in: " + this);
                wait(left);
            }
        }

        @Override
        public synchronized String toString() {
            return toString(StandardCharsets.ISO_8859_1);
        }
    }

    @Test
    void uartCarriesInputAndOutputAndItsInterruptReachesTheLapic() throws Exception {
        try (Pc pc = new Pc("uart_echo.elf")) {
            pc.vm.start();
            pc.console.await("ready1\n", TIMEOUT);
            assertEquals(0, pc.com1Irq.transitions().size(), "no interrupt before input");
            pc.serial.receive("hello jvmm\n".getBytes(StandardCharsets.US_ASCII));
            pc.console.await("ready2\n", TIMEOUT);
            pc.serialOut.await("echo: HELLO JVMM\n", TIMEOUT);

            byte[] paste = new byte[3000];
            int sum = 0;
            for (int i = 0; i < paste.length; i++) {
                paste[i] = (byte) ('!' + i % 90);
                sum = (sum + paste[i]) & 0xffff;
            }
            pc.serial.receive(paste);
            pc.serial.receive(new byte[] {'\n'});
            ExitStatus s = pc.awaitExit();

            String console = pc.console.toString();
            assertEquals(new ExitStatus.GuestExit(0), s, console);
            assertTrue(console.contains(" 0 failed"), console);
            assertEquals("echo: HELLO JVMM\nlen=3000 sum=" + sum + "\n", pc.serialOut.toString());
            // RX raised and lowered, THRE raised and lowered (the guest reads IIR and disables it).
            var t = pc.com1Irq.transitions();
            assertTrue(t.size() >= 4 && t.get(0) && !t.get(1), t.toString());
            assertEquals(false, t.get(t.size() - 1), "line low at the end");
            for (int i = 1; i < t.size(); i++) assertTrue(t.get(i) != t.get(i - 1), "only changes are sent: " + t);
        }
    }

    @Test
    void keyboardControllerResetEndsTheRunWithReset() throws Exception {
        try (Pc pc = new Pc("i8042_reset.elf")) {
            ExitStatus s = pc.runToExit();
            assertEquals(new ExitStatus.Reset(), s, pc.console.toString());
            assertTrue(pc.console.toString().contains("checks failed: 0; resetting"), pc.console.toString());
            assertTrue(!pc.console.toString().contains("still running"), pc.console.toString());
            assertEquals(0, s.exitCode());
        }
    }

    @Test
    void debugExitReportsTheGuestsCodeAndTheRtcShowsTheHostTime() throws Exception {
        try (Pc pc = new Pc("rtc_exit.elf")) {
            LocalDateTime before = LocalDateTime.now(ZoneOffset.UTC).withNano(0);
            ExitStatus s = pc.runToExit();
            LocalDateTime after = LocalDateTime.now(ZoneOffset.UTC);
            String console = pc.console.toString();
            assertEquals(new ExitStatus.GuestExit(42), s, console);
            assertEquals(85, s.exitCode());

            Matcher m = Pattern.compile("rtc (\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d)")
                    .matcher(console);
            assertTrue(m.find(), console);
            LocalDateTime guest = LocalDateTime.parse(m.group(1), DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss"));
            assertTrue(!guest.isBefore(before) && !guest.isAfter(after), before + " <= " + guest + " <= " + after);
            assertTrue(console.contains("cmos base=640 ext=15360 ext16=0\n"), console);
            assertTrue(console.contains("rtc update interrupt seen\n"), console);
        }
    }
}
