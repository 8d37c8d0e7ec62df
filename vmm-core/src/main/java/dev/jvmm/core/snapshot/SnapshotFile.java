package dev.jvmm.core.snapshot;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.core.snapshot.SnapshotException.Kind;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.CRC32C;

/**
 * jvmm's snapshot file: one file holding a machine's state and its guest RAM.
 *
 * <pre>
 * offset 0     header, 64 bytes, little-endian:
 *                magic "JVMMSNAP", u32 format version (1), u32 header size (64), u64 state length,
 *                u64 memory offset, u64 memory length, u32 CRC32C of the state, 16 bytes zero,
 *                u32 CRC32C of the header's first 60 bytes
 * offset 64    state: sections, each u8[4] tag, u16 version, u16 flags (bit 0: required), u32 length, payload
 *                META  the writer (jvmm version) and when          MEMR  guest RAM regions and where they lie
 *                KVMV  VM-wide KVM state ({@link VmState})          VCPU  one per vCPU, in id order ({@link VcpuState})
 *                DEVS  one per device ({@link DeviceState})
 *                MACH  optional: the machine builder's description of the machine (its config), for rebuilding it
 * memory offset (page-aligned) guest RAM, region after region; all-zero pages are holes never written
 * </pre>
 *
 * One file rather than a state file and a memory file beside it: a snapshot is then one thing to copy, move or delete,
 * and a state cannot be paired with the wrong memory. The RAM starts page-aligned so that a restore maps it straight
 * from the file, copy-on-write ({@link GuestMemory#mapPrivate}), reading only the pages the guest touches; for the same
 * reason the RAM has no checksum (checking it would read it all), while the state, small and read whole, has one. A
 * reader refuses a section it does not know only when the section says it is required, so a later jvmm can add
 * optional ones; a known section of a newer version is refused.
 */
public final class SnapshotFile {
    static final byte[] MAGIC = "JVMMSNAP".getBytes(StandardCharsets.US_ASCII);
    public static final int FORMAT_VERSION = 1;
    static final int HEADER_SIZE = 64;
    static final int PAGE = 4096;
    /** The most state (everything but RAM) a reader takes in: vCPUs of a few KiB each, devices of less. */
    static final long MAX_STATE = 64L << 20;

    static final int MAX_REGIONS = 64, MAX_VCPUS = 4096, MAX_DEVICES = 4096, MAX_CREATOR = 256;
    static final int FLAG_REQUIRED = 1;

    /** The sections this jvmm reads, each with the newest version it reads. */
    enum Tag {
        META("META", 1),
        MEMORY("MEMR", 1),
        VM("KVMV", VmState.VERSION),
        VCPU("VCPU", VcpuState.VERSION),
        DEVICE("DEVS", 1),
        MACHINE("MACH", 1);

        final byte[] bytes;
        final int version;

        Tag(String name, int version) {
            this.bytes = name.getBytes(StandardCharsets.US_ASCII);
            this.version = version;
        }

        static Tag of(byte[] b) {
            for (Tag t : values()) if (Arrays.equals(t.bytes, b)) return t;
            return null;
        }
    }

    /** Where one guest RAM region lies in the file: its bytes start at {@code fileOffset} (absolute). */
    public record MemoryImage(long guestBase, long size, long fileOffset) {}

    private final Path path;
    private final String creator;
    private final long createdMillis;
    private final MachineState state;
    private final List<MemoryImage> memory;
    private final List<String> skippedSections;

    private SnapshotFile(
            Path path,
            String creator,
            long createdMillis,
            MachineState state,
            List<MemoryImage> memory,
            List<String> skippedSections) {
        this.path = path;
        this.creator = creator;
        this.createdMillis = createdMillis;
        this.state = state;
        this.memory = List.copyOf(memory);
        this.skippedSections = List.copyOf(skippedSections);
    }

    public Path path() {
        return path;
    }

    /** Who wrote it ("jvmm 0.1.0", say). */
    public String creator() {
        return creator;
    }

    public long createdMillis() {
        return createdMillis;
    }

