package dev.jvmm.core.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.CpuidEntry;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.snapshot.SnapshotException.Kind;
import dev.jvmm.core.snapshot.SnapshotFile.MemoryImage;
import dev.jvmm.core.snapshot.SnapshotFile.Tag;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.gen.kvm_debugregs;
import dev.jvmm.kvm.gen.kvm_fpu;
import dev.jvmm.kvm.gen.kvm_irqchip;
import dev.jvmm.kvm.gen.kvm_lapic_state;
import dev.jvmm.kvm.gen.kvm_pit_state2;
import dev.jvmm.kvm.gen.kvm_regs;
import dev.jvmm.kvm.gen.kvm_sregs;
import dev.jvmm.kvm.gen.kvm_vcpu_events;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The snapshot file format without KVM: a round trip, and a refusal for every way a file can be wrong. */
class SnapshotFileTest {
    @TempDir
    Path dir;

    private static StructBytes pattern(long size, int seed) {
        byte[] b = new byte[(int) size];
        for (int i = 0; i < b.length; i++) b[i] = (byte) (seed * 31 + i * 7);
        return StructBytes.of(b);
    }

    private static final List<CpuidEntry> CPUID =
            List.of(new CpuidEntry(0, 0, 0, 0xd, 1, 2, 3), new CpuidEntry(1, 0, 0, 0x806f8, 0x800, 0x80000001, 0x10));

    static VcpuState vcpu(int id, VcpuState.Fpu fpu) {
        return new VcpuState(
                id,
                CPUID,
                2_000_000,
                pattern(kvm_regs.sizeof(), id),
                pattern(kvm_sregs.sizeof(), id + 1),
                fpu,
                List.of(new VcpuState.Xcr(0, 7)),
                List.of(new VcpuState.Msr(0x10, 123456789L), new VcpuState.Msr(0xc0000080, 0xd01)),
                List.of(0x4b564d05),
                Optional.of(pattern(kvm_lapic_state.sizeof(), id + 2)),
                Optional.of(pattern(kvm_vcpu_events.sizeof(), id + 3)),
                0,
                Optional.of(pattern(kvm_debugregs.sizeof(), id + 4)));
    }

