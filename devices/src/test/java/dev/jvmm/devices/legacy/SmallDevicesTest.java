package dev.jvmm.devices.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jvmm.core.ExitStatus;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** debugcon, isa-debug-exit and the POST-code port. */
class SmallDevicesTest {
    @Test
    void debugConPrintsWrittenBytesAndReadsBack0xe9() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (DebugCon con = new DebugCon(out)) {
            for (byte b : "ok\nno newline".getBytes(StandardCharsets.US_ASCII)) con.write(0, 1, b);
            con.write(0, 2, 0x4121); // only the low byte: '!'
            assertEquals(0xe9, con.read(0, 1));
            con.flush();
            assertEquals("ok\nno newline!", out.toString(StandardCharsets.US_ASCII));
        }
    }

    @Test
    void debugExitEndsTheRunWithTheWrittenValue() {
        List<ExitStatus> exits = new ArrayList<>();
        DebugExit dev = new DebugExit(exits::add);
        dev.write(0, 4, 42);
        dev.write(0, 1, 0x1234); // a byte write carries one byte
        assertEquals(List.of(new ExitStatus.GuestExit(42), new ExitStatus.GuestExit(0x34)), exits);
        assertEquals(85, exits.get(0).exitCode());
        assertEquals(0xffL, dev.read(0, 1));
        assertEquals(0xf4, dev.iobase());
        assertEquals(4, dev.iosize());
    }

    @Test
    void debugExitRejectsPortsOutsideTheIoSpace() {
        assertThrows(IllegalArgumentException.class, () -> new DebugExit(s -> {}, 0x10000, 1));
        assertThrows(IllegalArgumentException.class, () -> new DebugExit(s -> {}, 0xfffe, 4));
        assertThrows(IllegalArgumentException.class, () -> new DebugExit(s -> {}, 0x501, 0));
        assertEquals(0x501, new DebugExit(s -> {}, 0x501, 2).iobase());
    }

    @Test
    void postCodePortSwallowsWritesAndFloats() {
        PostCodePort p = new PostCodePort();
        p.write(0, 1, 0x55);
        assertEquals(0xff, p.read(0, 1));
        assertEquals(0xffff, p.read(0, 2));
        assertEquals(0xffff_ffffL, p.read(0, 4));
    }
}
