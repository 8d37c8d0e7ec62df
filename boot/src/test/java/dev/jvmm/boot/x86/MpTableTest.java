package dev.jvmm.boot.x86;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import java.lang.foreign.Arena;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class MpTableTest {
    /** Machine writes the MP table only when fits() says so: fits() must agree with what write() accepts. */
    @Test
    void fitsAgreesWithWrite() {
        try (Arena arena = Arena.ofConfined()) {
            GuestMemory memory = GuestMemory.wrap(List.of(new MemoryRegion(0, arena.allocate(1 << 20, 4096))));
            for (Map<Integer, Integer> pci : List.of(Map.<Integer, Integer>of(), Map.of(1, 16, 2, 17, 3, 18))) {
                int largest = 0;
                for (int cpus = 1; cpus <= 64; cpus++) {
                    boolean written;
                    try {
                        MpTable.write(memory, cpus, pci);
                        written = true;
                    } catch (IllegalArgumentException e) {
                        written = false;
                    }
                    assertEquals(written, MpTable.fits(cpus, pci), cpus + " vCPUs, PCI " + pci);
                    if (written) largest = cpus;
                }
                assertTrue(largest >= 26 && largest < 64, "the KiB holds a few dozen vCPUs: " + largest);
            }
        }
    }
}