    static MachineState state() {
        List<StructBytes> chips = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            byte[] c = pattern(kvm_irqchip.sizeof(), 10 + i).toArray();
            c[0] = (byte) i; // chip_id
            c[1] = c[2] = c[3] = 0;
            chips.add(StructBytes.of(c));
        }
        VmState vm = new VmState(chips, Optional.of(pattern(kvm_pit_state2.sizeof(), 20)), OptionalLong.of(987654321L));
        return new MachineState(
                vm,
                List.of(
                        vcpu(0, new VcpuState.Xsave(pattern(4096, 5))),
                        vcpu(1, new VcpuState.LegacyFpu(pattern(kvm_fpu.sizeof(), 6)))),
                List.of(new DeviceState("serial0", 1, new byte[] {1, 2, 3}), new DeviceState("rtc", 2, new byte[0])));
    }

    /** 1 MiB at 0 and 64 KiB at 4 GiB, with a few pages written. */
    static GuestMemory memory() {
        GuestMemory m = GuestMemory.allocate(
                List.of(new GuestMemory.Layout(0, 1 << 20), new GuestMemory.Layout(1L << 32, 64 << 10)),
                GuestMemory.Options.DEFAULT);
        m.writeLong(0x1000, 0x1122334455667788L);
        m.writeInt(0xff000, 42);
        m.writeByte((1L << 32) + 0x2fff, (byte) 9);
        return m;
    }

    private Path written() throws IOException {
        Path file = dir.resolve("vm.snap");
        try (GuestMemory m = memory()) {
            SnapshotFile.write(file, state(), m, "jvmm test");
        }
        return file;
    }

    @Test
    void roundTrip() throws IOException {
        Path file = written();
        SnapshotFile s = SnapshotFile.read(file);
        assertEquals(state(), s.state());
        assertEquals("jvmm test", s.creator());
        assertTrue(Math.abs(System.currentTimeMillis() - s.createdMillis()) < 600_000);
        assertEquals(List.of(), s.skippedSections());
        assertEquals(2, s.memory().size());
        assertEquals(0, s.memory().get(0).fileOffset() % 4096);
        try (GuestMemory m = s.mapMemory()) {
            assertEquals(0x1122334455667788L, m.readLong(0x1000));
            assertEquals(42, m.readInt(0xff000));
            assertEquals(9, m.readByte((1L << 32) + 0x2fff));
            assertEquals(0, m.readLong(0x2000));
            assertEquals((1 << 20) + (64 << 10), m.size());
            m.writeLong(0x1000, -1); // copy-on-write: the file keeps its bytes
        }
        try (GuestMemory m = SnapshotFile.read(file).mapMemory()) {
            assertEquals(0x1122334455667788L, m.readLong(0x1000));
        }
        // Three pages were written; the other 269 of RAM are holes.
        assertEquals(3 * 4096, dataBytes(file, s.memory().get(0).fileOffset()));
        assertTrue(Files.size(file) >= s.memory().get(1).fileOffset() + (64 << 10));
    }

    @Test
    void aSecondSnapshotReplacesTheFirstAtomicallyAndLeavesNoTemporaryFile() throws IOException {
        Path file = written();
        try (GuestMemory m = SnapshotFile.read(file).mapMemory()) { // a VM restored from it would map it like this
            m.writeInt(0xff000, 43);
            SnapshotFile.write(file, state(), m, "second");
            assertEquals(43, m.readInt(0xff000)); // the old file under the mapping was not truncated
        }
        assertEquals("second", SnapshotFile.read(file).creator());
        try (GuestMemory m = SnapshotFile.read(file).mapMemory()) {
            assertEquals(43, m.readInt(0xff000));
        }
        try (var files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    private SnapshotException refused(byte[] content, Kind kind) throws IOException {
        Path f = dir.resolve("bad.snap");
        Files.write(f, content);
        SnapshotException e = assertThrows(SnapshotException.class, () -> SnapshotFile.read(f));
        assertEquals(kind, e.kind(), e.getMessage());
        assertTrue(e.getMessage().contains("bad.snap"), e.getMessage());
        return e;
    }

    @Test
    void refusesWhatIsNotASnapshot() throws IOException {
        refused(new byte[0], Kind.NOT_A_SNAPSHOT);
        refused("JVMM".getBytes(), Kind.NOT_A_SNAPSHOT);
        refused("#!/bin/sh\necho this is a script, not a snapshot\n".getBytes(), Kind.NOT_A_SNAPSHOT);
        byte[] qcow = new byte[4096];
        qcow[0] = 'Q';
        qcow[1] = 'F';
        qcow[2] = 'I';
        qcow[3] = (byte) 0xfb;
        refused(qcow, Kind.NOT_A_SNAPSHOT);
    }

    @Test
    void refusesATruncatedFileWhereverItEnds() throws IOException {
        byte[] whole = Files.readAllBytes(written());
        long stateEnd = SnapshotFile.HEADER_SIZE + header(whole).getLong(16);
        long memoryOffset = header(whole).getLong(24);
        for (long cut : new long[] {10, 40, 63, 64, stateEnd / 2, stateEnd - 1, stateEnd, memoryOffset + 5000})
            refused(Arrays.copyOf(whole, (int) cut), Kind.TRUNCATED);
        refused(Arrays.copyOf(whole, whole.length - 1), Kind.TRUNCATED);
    }

    @Test
    void refusesAFormatVersionItDoesNotRead() throws IOException {
        byte[] b = Files.readAllBytes(written());
        header(b).putInt(8, 2);
        assertTrue(refused(b, Kind.UNSUPPORTED_VERSION).getMessage().contains("newer jvmm"));
        header(b).putInt(8, 0);
        refused(b, Kind.UNSUPPORTED_VERSION);
    }

    @Test
    void refusesBadChecksums() throws IOException {
        byte[] b = Files.readAllBytes(written());
        b[50] ^= 1; // a reserved header byte
        assertTrue(refused(b, Kind.CORRUPT).getMessage().contains("header's checksum"));
        b[50] ^= 1;
        b[SnapshotFile.HEADER_SIZE + 100] ^= 0x40; // a state byte
        assertTrue(refused(b, Kind.CORRUPT).getMessage().contains("state's checksum"));
    }

    @Test
    void refusesAHeaderClaimingMoreStateThanAnySnapshotHas() throws IOException {
        byte[] b = Files.readAllBytes(written());
        header(b).putLong(16, 1L << 40); // a terabyte of state: refused, not allocated
        fixHeaderCrc(b);
        assertTrue(refused(b, Kind.CORRUPT).getMessage().contains("state length"));
        header(b).putLong(16, -1);
        fixHeaderCrc(b);
        refused(b, Kind.CORRUPT);
    }

    @Test
    void refusesAMisplacedMemoryArea() throws IOException {
        byte[] b = Files.readAllBytes(written());
        header(b).putLong(24, header(b).getLong(24) + 1); // not page-aligned
        fixHeaderCrc(b);
        refused(b, Kind.CORRUPT);
        b = Files.readAllBytes(written());
        header(b).putLong(24, 0); // over the header
        fixHeaderCrc(b);
        refused(b, Kind.CORRUPT);
    }

    // ---- crafted state: valid checksums over hostile contents

    /** A file with the given sections as its state (checksums right) and 4 KiB of RAM after it. */
    private static byte[] file(byte[] sections, long memoryLength) {
        long memoryOffset = SnapshotFile.alignUp(SnapshotFile.HEADER_SIZE + (long) sections.length);
        ByteBuffer h = SnapshotFile.header(sections, memoryOffset, memoryLength);
        byte[] out = new byte[(int) (memoryOffset + memoryLength)];
        h.get(out, 0, SnapshotFile.HEADER_SIZE);
        System.arraycopy(sections, 0, out, SnapshotFile.HEADER_SIZE, sections.length);
        return out;
    }

    private static final List<MemoryImage> ONE_PAGE = List.of(new MemoryImage(0, 4096, 0));

    /** A valid state's sections (one vCPU, no devices, one page of RAM), then {@code extra}. */
    private static byte[] sectionsPlus(byte[]... extra) {
        MachineState s = new MachineState(state().vm(), List.of(state().vcpus().getFirst()), List.of());
        StateOutput out = new StateOutput().raw(SnapshotFile.sections(s, ONE_PAGE, "crafted"));
        for (byte[] e : extra) out.raw(e);
        return out.toByteArray();
    }

    private static byte[] section(String tag, int version, int flags, byte[] payload) {
        return new StateOutput()
                .raw(tag.getBytes())
                .u16(version)
                .u16(flags)
                .bytes(payload)
                .toByteArray();
    }

    @Test
    void craftedFilesAreReadWhenValid() throws IOException {
        assertEquals(1, read(file(sectionsPlus(), 4096)).state().vcpus().size());
    }

    private SnapshotFile read(byte[] content) throws IOException {
        Path f = dir.resolve("crafted.snap");
        Files.write(f, content);
        return SnapshotFile.read(f);
    }

    @Test
    void refusesAnUnknownRequiredSectionAndSkipsAnUnknownOptionalOne() throws IOException {
        byte[] future = section("NVME", 1, SnapshotFile.FLAG_REQUIRED, new byte[] {1, 2});
        SnapshotException e = refused(file(sectionsPlus(future), 4096), Kind.UNKNOWN_SECTION);
        assertTrue(e.getMessage().contains("NVME"), e.getMessage());
        byte[] optional = section("HINT", 3, 0, new byte[] {1, 2});
        assertEquals(List.of("HINT"), read(file(sectionsPlus(optional), 4096)).skippedSections());
        refused(file(sectionsPlus(section("HINT", 3, 0x8000, new byte[0])), 4096), Kind.CORRUPT); // unknown flag
    }

    @Test
    void refusesASectionVersionItDoesNotRead() throws IOException {
        StateOutput vcpu = new StateOutput();
        state().vcpus().get(1).write(vcpu);
        byte[] v2 = section("VCPU", VcpuState.VERSION + 1, SnapshotFile.FLAG_REQUIRED, vcpu.toByteArray());
        SnapshotException e = refused(file(sectionsPlus(v2), 4096), Kind.UNSUPPORTED_VERSION);
        assertTrue(e.getMessage().contains("VCPU"), e.getMessage());
    }

    @Test
    void refusesOversizedCountsAndLengthsInsideSections() throws IOException {
        // vCPU 1 claiming 4 billion CPUID entries
        byte[] cpuid = section("VCPU", 1, 1, new StateOutput().u32(1).u32(-1).toByteArray());
        assertTrue(refused(file(sectionsPlus(cpuid), 4096), Kind.CORRUPT)
                .getMessage()
                .contains("CPUID entries"));
        // a count within the limit that the section cannot hold
        byte[] short_ = section("VCPU", 1, 1, new StateOutput().u32(1).u32(1000).toByteArray());
        assertTrue(refused(file(sectionsPlus(short_), 4096), Kind.CORRUPT)
                .getMessage()
                .contains("does not fit"));
        // a kvm_regs of the wrong size
        byte[] regs = section(
                "VCPU",
                1,
                1,
                new StateOutput().u32(1).u32(0).u32(0).bytes(new byte[8]).toByteArray());
        assertTrue(refused(file(sectionsPlus(regs), 4096), Kind.CORRUPT)
                .getMessage()
                .contains("kvm_regs"));
        // a section longer than the state
        byte[] longer = new StateOutput()
                .raw("VCPU".getBytes())
                .u16(1)
                .u16(1)
                .u32(1 << 30)
                .toByteArray();
        refused(file(sectionsPlus(longer), 4096), Kind.CORRUPT);
        // a device id and state past the section's end
        byte[] device = section("DEVS", 1, 1, new StateOutput().u16(60000).toByteArray());
        refused(file(sectionsPlus(device), 4096), Kind.CORRUPT);
        // bytes left over after a section's last field
        StateOutput vcpu = new StateOutput();
        state().vcpus().get(1).write(vcpu);
        vcpu.u8(0);
        assertTrue(refused(file(sectionsPlus(section("VCPU", 1, 1, vcpu.toByteArray())), 4096), Kind.CORRUPT)
                .getMessage()
                .contains("left over"));
    }

    @Test
    void refusesBadStructure() throws IOException {
        StateOutput vcpu = new StateOutput();
        state().vcpus().get(0).write(vcpu); // a second vCPU 0
        assertTrue(refused(file(sectionsPlus(section("VCPU", 1, 1, vcpu.toByteArray())), 4096), Kind.CORRUPT)
                .getMessage()
                .contains("id order"));
        byte[] twoMeta =
                section("META", 1, 1, new StateOutput().string("x").u64(0).toByteArray());
        refused(file(sectionsPlus(twoMeta), 4096), Kind.CORRUPT);
        byte[] dup = section(
                "DEVS",
                1,
                1,
                new StateOutput().string("a").u32(1).bytes(new byte[0]).toByteArray());
        refused(file(sectionsPlus(dup, dup), 4096), Kind.CORRUPT);
        // no vCPU at all
        StateOutput noVcpu = new StateOutput();
        SnapshotFile.section(noVcpu, Tag.META, 1, true, o -> o.string("x").u64(0));
        refused(file(noVcpu.toByteArray(), 4096), Kind.CORRUPT);
    }

    @Test
    void refusesMemoryRegionsThatOverlapOrLieOutsideTheMemoryArea() throws IOException {
        MachineState s = new MachineState(state().vm(), List.of(state().vcpus().getFirst()), List.of());
        List<List<MemoryImage>> bad = List.of(
                List.of(new MemoryImage(0, 8192, 0), new MemoryImage(4096, 4096, 8192)), // guest overlap
                List.of(new MemoryImage(0, 4096, 0), new MemoryImage(8192, 4096, 0)), // file overlap
                List.of(new MemoryImage(0, 8192, 8192)), // past the memory area
                List.of(new MemoryImage(0, 4097, 0)), // not page-aligned
                List.of(new MemoryImage(Long.MAX_VALUE & -4096, 8192, 0)), // wraps
                List.of());
        for (List<MemoryImage> images : bad)
            refused(file(SnapshotFile.sections(s, images, "x"), 3 * 4096), Kind.CORRUPT);
    }

    // ---- devices

    @Test
    void deviceStateRefusesANewerVersionThanTheDeviceReads() {
        CounterGuest.Tickets tickets = new CounterGuest.Tickets();
        DeviceState saved =
                new DeviceState("tickets", 2, new StateOutput().u64(5).toByteArray());
        SnapshotException e = assertThrows(SnapshotException.class, () -> saved.restoreInto(tickets));
        assertEquals(Kind.UNSUPPORTED_VERSION, e.kind());
        DeviceState trailing =
                new DeviceState("tickets", 1, new StateOutput().u64(5).u8(0).toByteArray());
        assertEquals(
                Kind.CORRUPT,
                assertThrows(SnapshotException.class, () -> trailing.restoreInto(tickets))
                        .kind());
        new DeviceState("tickets", 1, new StateOutput().u64(5).toByteArray()).restoreInto(tickets);
        assertEquals(5, tickets.next());
        assertArrayEquals(
                new StateOutput().u64(5).toByteArray(), DeviceState.of(tickets).state());
    }

    // ---- the host check

    private static HostCapabilities host(int xsaveSize, Set<Integer> msrs) {
        List<CpuidEntry> supported =
                List.of(new CpuidEntry(0, 0, 0, 0xd, 1, 2, 3), new CpuidEntry(1, 0, 0, 0, 0, 0x1, 0x10));
        return new HostCapabilities(xsaveSize, true, true, true, true, true, true, false, true, msrs, supported);
    }

    @Test
    void checkHostRefusesWhatThisKvmCannotTake() {
        MachineState s = state();
        Set<Integer> msrs = Set.of(0x10, 0xc0000080);
        s.checkHost(host(4096, msrs)); // everything fits: no refusal

        assertHostRefusal(s, host(4096, Set.of(0x10)), "MSR 0xc0000080");
        assertHostRefusal(s, host(0, msrs), "no KVM_CAP_XSAVE");
        VcpuState big = vcpu(0, new VcpuState.Xsave(pattern(8192, 1)));
        assertHostRefusal(new MachineState(s.vm(), List.of(big), List.of()), host(4096, msrs), "8192 bytes");
        VcpuState avx = new VcpuState(
                0,
                List.of(new CpuidEntry(1, 0, 0, 0, 0, 0x10000001, 0x10)),
                0,
                big.regs(),
                big.sregs(),
                new VcpuState.Xsave(pattern(4096, 1)),
                List.of(),
                List.of(),
                List.of(),
                Optional.empty(),
                Optional.empty(),
                0,
                Optional.empty());
        assertHostRefusal(new MachineState(s.vm(), List.of(avx), List.of()), host(4096, msrs), "0x10000000");
        HostCapabilities noPit =
                new HostCapabilities(4096, true, true, true, true, false, true, false, true, msrs, List.of());
        assertHostRefusal(s, noPit, "KVM_CAP_PIT_STATE2");
    }

    private static void assertHostRefusal(MachineState s, HostCapabilities host, String says) {
        SnapshotException e = assertThrows(SnapshotException.class, () -> s.checkHost(host));
        assertEquals(Kind.HOST_INCOMPATIBLE, e.kind());
        assertTrue(e.getMessage().contains(says), e.getMessage());
    }

    private static ByteBuffer header(byte[] file) {
        return ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void fixHeaderCrc(byte[] b) {
        CRC32C crc = new CRC32C();
        crc.update(b, 0, SnapshotFile.HEADER_SIZE - 4);
        header(b).putInt(SnapshotFile.HEADER_SIZE - 4, (int) crc.getValue());
    }

    /** The bytes of {@code file} from {@code from} on that are data, not holes (SEEK_DATA/SEEK_HOLE). */
    static long dataBytes(Path file, long from) {
        int fd = Libc.open(file.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        try {
            long end = Libc.lseekRaw(fd, 0, Libc.SEEK_END), data = 0, pos = from;
            while (pos < end) {
                long start = Libc.lseekRaw(fd, pos, Libc.SEEK_DATA);
                if (start < 0) break; // ENXIO: no data after pos
                long hole = Libc.lseekRaw(fd, start, Libc.SEEK_HOLE);
                data += hole - start;
                pos = hole;
            }
            return data;
        } finally {
            Libc.close(fd);
        }
    }
}
