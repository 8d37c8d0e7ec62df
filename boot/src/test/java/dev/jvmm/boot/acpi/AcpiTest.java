package dev.jvmm.boot.acpi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jvmm.boot.E820;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.devices.acpi.AcpiPm;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Writes the tables into guest memory and reads them back the way an OS does, checking every checksum. */
class AcpiTest {
    private static final Acpi.PciWindow WINDOW = new Acpi.PciWindow(0xc000_0000L, 0x1000_0000L);
    private final Arena arena = Arena.ofConfined();
    private final GuestMemory memory = GuestMemory.wrap(List.of(new MemoryRegion(0, arena.allocate(2 << 20, 4096))));

    @AfterEach
    void close() {
        arena.close();
    }

    private record Table(long address, String signature, byte[] bytes) {}

    @ParameterizedTest(name = "{0} vCPUs")
    @ValueSource(ints = {1, 2, 4, 26, 27, 254, 255, 300, 1024})
    void tablesParseBackWithValidChecksumsAndOneProcessorEntryPerVcpu(int cpus) {
        Map<Integer, Integer> pci = new LinkedHashMap<>();
        pci.put(1, 16);
        pci.put(2, 17);
        long end = Acpi.write(memory, cpus, pci, WINDOW);
        assertTrue(end <= E820.HIGH_MEMORY_START, "inside the reserved BIOS area");

        long rsdp = findRsdp();
        byte[] r = bytes(rsdp, 36);
        assertEquals(0, sum(r, 0, 20), "RSDP v1 checksum");
        assertEquals(0, sum(r, 0, 36), "RSDP extended checksum");
        assertEquals(2, r[15], "RSDP revision 2");
        assertEquals(36, memory.readInt(rsdp + 20), "RSDP length");
        long rsdtAddr = memory.readInt(rsdp + 16) & 0xffff_ffffL;
        long xsdtAddr = memory.readLong(rsdp + 24);

        Table xsdt = table(xsdtAddr, "XSDT");
        Table rsdt = table(rsdtAddr, "RSDT");
        List<Long> viaXsdt = new ArrayList<>(), viaRsdt = new ArrayList<>();
        for (int off = 36; off < xsdt.bytes().length; off += 8) viaXsdt.add(memory.readLong(xsdtAddr + off));
        for (int off = 36; off < rsdt.bytes().length; off += 4)
            viaRsdt.add(memory.readInt(rsdtAddr + off) & 0xffff_ffffL);
        assertEquals(viaXsdt, viaRsdt, "RSDT and XSDT list the same tables");
        Map<String, Table> tables = new LinkedHashMap<>();
        for (long a : viaXsdt) {
            String sig = signature(a);
            tables.put(sig, table(a, sig));
        }
        assertEquals(List.of("FACP", "APIC"), List.copyOf(tables.keySet()));

        Table fadt = tables.get("FACP");
        assertEquals(276, fadt.bytes().length);
        long dsdtAddr = memory.readLong(fadt.address() + 140),
                facsAddr = memory.readInt(fadt.address() + 36) & 0xffff_ffffL;
        assertEquals(dsdtAddr, memory.readInt(fadt.address() + 40) & 0xffff_ffffL, "DSDT and X_DSDT agree");
        assertEquals(0, memory.readLong(fadt.address() + 132), "X_FIRMWARE_CTRL unset: the FACS is named once");
        assertEquals("FACS", signature(facsAddr));
        assertEquals(64, memory.readInt(facsAddr + 4));
        assertEquals(0, facsAddr % 64, "FACS is 64-byte aligned");
        Table dsdt = table(dsdtAddr, "DSDT");
        assertTrue(indexOf(dsdt.bytes(), "PCI0".getBytes(StandardCharsets.US_ASCII)) > 0, "the PCI host bridge");

        int flags = memory.readInt(fadt.address() + 112);
        assertEquals(0, flags & (1 << 20), "full hardware, not HW_REDUCED_ACPI");
        assertNotEquals(0, flags & (1 << 10), "RESET_REG_SUP");
        assertEquals(0, flags & (1 << 4), "PWR_BUTTON clear: a fixed-feature power button");
        assertNotEquals(0, flags & (1 << 5), "SLP_BUTTON set: no sleep button");
        assertEquals(Acpi.PM_PORT + AcpiPm.PM_TMR_OFFSET, memory.readInt(fadt.address() + 76), "PM_TMR_BLK");
        assertEquals(4, memory.readByte(fadt.address() + 91), "PM_TMR_LEN");
        assertGas(fadt.address() + 208, 32, Acpi.PM_PORT + AcpiPm.PM_TMR_OFFSET);
        assertEquals(0, flags & (1 << 8), "TMR_VAL_EXT clear: a 24-bit PM timer");
        assertEquals(0, memory.readInt(fadt.address() + 48), "no SMI command port: ACPI mode from the start");
        assertEquals(Acpi.SCI_IRQ, memory.readShort(fadt.address() + 46));
        assertEquals(Acpi.PM_PORT, memory.readInt(fadt.address() + 56), "PM1a_EVT_BLK");
        assertEquals(Acpi.PM_PORT + AcpiPm.PM1_CNT_OFFSET, memory.readInt(fadt.address() + 64), "PM1a_CNT_BLK");
        assertEquals(4, memory.readByte(fadt.address() + 88));
        assertEquals(2, memory.readByte(fadt.address() + 89));
        assertGas(fadt.address() + 148, 32, Acpi.PM_PORT);
        assertGas(fadt.address() + 172, 16, Acpi.PM_PORT + AcpiPm.PM1_CNT_OFFSET);
        assertGas(fadt.address() + 116, 8, Acpi.PM_PORT + AcpiPm.RESET_OFFSET);
        assertEquals(AcpiPm.RESET_VALUE, memory.readByte(fadt.address() + 128));

        Table madt = tables.get("APIC");
        assertEquals(0xfee0_0000, memory.readInt(madt.address() + 36));
        assertEquals(1, memory.readInt(madt.address() + 40), "PCAT_COMPAT: the 8259s are there");
        List<Integer> apicIds = new ArrayList<>();
        int ioapics = 0, nmis = 0;
        Map<Integer, int[]> overrides = new LinkedHashMap<>();
        byte[] m = madt.bytes();
        for (int off = 44; off < m.length; ) {
            int type = m[off] & 0xff, len = m[off + 1] & 0xff;
            assertTrue(len >= 2 && off + len <= m.length, "entry at " + off + " stays inside the MADT");
            long at = madt.address() + off;
            switch (type) {
                case 0 -> {
                    assertEquals(8, len);
                    assertEquals(m[off + 2], m[off + 3], "processor UID = APIC id");
                    assertEquals(1, memory.readInt(at + 4), "enabled");
                    apicIds.add(m[off + 3] & 0xff);
                }
                case 9 -> {
                    assertEquals(16, len);
                    int id = memory.readInt(at + 4);
                    assertTrue(id > 254, "x2APIC entries only for ids xAPIC cannot hold: " + id);
                    assertEquals(1, memory.readInt(at + 8));
                    assertEquals(id, memory.readInt(at + 12));
                    apicIds.add(id);
                }
                case 1 -> {
                    assertEquals(12, len);
                    assertEquals(0xfec0_0000, memory.readInt(at + 4));
                    assertEquals(0, memory.readInt(at + 8), "GSI base");
                    ioapics++;
                }
                case 2 -> {
                    assertEquals(10, len);
                    assertEquals(0, m[off + 2], "ISA bus");
                    overrides.put(m[off + 3] & 0xff, new int[] {memory.readInt(at + 4), memory.readShort(at + 8)});
                }
                case 4 -> {
                    assertEquals(6, len);
                    assertEquals(0xff, m[off + 2] & 0xff, "every processor");
                    assertEquals(1, m[off + 5], "LINT1");
                    nmis++;
                }
                default -> throw new AssertionError("unexpected MADT entry type " + type);
            }
            off += len;
        }
        List<Integer> expectedIds = new ArrayList<>();
        for (int i = 0; i < cpus; i++) expectedIds.add(i);
        assertEquals(expectedIds, apicIds);
        assertEquals(1, ioapics);
        assertEquals(1, nmis);
        assertEquals(2, overrides.size());
        assertArrayEquals(new int[] {0, 0}, overrides.get(0), "the PIT stays on pin 0, as the MP table says");
        assertArrayEquals(new int[] {Acpi.SCI_IRQ, 0x0d}, overrides.get(Acpi.SCI_IRQ), "SCI: level, active high");
    }

