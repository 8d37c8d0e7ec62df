package dev.jvmm.boot.acpi;

import dev.jvmm.boot.E820;
import dev.jvmm.boot.Machine;
import dev.jvmm.boot.x86.MpTable;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.acpi.AcpiPm;
import dev.jvmm.devices.legacy.CmosRtc;
import dev.jvmm.devices.legacy.I8042;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * jvmm's ACPI tables, written into the BIOS area [{@link #AREA_START}, {@link #AREA_END}) that the e820 map
 * reserves. The RSDP sits at the area's start, on the 16-byte boundary Linux's scan of 0xE0000-0xFFFFF finds;
 * it points to an RSDT and an XSDT listing the FADT and the MADT. The FADT describes a full-hardware (not
 * hardware-reduced) PC, so the 8259 PICs and the PIT keep working as they do under the MP table: PM1a event
 * and control blocks and the reset register in port I/O ({@link AcpiPm} at {@link #PM_PORT}), a FACS, no SMI
 * command port (the machine is in ACPI mode from the start), the PM timer, a fixed-feature power button and
 * the SCI on IRQ {@link #SCI_IRQ}, a pin no device uses. The DSDT holds \_S5 (for power-off), the legacy
 * devices as PnP devices with their ports and interrupts (as QEMU describes them, so that Linux's PnP drivers
 * find the UART, the i8042 and the RTC rather than guessing) and, when the machine has PCI, the host bridge
 * with its windows and interrupt routing. The MADT describes the same interrupt wiring as {@link MpTable}.
 */
public final class Acpi {
    public static final long AREA_START = E820.BIOS_AREA_START, AREA_END = E820.HIGH_MEMORY_START;
    public static final long RSDP_ADDRESS = AREA_START;
    public static final int PM_PORT = 0x600;
    /** IRQ 13 (the FPU error line, unused by 64-bit PCs and by every jvmm device). */
    public static final int SCI_IRQ = 13;

    public static final int PCI_BUS_CONFIG_PORT = 0xcf8;
    static final int RTC_PORT = 0x70;
    /**
     * ACPI processor UIDs are 32-bit in x2APIC entries; Local APIC entries hold APIC ids up to 254 (255 is broadcast).
     */
    static final int MAX_XAPIC_ID = 254;

    static final byte[] OEM_ID = "JVMM  ".getBytes(StandardCharsets.US_ASCII);
    static final byte[] OEM_TABLE_ID = "JVMMPC  ".getBytes(StandardCharsets.US_ASCII);
    static final int HEADER = 36;

    /** Where the PCI host bridge decodes memory for BARs; absent when the machine has no PCI. */
    public record PciWindow(long base, long size) {}

    private Acpi() {}

    /**
     * Writes every table. {@code pciIrqs} maps PCI slot to the IOAPIC pin of its INTA (empty: no PCI bus, as
     * for {@link MpTable#write}); {@code pciWindow} is the bridge's memory window (ignored without PCI).
     * Returns the end of what was written.
     */
    public static long write(GuestMemory memory, int cpus, Map<Integer, Integer> pciIrqs, PciWindow pciWindow) {
        if (cpus < 1) throw new IllegalArgumentException("cpus " + cpus);
        long facs = align(RSDP_ADDRESS + 36, 64);
        long dsdt = facs + 64;
        byte[] dsdtTable = dsdt(pciIrqs, pciWindow);
        long fadt = align(dsdt + dsdtTable.length, 16);
        byte[] fadtTable = fadt(facs, dsdt);
        long madt = align(fadt + fadtTable.length, 16);
        byte[] madtTable = madt(cpus);
        long rsdt = align(madt + madtTable.length, 16);
        long[] entries = {fadt, madt};
        byte[] rsdtTable = rootTable("RSDT", 1, entries, 4);
        long xsdt = align(rsdt + rsdtTable.length, 16);
        byte[] xsdtTable = rootTable("XSDT", 1, entries, 8);
        long end = xsdt + xsdtTable.length;
        if (end > AREA_END)
            throw new IllegalArgumentException("ACPI tables for " + cpus + " vCPUs do not fit below 1 MiB");

        memory.write(RSDP_ADDRESS, rsdp(rsdt, xsdt));
        memory.write(facs, facs());
        memory.write(dsdt, dsdtTable);
        memory.write(fadt, fadtTable);
        memory.write(madt, madtTable);
        memory.write(rsdt, rsdtTable);
        memory.write(xsdt, xsdtTable);
        return end;
    }

    /** RSDP revision 2 (ACPI 2.0+): the 20-byte v1 part with its checksum, then the XSDT and an extended checksum. */
    static byte[] rsdp(long rsdt, long xsdt) {
        ByteBuffer b = buffer(36);
        b.put("RSD PTR ".getBytes(StandardCharsets.US_ASCII))
                .put((byte) 0)
                .put(OEM_ID)
                .put((byte) 2)
                .putInt((int) rsdt);
        b.putInt(36).putLong(xsdt).put((byte) 0).put(new byte[3]);
        byte[] a = b.array();
        a[8] = checksum(a, 0, 20);
        a[32] = checksum(a, 0, 36);
        return a;
    }

    /** FACS: no checksum; a firmware waking vector of 0 (no S3) and the global lock, which nobody but the OS takes. */
    static byte[] facs() {
        ByteBuffer b = buffer(64);
        b.put("FACS".getBytes(StandardCharsets.US_ASCII)).putInt(64).putInt(0 /* hardware signature */);
        b.putInt(0 /* waking vector */)
                .putInt(0 /* global lock */)
                .putInt(0 /* flags */)
                .putLong(0 /* X waking vector */);
        b.put((byte) 2 /* version */);
        return b.array();
    }

    static byte[] rootTable(String signature, int revision, long[] entries, int entrySize) {
        ByteBuffer b = header(signature, HEADER + entries.length * entrySize, revision);
        for (long e : entries) {
            if (entrySize == 4) b.putInt((int) e);
            else b.putLong(e);
        }
        return finish(b);
    }

    // FADT (ACPI 6.5 table 5.9) field values.
    static final int FADT_LENGTH = 276, FADT_REVISION = 6, FADT_MINOR = 5;
    /** PWR_BUTTON and SLP_BUTTON set say there is no such fixed-feature button: jvmm has a power button only. */
    static final int FLAG_WBINVD = 1,
            FLAG_PROC_C1 = 1 << 2,
            FLAG_PWR_BUTTON = 1 << 4,
            FLAG_SLP_BUTTON = 1 << 5,
            FLAG_RESET_REG_SUP = 1 << 10;

    static final int BOOT_LEGACY_DEVICES = 1, BOOT_8042 = 1 << 1, BOOT_VGA_NOT_PRESENT = 1 << 2;
    static final int SPACE_IO = 1, ACCESS_BYTE = 1, ACCESS_WORD = 2, ACCESS_DWORD = 3;

    static byte[] fadt(long facs, long dsdt) {
        int evt = PM_PORT + AcpiPm.PM1_EVT_OFFSET,
                cnt = PM_PORT + AcpiPm.PM1_CNT_OFFSET,
                tmr = PM_PORT + AcpiPm.PM_TMR_OFFSET;
        ByteBuffer b = header("FACP", FADT_LENGTH, FADT_REVISION);
        // FIRMWARE_CTRL only (X_FIRMWARE_CTRL stays 0): with both, ACPICA installs the FACS twice.
        b.putInt(36, (int) facs).putInt(40, (int) dsdt);
        b.put(45, (byte) 0); // preferred PM profile: unspecified
        b.putShort(46, (short) SCI_IRQ);
        // 48 SMI_CMD = 0: no SMM, the machine starts in ACPI mode; ACPI_ENABLE/DISABLE stay 0.
        b.putInt(56, evt).putInt(64, cnt).putInt(76, tmr);
        b.put(88, (byte) AcpiPm.PM1_EVT_LENGTH)
                .put(89, (byte) AcpiPm.PM1_CNT_LENGTH)
                .put(91, (byte) AcpiPm.PM_TMR_LENGTH);
        // No GPE blocks (their addresses and lengths stay 0). The PM timer is 24 bits (TMR_VAL_EXT clear).
        b.putShort(96, (short) 101).putShort(98, (short) 1001); // C2 and C3 latencies above the limits: not supported
        b.put(108, (byte) 0x32); // CMOS index of the century (CmosRtc keeps it there)
        b.putShort(109, (short) (BOOT_LEGACY_DEVICES | BOOT_8042 | BOOT_VGA_NOT_PRESENT));
        b.putInt(112, FLAG_WBINVD | FLAG_PROC_C1 | FLAG_SLP_BUTTON | FLAG_RESET_REG_SUP);
        gas(b, 116, 8, ACCESS_BYTE, PM_PORT + AcpiPm.RESET_OFFSET);
        b.put(128, (byte) AcpiPm.RESET_VALUE);
        b.put(131, (byte) FADT_MINOR);
        b.putLong(140, dsdt);
        gas(b, 148, 8 * AcpiPm.PM1_EVT_LENGTH, ACCESS_WORD, evt);
        gas(b, 172, 8 * AcpiPm.PM1_CNT_LENGTH, ACCESS_WORD, cnt);
        gas(b, 208, 8 * AcpiPm.PM_TMR_LENGTH, ACCESS_DWORD, tmr);
        b.put(268, "JVMM    ".getBytes(StandardCharsets.US_ASCII)); // hypervisor vendor identity
        return finish(b);
    }

    private static void gas(ByteBuffer b, int at, int bits, int access, long address) {
        b.put(at, (byte) SPACE_IO)
                .put(at + 1, (byte) bits)
                .put(at + 2, (byte) 0)
                .put(at + 3, (byte) access)
                .putLong(at + 4, address);
    }

    /**
     * DSDT: Name(\_S5, Package(){5, 5, 0, 0}) (SLP_TYP for PM1a and PM1b) and
     * <pre>
     * Scope(\_SB) {
     *   Device(COM1) { Name(_HID, EisaId("PNP0501")) Name(_UID, 1) Name(_CRS, { IO 0x3f8-0x3ff, IRQ 4 }) }
     *   Device(KBD)  { Name(_HID, EisaId("PNP0303")) Name(_CRS, { IO 0x60, IO 0x64, IRQ 1 }) }
     *   Device(MOU)  { Name(_HID, EisaId("PNP0F13")) Name(_CRS, { IRQ 12 }) }
     *   Device(RTC)  { Name(_HID, EisaId("PNP0B00")) Name(_CRS, { IO 0x70-0x71, IRQ 8 }) }
     *   Device(PCI0) {                                      (with PCI only)
     *     Name(_HID, EisaId("PNP0A03"))  Name(_UID, 0)  Name(_BBN, 0)
     *     Name(_CRS, ResourceTemplate() { bus 0; config ports 0xcf8-0xcff; I/O 0-0xcf7 and 0xd00-0xffff;
     *                                     the memory window })
     *     Name(_PRT, Package() { Package() { slot << 16 | 0xffff, 0 (INTA), 0, GSI } ... })
     *   }
     * }
     * </pre>
     * The devices and their resources are QEMU's (its DSDT's COM1, KBD, MOU and RTC). Linux finds PCI under ACPI only
     * through such a host bridge, and routes INTx through _PRT (GSIs from 16 up are level-triggered, active low: the MP
     * table's PCI entries).
     */
    static byte[] dsdt(Map<Integer, Integer> pciIrqs, PciWindow window) {
        byte[] s5 = Aml.name(
                "\\_S5",
                Aml.packageOf(
                        Aml.integer(AcpiPm.SLP_TYP_S5),
                        Aml.integer(AcpiPm.SLP_TYP_S5),
                        Aml.integer(0),
                        Aml.integer(0)));
        List<byte[]> devices = new ArrayList<>();
        devices.add(Aml.device(
                "COM1",
                Aml.name("_HID", Aml.eisaId("PNP0501")),
                Aml.name("_UID", Aml.integer(1)),
                Aml.name(
                        "_CRS",
                        Aml.resourceTemplate(Aml.io(Machine.SERIAL_PORT, 8), Aml.irqNoFlags(Machine.SERIAL_IRQ)))));
        devices.add(Aml.device(
                "KBD",
                Aml.name("_HID", Aml.eisaId("PNP0303")),
                Aml.name(
                        "_CRS",
                        Aml.resourceTemplate(
                                Aml.io(I8042.DATA_PORT, 1),
                                Aml.io(I8042.COMMAND_PORT, 1),
                                Aml.irqNoFlags(I8042.KEYBOARD_IRQ)))));
        devices.add(Aml.device(
                "MOU",
                Aml.name("_HID", Aml.eisaId("PNP0F13")),
                Aml.name("_CRS", Aml.resourceTemplate(Aml.irqNoFlags(I8042.AUX_IRQ)))));
        devices.add(Aml.device(
                "RTC",
                Aml.name("_HID", Aml.eisaId("PNP0B00")),
                Aml.name("_CRS", Aml.resourceTemplate(Aml.io(RTC_PORT, 2), Aml.irqNoFlags(CmosRtc.IRQ)))));
        if (!pciIrqs.isEmpty()) {
            byte[][] prt = pciIrqs.entrySet().stream()
                    .map(e -> Aml.packageOf(
                            Aml.integer(((long) e.getKey() << 16) | 0xffff),
                            Aml.integer(0),
                            Aml.integer(0),
                            Aml.integer(e.getValue())))
                    .toArray(byte[][]::new);
            devices.add(Aml.device(
                    "PCI0",
                    Aml.name("_HID", Aml.eisaId("PNP0A03")),
                    Aml.name("_UID", Aml.integer(0)),
                    Aml.name("_BBN", Aml.integer(0)),
                    Aml.name("_CRS", Aml.buffer(pciResources(window))),
                    Aml.name("_PRT", Aml.packageOf(prt))));
        }
        byte[] body = Aml.concat(s5, Aml.scope("\\_SB", devices.toArray(byte[][]::new)));
        ByteBuffer b = header("DSDT", HEADER + body.length, 2); // revision 2: 64-bit AML integers
        b.put(HEADER, body);
        return finish(b);
    }

    /** The host bridge's resources (ACPI 6.5 section 6.4): what it decodes for the devices behind it. */
    static byte[] pciResources(PciWindow w) {
        ByteBuffer b = buffer(16 + 8 + 16 + 16 + 26 + 2);
        // Word address space descriptors: tag 0x88, length 13, type (2 bus, 1 I/O), flags 0x0c (producer,
        // MinFixed, MaxFixed), type-specific flags, then granularity, min, max, translation, length.
        b.put((byte) 0x88)
                .putShort((short) 13)
                .put((byte) 2)
                .put((byte) 0x0c)
                .put((byte) 0)
                .putShort((short) 0)
                .putShort((short) 0)
                .putShort((short) 0)
                .putShort((short) 0)
                .putShort((short) 1);
        // I/O port descriptor (consumed): 16-bit decode, 0xcf8, 8 ports.
        b.put((byte) 0x47)
                .put((byte) 1)
                .putShort((short) PCI_BUS_CONFIG_PORT)
                .putShort((short) PCI_BUS_CONFIG_PORT)
                .put((byte) 1)
                .put((byte) 8);
        wordIo(b, 0, PCI_BUS_CONFIG_PORT - 1);
        wordIo(b, PCI_BUS_CONFIG_PORT + 8, 0xffff);
        // DWord memory descriptor: tag 0x87, length 23, type 0, producer/MinFixed/MaxFixed, read-write non-cacheable.
        b.put((byte) 0x87)
                .putShort((short) 23)
                .put((byte) 0)
                .put((byte) 0x0c)
                .put((byte) 1)
                .putInt(0)
                .putInt((int) w.base())
                .putInt((int) (w.base() + w.size() - 1))
                .putInt(0)
                .putInt((int) w.size());
        b.put((byte) 0x79).put((byte) 0); // end tag, checksum 0 (treated as correct)
        return b.array();
    }

    private static void wordIo(ByteBuffer b, int min, int max) {
        // type-specific flags 3: the window covers ISA and non-ISA ranges (EntireRange)
        b.put((byte) 0x88)
                .putShort((short) 13)
                .put((byte) 1)
                .put((byte) 0x0c)
                .put((byte) 3)
                .putShort((short) 0)
                .putShort((short) min)
                .putShort((short) max)
                .putShort((short) 0)
                .putShort((short) (max - min + 1));
    }

    // MADT entry types and flags.
    static final int MADT_LOCAL_APIC = 0, MADT_IOAPIC = 1, MADT_INT_OVERRIDE = 2, MADT_LAPIC_NMI = 4, MADT_X2APIC = 9;
    static final int MADT_PCAT_COMPAT = 1, LAPIC_ENABLED = 1;
    /** MPS INTI flags: polarity bits 1:0 (1 active high, 3 active low), trigger bits 3:2 (1 edge, 3 level). */
    static final int INTI_LEVEL_ACTIVE_HIGH = 0x0d, INTI_CONFORMS = 0;

    /**
     * MADT: one Local APIC entry per vCPU (APIC id = vCPU index, as CPUID reports; x2APIC entries past id 254),
     * the IOAPIC with GSIs from 0, ISA IRQ 0 identity-mapped (not to pin 2 as on many PCs: KVM's PIT drives pin 0,
     * as the MP table says), the SCI level/active high, and LINT1 as NMI on every processor. The other ISA IRQs
     * use ACPI's default, identity mapping with ISA's edge/active-high: the MP table's wiring.
     */
    static byte[] madt(int cpus) {
        ByteArrayOutputStream entries = new ByteArrayOutputStream();
        for (int id = 0; id < cpus; id++) {
            ByteBuffer e;
            if (id <= MAX_XAPIC_ID) {
                e = buffer(8);
                e.put((byte) MADT_LOCAL_APIC)
                        .put((byte) 8)
                        .put((byte) id)
                        .put((byte) id)
                        .putInt(LAPIC_ENABLED);
            } else {
                e = buffer(16);
                e.put((byte) MADT_X2APIC)
                        .put((byte) 16)
                        .putShort((short) 0)
                        .putInt(id)
                        .putInt(LAPIC_ENABLED)
                        .putInt(id);
            }
            entries.writeBytes(e.array());
        }
        ByteBuffer io = buffer(12);
        io.put((byte) MADT_IOAPIC)
                .put((byte) 12)
                .put((byte) ioapicId(cpus))
                .put((byte) 0)
                .putInt((int) MpTable.IOAPIC_ADDRESS)
                .putInt(0);
        entries.writeBytes(io.array());
        entries.writeBytes(override(0, 0, INTI_CONFORMS));
        entries.writeBytes(override(SCI_IRQ, SCI_IRQ, INTI_LEVEL_ACTIVE_HIGH));
        ByteBuffer nmi = buffer(6);
        nmi.put((byte) MADT_LAPIC_NMI)
                .put((byte) 6)
                .put((byte) 0xff /* all processors */)
                .putShort((short) INTI_CONFORMS)
                .put((byte) 1);
        entries.writeBytes(nmi.array());

        byte[] body = entries.toByteArray();
        ByteBuffer b = header("APIC", HEADER + 8 + body.length, 5);
        b.putInt(HEADER, (int) MpTable.LAPIC_ADDRESS)
                .putInt(HEADER + 4, MADT_PCAT_COMPAT)
                .put(HEADER + 8, body);
        return finish(b);
    }

    /** The MP table's IOAPIC id (after the processors'); past 254 vCPUs no 8-bit id is free, and 0 is QEMU's choice. */
    static int ioapicId(int cpus) {
        return cpus <= MAX_XAPIC_ID ? cpus : 0;
    }

    private static byte[] override(int isaIrq, int gsi, int flags) {
        ByteBuffer e = buffer(10);
        e.put((byte) MADT_INT_OVERRIDE)
                .put((byte) 10)
                .put((byte) 0 /* ISA */)
                .put((byte) isaIrq)
                .putInt(gsi)
                .putShort((short) flags);
        return e.array();
    }

    private static ByteBuffer header(String signature, int length, int revision) {
        ByteBuffer b = buffer(length);
        b.put(signature.getBytes(StandardCharsets.US_ASCII))
                .putInt(length)
                .put((byte) revision)
                .put((byte) 0)
                .put(OEM_ID)
                .put(OEM_TABLE_ID)
                .putInt(1)
                .put("JVMM".getBytes(StandardCharsets.US_ASCII))
                .putInt(1);
        return b;
    }

    private static byte[] finish(ByteBuffer b) {
        byte[] a = b.array();
        a[9] = checksum(a, 0, a.length);
        return a;
    }

    private static ByteBuffer buffer(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static long align(long v, int a) {
        return (v + a - 1) & -a;
    }

    /** The byte that makes bytes [from, to) sum to zero, given that it currently holds 0. */
    static byte checksum(byte[] b, int from, int to) {
        int sum = 0;
        for (int i = from; i < to; i++) sum += b[i];
        return (byte) -sum;
    }
}