    public MachineState state() {
        return state;
    }

    public List<MemoryImage> memory() {
        return memory;
    }

    /** Optional sections this jvmm does not know and left alone, by tag. */
    public List<String> skippedSections() {
        return skippedSections;
    }

    /**
     * Maps the guest RAM from the file, private and copy-on-write: the guest's writes go to its own pages and never to
     * the file, so the same snapshot can be restored again, and pages are read from the file only when touched.
     */
    public GuestMemory mapMemory() {
        List<GuestMemory.FileRegion> regions = new ArrayList<>();
        for (MemoryImage m : memory) regions.add(new GuestMemory.FileRegion(m.guestBase(), m.size(), m.fileOffset()));
        return GuestMemory.mapPrivate(path, regions);
    }

    // ---- writing

    /**
     * Writes a snapshot of {@code state} and {@code memory} to {@code file}, atomically: into a temporary file beside
     * it, flushed to disk, then renamed over it. (A VM restored from {@code file} itself maps the old file, which
     * stays intact under that mapping until the VM closes.)
     */
    public static void write(Path file, MachineState state, GuestMemory memory, String creator) throws IOException {
        List<MemoryImage> images = new ArrayList<>();
        long memoryLength = 0;
        for (MemoryRegion r : memory.regions()) {
            images.add(new MemoryImage(r.guestBase(), r.size(), memoryLength)); // relative to the memory offset
            memoryLength += r.size();
        }
        byte[] sections = sections(state, images, creator);
        long memoryOffset = alignUp(HEADER_SIZE + (long) sections.length);
        ByteBuffer header = header(sections, memoryOffset, memoryLength);

        Path tmp = file.resolveSibling(
                file.getFileName() + ".tmp" + ProcessHandle.current().pid());
        boolean done = false;
        try (FileChannel ch = FileChannel.open(
                tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.READ)) {
            writeFully(ch, header, 0);
            writeFully(ch, ByteBuffer.wrap(sections), HEADER_SIZE);
            // The file's full length first: RAM pages never written stay holes, read back as zeros.
            try (var raf = new java.io.RandomAccessFile(tmp.toFile(), "rw")) {
                raf.setLength(memoryOffset + memoryLength);
            }
            int i = 0;
            for (MemoryRegion r : memory.regions())
                writeSparse(ch, r.host(), memoryOffset + images.get(i++).fileOffset());
            ch.force(true);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            done = true;
        } finally {
            if (!done) Files.deleteIfExists(tmp);
        }
    }

    static byte[] sections(MachineState state, List<MemoryImage> images, String creator) {
        StateOutput out = new StateOutput();
        section(out, Tag.META, 1, true, o -> o.string(creator).u64(System.currentTimeMillis()));
        section(out, Tag.MEMORY, 1, true, o -> {
            o.u32(images.size());
            for (MemoryImage m : images) o.u64(m.guestBase()).u64(m.size()).u64(m.fileOffset());
        });
        section(out, Tag.VM, VmState.VERSION, true, state.vm()::write);
        for (VcpuState v : state.vcpus()) section(out, Tag.VCPU, VcpuState.VERSION, true, v::write);
        for (DeviceState d : state.devices())
            section(
                    out,
                    Tag.DEVICE,
                    1,
                    true,
                    o -> o.string(d.id()).u32(d.version()).bytes(d.state()));
        // Not required: a bare VirtualMachine restore attaches its own devices and has no use for it.
        state.machine()
                .ifPresent(m -> section(
                        out,
                        Tag.MACHINE,
                        1,
                        false,
                        o -> o.string(m.id()).u32(m.version()).bytes(m.state())));
        return out.toByteArray();
    }

    static void section(
            StateOutput out, Tag tag, int version, boolean required, java.util.function.Consumer<StateOutput> body) {
        StateOutput payload = new StateOutput();
        body.accept(payload);
        out.raw(tag.bytes).u16(version).u16(required ? FLAG_REQUIRED : 0).bytes(payload.toByteArray());
    }