    @Test
    void dsdtCarriesTheSoftOffPackageAndThePciRouting() {
        Acpi.write(memory, 1, Map.of(3, 18), WINDOW);
        byte[] dsdt = Acpi.dsdt(Map.of(3, 18), WINDOW);
        // Name(\_S5, Package(4){5, 5, 0, 0}) as iasl assembles it.
        byte[] s5 = HexFormat.of().parseHex("085c5f53355f1208040a050a050000");
        assertEquals(36, indexOf(dsdt, s5), "right after the header");
        // Package(){0x0003ffff, 0, 0, 18}: slot 3, INTA, GSI 18.
        assertTrue(indexOf(dsdt, HexFormat.of().parseHex("120b040cffff030000000a12")) > 0, "the _PRT entry");
        assertEquals(0, sum(dsdt, 0, dsdt.length));
        assertEquals(
                -1,
                indexOf(Acpi.dsdt(Map.of(), WINDOW), "PCI0".getBytes(StandardCharsets.US_ASCII)),
                "no PCI, no host bridge");
    }

    /**
     * ACPICA's own disassembler (iasl, the compiler every firmware's ASL goes through) reads the DSDT back: it
     * must decode with no error and say what jvmm meant, in ASL.
     */
    @Test
    void iaslDisassemblesTheDsdtIntoTheLegacyDevicesAndTheHostBridge(@TempDir Path dir) throws Exception {
        boolean iasl = Files.isExecutable(Path.of("/usr/bin/iasl"));
        if ("true".equals(System.getenv("CI")))
            assertTrue(iasl, "CI=true but iasl is missing (Debian package acpica-tools)");
        assumeTrue(iasl, "iasl not installed (Debian package acpica-tools)");
        Path aml = dir.resolve("dsdt.dat");
        Files.write(aml, Acpi.dsdt(Map.of(1, 16, 2, 17), WINDOW));
        Process p = new ProcessBuilder("/usr/bin/iasl", "-d", aml.toString())
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), out);
        String asl = Files.readString(dir.resolve("dsdt.dsl"))
                .replaceAll("(?s)/\\*.*?\\*/", "")
                .replaceAll("//[^\n]*", "")
                .replaceAll("\\s+", " ")
                .replace(" )", ")");
        assertTrue(asl.contains("Name (\\_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })"), asl);
        assertTrue(
                asl.contains("Device (COM1) { Name (_HID, EisaId (\"PNP0501\")) Name (_UID, One) Name (_CRS, "
                        + "ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08,) IRQNoFlags () {4} })"),
                asl);
        assertTrue(
                asl.contains("Device (KBD) { Name (_HID, EisaId (\"PNP0303\")) Name (_CRS, ResourceTemplate () { "
                        + "IO (Decode16, 0x0060, 0x0060, 0x01, 0x01,) IO (Decode16, 0x0064, 0x0064, 0x01, "
                        + "0x01,) IRQNoFlags () {1} })"),
                asl);
        assertTrue(
                asl.contains("Device (MOU) { Name (_HID, EisaId (\"PNP0F13\")) Name (_CRS, ResourceTemplate () { "
                        + "IRQNoFlags () {12} })"),
                asl);
        assertTrue(
                asl.contains("Device (RTC) { Name (_HID, EisaId (\"PNP0B00\")) Name (_CRS, ResourceTemplate () "
                        + "{ IO (Decode16, 0x0070, 0x0070, 0x01, 0x02,) IRQNoFlags () {8} })"),
                asl);
        assertTrue(asl.contains("Device (PCI0) { Name (_HID, EisaId (\"PNP0A03\"))"), asl);
        assertTrue(asl.contains("Package (0x04) { 0x0002FFFF, Zero, Zero, 0x11 }"), "the _PRT entry of slot 2: " + asl);
    }

    @Test
    void amlEncodingsMatchTheSpec() {
        assertArrayEquals(HexFormat.of().parseHex("0c41d00a03"), Aml.eisaId("PNP0A03"));
        assertArrayEquals(new byte[] {0x3f}, Aml.pkgLength(62));
        assertArrayEquals(new byte[] {0x41, 0x04}, Aml.pkgLength(63), "65 bytes: two-byte form, counting itself");
        assertArrayEquals(new byte[] {(byte) 0x83, 0x00, 0x01}, Aml.pkgLength(0x1000), "4099 bytes: three-byte form");
        assertArrayEquals(HexFormat.of().parseHex("0b0001"), Aml.integer(0x100));
        assertArrayEquals(HexFormat.of().parseHex("0a05"), Aml.integer(5));
        assertArrayEquals(new byte[] {0}, Aml.integer(0));
        assertArrayEquals(new byte[] {1}, Aml.integer(1));
        assertThrows(IllegalArgumentException.class, () -> Aml.nameString("toolong"));
    }

    private void assertGas(long at, int bits, long address) {
        assertEquals(1, memory.readByte(at), "system I/O space");
        assertEquals(bits, memory.readByte(at + 1) & 0xff);
        assertEquals(address, memory.readLong(at + 4));
    }

    /** Linux's scan: 16-byte boundaries of [0xE0000, 0x100000), signature and v1 checksum. */
    private long findRsdp() {
        for (long a = 0xe0000; a < 0x100000; a += 16) {
            if (signature8(a).equals("RSD PTR ") && sum(bytes(a, 20), 0, 20) == 0) return a;
        }
        throw new AssertionError("no RSDP");
    }

    private Table table(long address, String signature) {
        assertEquals(signature, signature(address));
        int length = memory.readInt(address + 4);
        assertTrue(length >= 36 && address + length <= E820.HIGH_MEMORY_START, signature + " length " + length);
        byte[] b = bytes(address, length);
        assertEquals(0, sum(b, 0, length), signature + " checksum");
        assertEquals("JVMM  ", new String(b, 10, 6, StandardCharsets.US_ASCII));
        return new Table(address, signature, b);
    }

    private String signature(long a) {
        return new String(bytes(a, 4), StandardCharsets.US_ASCII);
    }

    private String signature8(long a) {
        return new String(bytes(a, 8), StandardCharsets.US_ASCII);
    }

    private byte[] bytes(long a, int n) {
        byte[] b = new byte[n];
        memory.read(a, b, 0, n);
        return b;
    }

    private static int sum(byte[] b, int from, int to) {
        int s = 0;
        for (int i = from; i < to; i++) s += b[i];
        return s & 0xff;
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }
}
