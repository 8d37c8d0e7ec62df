package dev.jvmm.boot.x86;

import dev.jvmm.boot.E820;
import dev.jvmm.core.memory.GuestMemory;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The Intel MultiProcessor Specification 1.4 table, in the last KiB of base memory: every vCPU (its APIC id
 * is its index; vCPU 0 is the bootstrap processor), the ISA bus (and PCI when present), the IOAPIC, ISA IRQs
 * 0-15 wired to the same IOAPIC pins, and LINT0/LINT1 as ExtINT/NMI. Linux finds SMP this way without ACPI.
 */
public final class MpTable {
    public static final long ADDRESS = E820.BASE_MEMORY_END;
    public static final long IOAPIC_ADDRESS = 0xfec0_0000L;
    public static final long LAPIC_ADDRESS = 0xfee0_0000L;
    private static final int APIC_VERSION = 0x14, IOAPIC_VERSION = 0x11;
    private static final int CPU_ENABLED = 1, CPU_BSP = 2;

    private MpTable() {}

    /**
     * Writes the floating pointer and configuration table; pciIrqs maps PCI device slot to IOAPIC pin (empty: no PCI
     * bus).
     */
    public static void write(GuestMemory memory, int cpus, java.util.Map<Integer, Integer> pciIrqs) {
        boolean pci = !pciIrqs.isEmpty();
        int ioapicId = cpus; // after the processors' ids
        ByteArrayOutputStream entries = new ByteArrayOutputStream();
        int count = 0;
        for (int i = 0; i < cpus; i++) {
            ByteBuffer e = entry(20);
            e.put((byte) 0).put((byte) i).put((byte) APIC_VERSION).put((byte) (CPU_ENABLED | (i == 0 ? CPU_BSP : 0)));
            e.putInt(0x600); // CPU signature: family 6
            e.putInt(0x201); // feature flags: FPU, APIC
            entries.writeBytes(e.array());
            count++;
        }
        int isaBus = 0, pciBus = 1;
        entries.writeBytes(bus(isaBus, "ISA   "));
        count++;
        if (pci) {
            entries.writeBytes(bus(pciBus, "PCI   "));
            count++;
        }
        ByteBuffer io = entry(8);
        io.put((byte) 2)
                .put((byte) ioapicId)
                .put((byte) IOAPIC_VERSION)
                .put((byte) 1)
                .putInt((int) IOAPIC_ADDRESS);
        entries.writeBytes(io.array());
        count++;
        for (int irq = 0; irq < 16; irq++) {
            entries.writeBytes(interrupt(3, 0, 0, isaBus, irq, ioapicId, irq));
            count++;
        }
        for (var e : pciIrqs.entrySet()) {
            // PCI source IRQ: bits 6:2 device, 1:0 INTx pin (INTA = 0); level-triggered, active low.
            entries.writeBytes(interrupt(3, 0, 0xf, pciBus, e.getKey() << 2, ioapicId, e.getValue()));
            count++;
        }
        entries.writeBytes(interrupt(4, 3, 0, isaBus, 0, 0xff, 0)); // ExtINT -> LINT0 of every CPU
        entries.writeBytes(interrupt(4, 1, 0, isaBus, 0, 0xff, 1)); // NMI -> LINT1
        count += 2;

        byte[] body = entries.toByteArray();
        ByteBuffer cfg = ByteBuffer.allocate(44 + body.length).order(ByteOrder.LITTLE_ENDIAN);
        cfg.put("PCMP".getBytes(StandardCharsets.US_ASCII))
                .putShort((short) (44 + body.length))
                .put((byte) 4)
                .put((byte) 0);
        cfg.put(pad("JVMM    ", 8)).put(pad("jvmm PC     ", 12));
        cfg.putInt(0)
                .putShort((short) 0)
                .putShort((short) count)
                .putInt((int) LAPIC_ADDRESS)
                .putShort((short) 0)
                .put((byte) 0)
                .put((byte) 0);
        cfg.put(body);
        byte[] table = cfg.array();
        table[7] = checksum(table);

        long cfgAddr = ADDRESS + 16;
        if (cfgAddr + table.length > E820.EBDA_END)
            throw new IllegalArgumentException(
                    "an MP table for " + cpus + " vCPUs does not fit in the last KiB of base memory");
        ByteBuffer fp = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        fp.put("_MP_".getBytes(StandardCharsets.US_ASCII))
                .putInt((int) cfgAddr)
                .put((byte) 1)
                .put((byte) 4)
                .put((byte) 0);
        fp.put((byte) 0).put((byte) 0).put((byte) 0).put((byte) 0).put((byte) 0);
        byte[] floating = fp.array();
        floating[10] = checksum(floating);
        memory.write(ADDRESS, floating);
        memory.write(cfgAddr, table);
    }

    /** Whether the table for this machine fits in the reserved KiB (guests with more vCPUs need ACPI's MADT). */
    public static boolean fits(int cpus, java.util.Map<Integer, Integer> pciIrqs) {
        int entries = 20 * cpus
                + 8 /* ISA bus */
                + (pciIrqs.isEmpty() ? 0 : 8)
                + 8 /* IOAPIC */
                + 16 * 8
                + pciIrqs.size() * 8
                + 2 * 8;
        return ADDRESS + 16 + 44 + entries <= E820.EBDA_END;
    }

    private static ByteBuffer entry(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] bus(int id, String type) {
        ByteBuffer e = entry(8);
        e.put((byte) 1).put((byte) id).put(type.getBytes(StandardCharsets.US_ASCII));
        return e.array();
    }

    private static byte[] interrupt(
            int entryType, int irqType, int flags, int bus, int srcIrq, int dstApic, int dstPin) {
        ByteBuffer e = entry(8);
        e.put((byte) entryType)
                .put((byte) irqType)
                .putShort((short) flags)
                .put((byte) bus)
                .put((byte) srcIrq)
                .put((byte) dstApic)
                .put((byte) dstPin);
        return e.array();
    }

    private static byte[] pad(String s, int n) {
        byte[] b = new byte[n];
        byte[] src = s.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(src, 0, b, 0, Math.min(n, src.length));
        return b;
    }

    private static byte checksum(byte[] b) {
        int sum = 0;
        for (byte x : b) sum += x;
        return (byte) -sum;
    }
}