    static ByteBuffer header(byte[] sections, long memoryOffset, long memoryLength) {
        CRC32C crc = new CRC32C();
        crc.update(sections);
        ByteBuffer h = ByteBuffer.allocate(HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        h.put(MAGIC)
                .putInt(FORMAT_VERSION)
                .putInt(HEADER_SIZE)
                .putLong(sections.length)
                .putLong(memoryOffset)
                .putLong(memoryLength)
                .putInt((int) crc.getValue());
        CRC32C hcrc = new CRC32C();
        hcrc.update(h.array(), 0, HEADER_SIZE - 4);
        h.putInt(HEADER_SIZE - 4, (int) hcrc.getValue());
        return h.position(0);
    }

    /** Writes the pages of {@code ram} that are not all zero, each run of them in one write. */
    private static void writeSparse(FileChannel ch, MemorySegment ram, long fileOffset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment zero = arena.allocate(PAGE);
            long size = ram.byteSize();
            long off = 0;
            while (off < size) {
                while (off < size && MemorySegment.mismatch(ram, off, off + PAGE, zero, 0, PAGE) == -1) off += PAGE;
                long start = off;
                while (off < size && MemorySegment.mismatch(ram, off, off + PAGE, zero, 0, PAGE) != -1) off += PAGE;
                for (long p = start; p < off; p += 64L << 20) {
                    long n = Math.min(64L << 20, off - p);
                    writeFully(ch, ram.asSlice(p, n).asByteBuffer(), fileOffset + p);
                }
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b, long position) throws IOException {
        while (b.hasRemaining()) position += ch.write(b, position);
    }

    static long alignUp(long v) {
        return (v + PAGE - 1) & -PAGE;
    }

    // ---- reading

    /**
     * Reads and checks a snapshot's header and state; RAM is left in the file for {@link #mapMemory()}. Refuses with
     * a {@link SnapshotException} anything that is not a whole, intact snapshot this jvmm can read.
     */
    public static SnapshotFile read(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long fileSize = ch.size();
            ByteBuffer h = ByteBuffer.allocate(HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            readUpTo(ch, h, 0);
            int got = h.position();
            byte[] magic = Arrays.copyOf(h.array(), MAGIC.length);
            if (got < MAGIC.length || !Arrays.equals(magic, MAGIC))
                throw new SnapshotException(Kind.NOT_A_SNAPSHOT, file + " is not a jvmm snapshot (no JVMMSNAP magic)");
            if (got < 12) throw truncated(file, "the header", 12, got);
            int version = h.getInt(8);
            if (version != FORMAT_VERSION)
                throw new SnapshotException(
                        Kind.UNSUPPORTED_VERSION,
                        file + " is snapshot format version " + Integer.toUnsignedString(version)
                                + "; this jvmm reads version " + FORMAT_VERSION
                                + (Integer.compareUnsigned(version, FORMAT_VERSION) > 0
                                        ? " (written by a newer jvmm)"
                                        : ""));
            if (got < HEADER_SIZE) throw truncated(file, "the header", HEADER_SIZE, got);
            CRC32C hcrc = new CRC32C();
            hcrc.update(h.array(), 0, HEADER_SIZE - 4);
            if ((int) hcrc.getValue() != h.getInt(HEADER_SIZE - 4))
                throw SnapshotException.corrupt(file + ": the header's checksum does not match: the file is damaged");
            int headerSize = h.getInt(12);
            long stateLength = h.getLong(16), memoryOffset = h.getLong(24), memoryLength = h.getLong(32);
            int stateCrc = h.getInt(40);
            if (headerSize != HEADER_SIZE)
                throw SnapshotException.corrupt(file + ": header size " + headerSize + ", expected " + HEADER_SIZE);
            if (stateLength < 0 || stateLength > MAX_STATE)
                throw SnapshotException.corrupt(file + ": state length " + Long.toUnsignedString(stateLength)
                        + " is over the " + MAX_STATE + " bytes a snapshot's state may have");
            if (memoryOffset < HEADER_SIZE + stateLength
                    || (memoryOffset & (PAGE - 1)) != 0
                    || memoryOffset > Long.MAX_VALUE / 2)
                throw SnapshotException.corrupt(file + ": memory offset " + Long.toUnsignedString(memoryOffset)
                        + " is not page-aligned after the state");
            if (memoryLength < 0 || (memoryLength & (PAGE - 1)) != 0 || memoryLength > Long.MAX_VALUE / 2)
                throw SnapshotException.corrupt(
                        file + ": memory length " + Long.toUnsignedString(memoryLength) + " is not page-aligned");
            if (fileSize < HEADER_SIZE + stateLength)
                throw truncated(file, "the state", HEADER_SIZE + stateLength, fileSize);
            ByteBuffer s = ByteBuffer.allocate((int) stateLength);
            readUpTo(ch, s, HEADER_SIZE);
            if (s.hasRemaining())
                throw truncated(file, "the state", HEADER_SIZE + stateLength, HEADER_SIZE + s.position());
            CRC32C crc = new CRC32C();
            crc.update(s.array());
            if ((int) crc.getValue() != stateCrc)
                throw SnapshotException.corrupt(file + ": the state's checksum does not match: the file is damaged");
            SnapshotFile parsed = parse(file, s.array(), memoryOffset, memoryLength);
            if (fileSize < memoryOffset + memoryLength)
                throw truncated(file, "guest memory", memoryOffset + memoryLength, fileSize);
            return parsed;
        }
    }

    private static SnapshotException truncated(Path file, String what, long need, long have) {
        return new SnapshotException(
                Kind.TRUNCATED, file + " is truncated: " + what + " ends at byte " + need + ", the file has " + have);
    }

    private static void readUpTo(FileChannel ch, ByteBuffer b, long position) throws IOException {
        while (b.hasRemaining()) {
            int n = ch.read(b, position);
            if (n < 0) return;
            position += n;
        }
    }

    private static SnapshotFile parse(Path file, byte[] state, long memoryOffset, long memoryLength) {
        StateInput all = new StateInput(state, 0, state.length, file.toString());
        String creator = null;
        long created = 0;
        List<MemoryImage> memory = null;
        VmState vm = null;
        List<VcpuState> vcpus = new ArrayList<>();
        List<DeviceState> devices = new ArrayList<>();
        DeviceState machine = null;
        Set<String> deviceIds = new HashSet<>();
        List<String> skipped = new ArrayList<>();
        while (all.remaining() > 0) {
            byte[] tagBytes = all.raw("section tag", 4);
            String name = printable(tagBytes);
            int version = all.u16("section " + name + " version");
            int flags = all.u16("section " + name + " flags");
            byte[] payload = all.bytes("section " + name + " length", all.remaining());
            if ((flags & ~FLAG_REQUIRED) != 0)
                throw SnapshotException.corrupt(
                        file + ": section " + name + " has unknown flags 0x" + Integer.toHexString(flags));
            Tag tag = Tag.of(tagBytes);
            if (tag == null) {
                if ((flags & FLAG_REQUIRED) != 0)
                    throw new SnapshotException(
                            Kind.UNKNOWN_SECTION,
                            file + " has a section " + name
                                    + " this jvmm does not know and that is required to restore it"
                                    + " (a newer jvmm wrote it)");
                skipped.add(name);
                continue;
            }
            if (version < 1 || version > tag.version)
                throw new SnapshotException(
                        Kind.UNSUPPORTED_VERSION,
                        file + ": section " + name + " is version " + version + "; this jvmm reads versions 1 to "
                                + tag.version);
            String where = file + ": section " + name + (tag == Tag.VCPU ? " " + vcpus.size() : "");
            StateInput in = StateInput.of(payload, where);
            switch (tag) {
                case META -> {
                    if (creator != null) throw SnapshotException.corrupt(file + ": two META sections");
                    creator = in.string("creator", MAX_CREATOR);
                    created = in.u64("creation time");
                }
                case MEMORY -> {
                    if (memory != null) throw SnapshotException.corrupt(file + ": two MEMR sections");
                    memory = readMemory(in, memoryOffset, memoryLength);
                }
                case VM -> {
                    if (vm != null) throw SnapshotException.corrupt(file + ": two KVMV sections");
                    vm = VmState.read(in);
                }
                case VCPU -> {
                    if (vcpus.size() >= MAX_VCPUS)
                        throw SnapshotException.corrupt(file + ": more than " + MAX_VCPUS + " vCPUs");
                    VcpuState v = VcpuState.read(in);
                    if (v.id() != vcpus.size())
                        throw SnapshotException.corrupt(where + " holds vCPU id " + Integer.toUnsignedString(v.id())
                                + "; vCPUs must come in id order from 0");
                    vcpus.add(v);
                }
                case DEVICE -> {
                    if (devices.size() >= MAX_DEVICES)
                        throw SnapshotException.corrupt(file + ": more than " + MAX_DEVICES + " devices");
                    String id = in.string("device id", DeviceState.MAX_ID);
                    int v = in.u32("device state version");
                    byte[] bytes = in.bytes("device state", in.remaining());
                    if (id.isEmpty() || v < 1 || !deviceIds.add(id))
                        throw SnapshotException.corrupt(where + ": device '" + id + "' version " + v
                                + " (ids must be unique and non-empty, versions at least 1)");
                    devices.add(new DeviceState(id, v, bytes));
                }
                case MACHINE -> {
                    if (machine != null) throw SnapshotException.corrupt(file + ": two MACH sections");
                    String id = in.string("machine id", DeviceState.MAX_ID);
                    int v = in.u32("machine description version");
                    byte[] bytes = in.bytes("machine description", in.remaining());
                    if (id.isEmpty() || v < 1)
                        throw SnapshotException.corrupt(where + ": machine description '" + id + "' version " + v);
                    machine = new DeviceState(id, v, bytes);
                }
            }
            in.expectEnd();
        }
        if (creator == null || memory == null || vm == null || vcpus.isEmpty())
            throw SnapshotException.corrupt(file + ": a snapshot needs META, MEMR, KVMV and at least one VCPU section");
        return new SnapshotFile(
                file,
                creator,
                created,
                new MachineState(vm, vcpus, devices, java.util.Optional.ofNullable(machine)),
                memory,
                skipped);
    }

    private static List<MemoryImage> readMemory(StateInput in, long memoryOffset, long memoryLength) {
        int n = in.count("memory regions", MAX_REGIONS, 24);
        if (n == 0) throw SnapshotException.corrupt(in.where() + ": no memory regions");
        List<MemoryImage> out = new ArrayList<>(n);
        long prevGuestEnd = 0, prevFileEnd = 0;
        for (int i = 0; i < n; i++) {
            long base = in.u64("region guest base"), size = in.u64("region size"), off = in.u64("region offset");
            String r = "region " + i + " (guest 0x" + Long.toHexString(base) + ", 0x" + Long.toHexString(size)
                    + " bytes at memory offset 0x" + Long.toHexString(off) + ")";
            if (((base | size | off) & (PAGE - 1)) != 0 || size <= 0 || base < 0 || off < 0)
                throw SnapshotException.corrupt(in.where() + ": " + r + " is not page-aligned and positive");
            if (base < prevGuestEnd || base > Long.MAX_VALUE - size)
                throw SnapshotException.corrupt(in.where() + ": " + r + " overlaps the one before or wraps");
            if (off < prevFileEnd || off > memoryLength || size > memoryLength - off)
                throw SnapshotException.corrupt(in.where() + ": " + r + " overlaps the one before or lies outside the "
                        + memoryLength + " bytes of memory");
            prevGuestEnd = base + size;
            prevFileEnd = off + size;
            out.add(new MemoryImage(base, size, memoryOffset + off));
        }
        return out;
    }

    private static String printable(byte[] tag) {
        StringBuilder sb = new StringBuilder();
        for (byte b : tag) sb.append(b >= 0x20 && b < 0x7f ? (char) b : '?');
        return sb.toString();
    }
}
