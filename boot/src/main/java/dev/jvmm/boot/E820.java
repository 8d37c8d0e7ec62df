package dev.jvmm.boot;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import java.util.ArrayList;
import java.util.List;

/** The BIOS memory map jvmm gives a guest (boot_params, multiboot, PVH), derived from guest RAM. */
public final class E820 {
    public static final int RAM = 1, RESERVED = 2;
    /** The last KiB of base memory holds the MP table (an EBDA-like area), so it is reserved. */
    public static final long BASE_MEMORY_END = 0x9fc00;

    public static final long EBDA_END = 0xa0000;
    /** The upper BIOS area holds the ACPI tables (where Linux looks for the RSDP), so it is reserved. */
    public static final long BIOS_AREA_START = 0xe0000;

    public static final long HIGH_MEMORY_START = 0x100000;

    public record Entry(long address, long size, int type) {
        public long end() {
            return address + size;
        }
    }

    private E820() {}

    /** True when [address, address + length) lies inside one RAM entry of the map (length >= 0). */
    public static boolean isRam(GuestMemory memory, long address, long length) {
        for (Entry e : of(memory))
            if (e.type() == RAM && address >= e.address() && length >= 0 && length <= e.end() - address) return true;
        return false;
    }

    /**
     * RAM below 640 KiB (less the MP table's KiB, reserved), nothing for VGA and option ROMs, the BIOS area
     * [0xE0000, 1 MiB) reserved for the ACPI tables, RAM above 1 MiB, RAM above 4 GiB.
     */
    public static List<Entry> of(GuestMemory memory) {
        List<Entry> map = new ArrayList<>();
        for (MemoryRegion r : memory.regions()) {
            long start = r.guestBase(), end = r.guestEnd();
            if (start < HIGH_MEMORY_START) {
                long lowEnd = Math.min(end, BASE_MEMORY_END);
                if (lowEnd > start) map.add(new Entry(start, lowEnd - start, RAM));
                if (end > BASE_MEMORY_END) map.add(new Entry(BASE_MEMORY_END, EBDA_END - BASE_MEMORY_END, RESERVED));
                if (end > BIOS_AREA_START)
                    map.add(new Entry(BIOS_AREA_START, Math.min(end, HIGH_MEMORY_START) - BIOS_AREA_START, RESERVED));
                start = HIGH_MEMORY_START;
            }
            if (end > start) map.add(new Entry(start, end - start, RAM));
        }
        return map;
    }
}
