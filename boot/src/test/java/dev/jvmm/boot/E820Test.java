package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.acpi.Acpi;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class E820Test {
    /** E820.of looks only at the regions' addresses, so the host segments are unbacked stand-ins of the right size. */
    private static List<E820.Entry> map(long... regionBaseAndSize) {
        List<MemoryRegion> regions = new ArrayList<>();
        for (int i = 0; i < regionBaseAndSize.length; i += 2)
            regions.add(
                    new MemoryRegion(regionBaseAndSize[i], MemorySegment.NULL.reinterpret(regionBaseAndSize[i + 1])));
        return E820.of(GuestMemory.wrap(regions));
    }

    @Test
    void smallGuestHasBaseRamTheReservedMpAndAcpiAreasAndHighRam() {
        assertEquals(
                List.of(
                        new E820.Entry(0, 0x9fc00, E820.RAM),
                        new E820.Entry(0x9fc00, 0x400, E820.RESERVED),
                        new E820.Entry(0xe0000, 0x20000, E820.RESERVED),
                        new E820.Entry(0x100000, (64 << 20) - 0x100000, E820.RAM)),
                map(0, 64 << 20));
    }

    @Test
    void bigGuestAddsRamAboveFourGib() {
        List<E820.Entry> m = map(0, 0xc000_0000L, 1L << 32, 1L << 30);
        assertEquals(5, m.size());
        assertEquals(new E820.Entry(1L << 32, 1L << 30, E820.RAM), m.get(4));
    }

    @Test
    void theAcpiTablesAreaIsInsideAReservedEntry() {
        List<E820.Entry> m = map(0, 64 << 20);
        assertTrue(
                m.stream()
                        .anyMatch(e -> e.type() == E820.RESERVED
                                && e.address() <= Acpi.AREA_START
                                && e.end() >= Acpi.AREA_END),
                m.toString());
    }
}
