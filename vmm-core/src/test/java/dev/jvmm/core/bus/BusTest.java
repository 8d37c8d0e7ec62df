package dev.jvmm.core.bus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class BusTest {
    private static final class Echo implements BusDevice {
        final List<String> log = new ArrayList<>();

        public long read(long offset, int size) {
            log.add("r" + offset + "/" + size);
            return offset;
        }

        public void write(long offset, int size, long value) {
            log.add("w" + offset + "/" + size + "=" + value);
        }
    }

    @Test
    void dispatchesByAddressWithRangeRelativeOffsets() {
        Bus bus = new Bus("test");
        Echo a = new Echo(), b = new Echo();
        bus.register("a", 0x100, 0x10, a);
        bus.register("b", 0x3f8, 8, b);
        assertEquals(5, bus.read(0x105, 1));
        bus.write(0x3f8 + 7, 1, 42);
        assertEquals(List.of("r5/1"), a.log);
        assertEquals(List.of("w7/1=42"), b.log);
    }

    @Test
    void overlappingClaimsAreRefusedWithBothNames() {
        Bus bus = new Bus("port I/O");
        bus.register("serial", 0x3f8, 8, new Echo());
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> bus.register("other", 0x3ff, 2, new Echo()));
        assertTrue(e.getMessage().contains("other") && e.getMessage().contains("serial"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> bus.register("inside", 0x3f9, 1, new Echo()));
        assertThrows(IllegalArgumentException.class, () -> bus.register("around", 0x3f0, 0x20, new Echo()));
        bus.register("adjacent", 0x400, 1, new Echo()); // touching is fine
        assertThrows(IllegalArgumentException.class, () -> bus.register("empty", 0x500, 0, new Echo()));
        assertThrows(IllegalArgumentException.class, () -> bus.register("wraps", Long.MAX_VALUE, 2, new Echo()));
    }

    @Test
    void unclaimedReadsAreAllOnesAndCounted() {
        Bus bus = new Bus("test");
        assertEquals(0xffL, bus.read(0x80, 1));
        assertEquals(0xffffL, bus.read(0x80, 2));
        assertEquals(0xffff_ffffL, bus.read(0x80, 4));
        assertEquals(-1L, bus.read(0x80, 8));
        bus.write(0x80, 1, 0);
        assertEquals(5, bus.unclaimedAccesses());
    }

    @Test
    void unregisterFreesTheRange() {
        Bus bus = new Bus("test");
        Echo a = new Echo();
        Bus.Claim c = bus.register("bar", 0x1000, 0x100, a);
        assertTrue(bus.unregister(c));
        assertEquals(0xff, bus.read(0x1000, 1));
        bus.register("moved", 0x1000, 0x100, new Echo());
    }

    @Test
    void lookupFindsEveryClaimAmongMany() {
        Bus bus = new Bus("test");
        for (int i = 0; i < 100; i++) bus.register("d" + i, i * 0x10L, 8, new Echo());
        for (int i = 0; i < 100; i++) {
            assertEquals("d" + i, bus.find(i * 0x10L + 7).name());
            assertEquals(null, bus.find(i * 0x10L + 8));
        }
    }
}
