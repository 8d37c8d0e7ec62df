package dev.jvmm.boot.loader;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.jvmm.boot.BootException;
import dev.jvmm.boot.E820;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.core.x86.EntryState;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.gen.boot_params;
import dev.jvmm.kvm.gen.setup_header;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the loader fuzz targets share: one small guest RAM for the whole JVM, the choice of header values (the
 * valid default, a boundary, or anything), and the property every input is held to.
 *
 * <p>The property: {@link KernelLoader} recognises and loads the image, or refuses it with a {@link BootException}
 * whose message is one clear line; no other exception, whatever the header says. A load writes nothing outside
 * the ranges the image asks for, its initrd and jvmm's boot data below {@link BootLayout#BOOT_INFO_END}, refused
 * or not (the RAM is all zeroes before each input and every image's bytes are not); and a successful load put
 * each part where the guest can use it: the kernel's ranges and the initrd lie in RAM of the e820 map, above the
 * boot data and below 4 GiB (no entry mode reaches further), hold the file's bytes (bss zeroed), do not overlap,
 * and the entry point lies inside what was loaded; the command line and the boot protocol's pointers are right.
 *
 * <p>The saved inputs (...FuzzTestInputs) are written by boot/src/test/fuzz/loader_seeds.py as the choices the
 * generators consume; -Dloader.fuzz.verbose=true prints what each input does.
 */
final class LoaderFuzzing {
    /** Low RAM, and RAM above 4 GiB as a machine with more than 3 GiB has it (e820 lists both). */
    static final long LOW_RAM = 32L << 20, HIGH_BASE = 1L << 32, HIGH_RAM = 2L << 20;

    static final long FOUR_GIB = 1L << 32;

    /** Guest-physical addresses worth trying: boot data, e820 edges, RAM ends, 4 GiB, sign and width edges. */
    static final long[] ADDRESSES = {
        0,
        0x500,
        0x1000,
        BootLayout.ZERO_PAGE,
        BootLayout.CMDLINE,
        BootLayout.BOOT_INFO,
        BootLayout.BOOT_INFO_END - 0x1000,
        BootLayout.BOOT_INFO_END,
        0x9f000,
        E820.BASE_MEMORY_END,
        E820.EBDA_END,
        E820.BIOS_AREA_START,
        0xff000,
        BootLayout.HIGH_LOAD,
        0x1000000,
        LOW_RAM - 0x1000,
        LOW_RAM,
        FOUR_GIB - 0x1000,
        FOUR_GIB,
        HIGH_BASE + HIGH_RAM - 0x1000,
        HIGH_BASE + HIGH_RAM,
        0x7fffffffL,
        0xffffffffL,
        0xffffffff81000000L,
        Long.MAX_VALUE,
        Long.MIN_VALUE,
        -1,
        -0x1000
    };

    /** Sizes worth trying: empty, one byte, page edges, RAM-sized, the 1 TiB ELF limit, overflowing. */
    static final long[] SIZES = {
        0,
        1,
        0xfff,
        0x1000,
        0x1001,
        0x100000,
        LOW_RAM - 0x1000,
        LOW_RAM,
        FOUR_GIB,
        1L << 40,
        (1L << 40) + 1,
        0x7fffffffL,
        0xffffffffL,
        Long.MAX_VALUE,
        -1
    };

    /** -Dloader.fuzz.verbose=true prints each input's outcome: what a new seed does. */
    static final boolean VERBOSE = Boolean.getBoolean("loader.fuzz.verbose");

    private static GuestMemory memory;
    private static final MemorySegment ZEROES = Arena.global().allocate(1 << 20);
    private static final Map<Integer, byte[]> INITRDS = new HashMap<>();

    private LoaderFuzzing() {}

    /** The fuzzers' guest RAM: allocated once per JVM, all zeroes (and no page backed) between inputs. */
    static synchronized GuestMemory memory() {
        if (memory == null)
            memory = GuestMemory.allocate(
                    List.of(new GuestMemory.Layout(0, LOW_RAM), new GuestMemory.Layout(HIGH_BASE, HIGH_RAM)),
                    GuestMemory.Options.DEFAULT);
        return memory;
    }

    // ---- choosing values

    /** {@code dflt} (what an exhausted input gives), one of {@code interesting}, or any value. */
    static long pick(FuzzedDataProvider d, long dflt, long... interesting) {
        int c = d.consumeInt(0, interesting.length + 1);
        if (c == 0) return dflt;
        if (c <= interesting.length) return interesting[c - 1];
        return d.consumeLong();
    }

    /** {@code dflt}, or any value in [min, max]. */
    static int pickInt(FuzzedDataProvider d, int dflt, int min, int max) {
        return d.consumeBoolean() ? d.consumeInt(min, max) : dflt;
    }

    static long[] concat(long[] a, long... b) {
        long[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    /** A header field a fuzzer may set: its offset in the image and width in bytes. */
    record Field(String name, int offset, int width) {}

    /** An image and the fields of it worth setting to chosen values. */
    record Built(byte[] image, List<Field> fields) {}

    static void put(byte[] image, int offset, int width, long value) {
        for (int i = 0; i < width && offset + i < image.length; i++) {
            if (offset + i >= 0) image[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    /**
     * Sets up to three of the image's fields to a boundary value or any value, patches up to three runs of raw
     * bytes, and sometimes cuts the image short: the header values the builders would never write.
     */
    static byte[] mutate(FuzzedDataProvider d, Built b) {
        byte[] image = b.image();
        int n = d.consumeInt(0, 3);
        for (int i = 0; i < n && !b.fields().isEmpty(); i++) {
            Field f = b.fields().get(d.consumeInt(0, b.fields().size() - 1));
            long v = pick(
                    d,
                    0,
                    1,
                    -1,
                    (1L << (8 * f.width() - 1)) - 1,
                    1L << (8 * f.width() - 1),
                    image.length,
                    image.length - 1,
                    image.length + 1,
                    image.length - f.offset(),
                    0x1000,
                    LOW_RAM,
                    1L << 28,
                    1L << 30,
                    FOUR_GIB);
            put(image, f.offset(), f.width(), v);
        }
        int patches = d.consumeInt(0, 3);
        for (int i = 0; i < patches && image.length > 0; i++) {
            int at = d.consumeInt(0, image.length - 1);
            byte[] bytes = d.consumeBytes(8);
            System.arraycopy(bytes, 0, image, at, Math.min(bytes.length, image.length - at));
        }
        if (d.consumeInt(0, 7) == 7) image = Arrays.copyOf(image, d.consumeInt(0, image.length));
        return image;
    }

    /** A command line: usually short, sometimes at a size limit, sometimes not ASCII. */
    static String cmdline(FuzzedDataProvider d) {
        int kind = d.consumeInt(0, 3);
        return switch (kind) {
            case 0 -> "console=ttyS0";
            case 1 -> {
                int len = (int) pick(d, 0, 15, 16, 17, 2047, 2048, 2049, 0xfffe, 0xffff, 0x10000, 0x10001);
                yield "x".repeat(Math.floorMod(len, 0x10002));
            }
            case 2 -> d.consumeString(64);
            default -> d.consumeAsciiString(256);
        };
    }

    private static final long[] INITRD_SIZES = {
        0, 1, 0xfff, 0x1001, 0x60000, 0x100000, 8 << 20, 15 << 20, 24 << 20, LOW_RAM
    };

    /**
     * No initrd, or one of a chosen size (a listed size, kept for the next input, or any up to 64 KiB), every byte
     * of it 0xa5 so that its bytes show where they land.
     */
    static byte[] initrd(FuzzedDataProvider d) {
        if (!d.consumeBoolean()) return null;
        int c = d.consumeInt(0, INITRD_SIZES.length + 1);
        int n = c == 0 ? 0x1000 : c <= INITRD_SIZES.length ? (int) INITRD_SIZES[c - 1] : d.consumeInt(0, 0x10000);
        if (c > INITRD_SIZES.length) return filled(n);
        synchronized (INITRDS) {
            return INITRDS.computeIfAbsent(n, LoaderFuzzing::filled);
        }
    }

    private static byte[] filled(int n) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) 0xa5);
        return b;
    }

    static KernelLoader.BootPath bootPath(FuzzedDataProvider d) {
        KernelLoader.BootPath[] all = KernelLoader.BootPath.values();
        return all[pickInt(d, 0, 0, all.length - 1)];
    }

    // ---- the property

    /** A guest-physical range [start, end); end saturates instead of overflowing. */
    record Range(String what, long start, long end) {
        static Range of(String what, long start, long length) {
            long end = length < 0 || start > Long.MAX_VALUE - length ? Long.MAX_VALUE : start + length;
            return new Range(what, start, end);
        }

        boolean isEmpty() {
            return end <= start;
        }

        boolean overlaps(Range o) {
            return !isEmpty() && !o.isEmpty() && start < o.end && o.start < end;
        }

        @Override
        public String toString() {
            return String.format("%s [0x%x, 0x%x)", what, start, end);
        }
    }

    private static final Path NAME = Path.of("fuzzed-kernel");
    private static final Pattern AT_MOST = Pattern.compile("at most (\\d+)");

    /** Loads the image as jvmm would and holds the outcome to the property in the class comment. */
    static void loadAndCheck(byte[] image, byte[] initrd, String cmdline, KernelLoader.BootPath path) {
        GuestMemory m = memory();
        KernelLoader.KernelImage k = null;
        LoadedKernel loaded = null;
        List<Range> allowed = new ArrayList<>();
        allowed.add(new Range("jvmm's boot data", 0, BootLayout.BOOT_INFO_END));
        String refusal = null;
        try {
            try {
                k = KernelLoader.recognise(NAME, image, initrd, path);
                loaded = KernelLoader.load(m, k, cmdline);
            } catch (BootException e) {
                refusal = e.kind() + ": " + e.getMessage();
                assertNotNull(e.kind(), "a refusal without a kind");
                String msg = e.getMessage();
                assertTrue(msg != null && !msg.isBlank(), "a refusal without a message: " + e.kind());
                assertFalse(msg.contains("\n"), "a refusal's message is one line: " + msg);
                if (e.kind() == BootException.Kind.CMDLINE_TOO_LONG) { // the limit it names is the one exceeded
                    Matcher limit = AT_MOST.matcher(msg);
                    assertTrue(limit.find(), msg);
                    assertTrue(
                            cmdline.getBytes(StandardCharsets.US_ASCII).length > Long.parseLong(limit.group(1)),
                            "the message names a limit the command line does not exceed: " + msg);
                }
            }
            if (VERBOSE)
                System.out.println(
                        "outcome: " + (loaded != null ? "loaded: " + loaded.description() : "refused: " + refusal));
            Plan plan = k == null ? new Plan(List.of(), null) : plan(k, m);
            allowed.addAll(plan.ranges());
            if (loaded != null) allowed.addAll(checkLoaded(m, k, cmdline, loaded, plan));
            assertWroteOnlyInside(m, allowed, loaded);
        } finally {
            drop(m);
        }
    }

    /** What the image asks to be loaded where: ranges, and the ELF file whose segments they are, if any. */
    private record Plan(List<Range> ranges, Elf elf) {}

    /** The ranges the image asks to be loaded at, read from it whether or not the load succeeded. */
    private static Plan plan(KernelLoader.KernelImage k, GuestMemory m) {
        byte[] image = k.image();
        List<Range> ranges = new ArrayList<>();
        Elf elf = null;
        try {
            switch (k.format()) {
                case BZIMAGE -> {
                    LinuxLoader.SetupHeader h = LinuxLoader.SetupHeader.parse(image);
                    int pm = h.protectedModeOffset();
                    if (pm >= image.length) break;
                    if (k.bootPath() == KernelLoader.BootPath.DECOMPRESSOR) {
                        ranges.add(Range.of("protected-mode code", BootLayout.HIGH_LOAD, image.length - pm));
                    } else {
                        long start = pm + h.payloadOffset();
                        if (h.payloadLength() == 0 || start + h.payloadLength() > image.length) break;
                        byte[] payload = Arrays.copyOfRange(image, (int) start, (int) (start + h.payloadLength()));
                        byte[] vmlinux = PayloadDecompressor.decompress(payload, m.size());
                        elf = Elf.parse(vmlinux, "vmlinux");
                    }
                }
                case ELF -> elf = Elf.parse(image, "kernel");
                case MULTIBOOT -> {
                    MultibootLoader.Header h = MultibootLoader.findHeader(image).orElseThrow();
                    if ((h.flags() & 0x10000) != 0) {
                        long fileStart = h.offset() - (h.headerAddr() - h.loadAddr());
                        long length = h.loadEndAddr() == 0 ? image.length - fileStart : h.loadEndAddr() - h.loadAddr();
                        long end = Math.max(h.loadAddr() + length, h.bssEndAddr());
                        ranges.add(new Range("a.out kludge image and bss", h.loadAddr(), end));
                    } else {
                        elf = Elf.parse(image, "kernel");
                    }
                }
            }
        } catch (BootException e) {
            // not loadable: nothing of it is written
        }
        if (elf != null)
            for (Elf.Segment s : elf.loadSegments()) ranges.add(Range.of("segment", s.paddr(), s.memSize()));
        return new Plan(List.copyOf(ranges), elf);
    }

    /** Checks a successful load; returns the initrd's range, where it was placed. */
    private static List<Range> checkLoaded(
            GuestMemory m, KernelLoader.KernelImage k, String cmdline, LoadedKernel loaded, Plan plan) {
        String d = loaded.description();
        assertTrue(d != null && !d.isBlank(), "a load without a description");
        EntryState e = loaded.entry();
        byte[] image = k.image();
        List<Range> nonEmpty = plan.ranges().stream().filter(r -> !r.isEmpty()).toList();
        assertFalse(nonEmpty.isEmpty(), d + ": loaded, but nothing of the kernel was placed");
        List<E820.Entry> ram =
                E820.of(m).stream().filter(x -> x.type() == E820.RAM).toList();
        for (Range r : nonEmpty) {
            assertTrue(r.start() >= BootLayout.BOOT_INFO_END, d + ": " + r + " overlaps jvmm's boot data");
            assertTrue(r.end() <= FOUR_GIB, d + ": " + r + " lies above 4 GiB, beyond what the entry mode reaches");
            assertTrue(inRam(ram, r), d + ": " + r + " is not RAM in the e820 map");
            assertTrue(r.end() <= loaded.kernelEnd(), d + ": " + r + " ends past kernelEnd " + loaded.kernelEnd());
        }

        // The entry point, and the registers the protocol passes.
        long ip = e.ip();
        assertTrue(ip >= 0 && ip < FOUR_GIB, String.format("%s: entry 0x%x above 4 GiB", d, ip));
        assertTrue(
                nonEmpty.stream().anyMatch(r -> ip >= r.start() && ip < r.end()),
                String.format("%s: entry 0x%x lies outside what was loaded: %s", d, ip, nonEmpty));

        // The bytes: each segment (or image) that no later one overlaps holds the file's bytes, then zeroes.
        checkContents(m, k, plan);

        Range rd = null;
        switch (k.format()) {
            case BZIMAGE, ELF -> {
                if (e.mode() == EntryState.Mode.PROTECTED) { // PVH
                    assertEquals(BootLayout.BOOT_INFO, e.rbx(), d);
                    assertEquals(PvhStartInfo.MAGIC, m.readInt(BootLayout.BOOT_INFO), d);
                    assertEquals(BootLayout.CMDLINE, m.readLong(BootLayout.BOOT_INFO + 24), d);
                    int modules = m.readInt(BootLayout.BOOT_INFO + 12);
                    if (k.initrd() == null) assertEquals(0, modules, d);
                    else {
                        assertEquals(1, modules, d);
                        long list = m.readLong(BootLayout.BOOT_INFO + 16);
                        assertTrue(list >= BootLayout.BOOT_INFO && list < BootLayout.BOOT_INFO_END - 16, d);
                        rd = Range.of("initrd", m.readLong(list), m.readLong(list + 8));
                    }
                } else {
                    assertEquals(EntryState.Mode.LONG, e.mode(), d);
                    assertEquals(BootLayout.ZERO_PAGE, e.rsi(), d);
                    MemorySegment zp = m.slice(BootLayout.ZERO_PAGE, boot_params.sizeof());
                    MemorySegment hdr = boot_params.hdr(zp);
                    assertEquals((int) BootLayout.CMDLINE, setup_header.cmd_line_ptr(hdr), d);
                    assertEquals(0x53726448, setup_header.header(hdr), d + ": the zero page's header magic");
                    assertEquals(E820.of(m).size(), boot_params.e820_entries(zp), d + ": e820 entries");
                    assertEquals(0, setup_header.setup_data(hdr), d + ": setup_data, though jvmm passes none");
                    long at = setup_header.ramdisk_image(hdr) & 0xffffffffL;
                    long size = setup_header.ramdisk_size(hdr) & 0xffffffffL;
                    if (k.initrd() == null) assertEquals(0, size, d + ": ramdisk_size, though there is no initrd");
                    else {
                        rd = Range.of("initrd", at, size);
                        long max = k.format() == KernelLoader.Format.BZIMAGE
                                        && LinuxLoader.SetupHeader.parse(image).initrdAddrMax() != 0
                                ? LinuxLoader.SetupHeader.parse(image).initrdAddrMax()
                                : 0x37ffffffL;
                        assertTrue(rd.isEmpty() || rd.end() - 1 <= max, d + ": " + rd + " above initrd_addr_max");
                    }
                }
            }
            case MULTIBOOT -> {
                assertEquals(EntryState.Mode.PROTECTED, e.mode(), d);
                assertEquals(MultibootLoader.BOOTLOADER_MAGIC, e.rax(), d);
                assertEquals(BootLayout.BOOT_INFO, e.rbx(), d);
                assertEquals((int) BootLayout.CMDLINE, m.readInt(BootLayout.BOOT_INFO + 16), d);
                int modules = m.readInt(BootLayout.BOOT_INFO + 20);
                if (k.initrd() == null) assertEquals(0, modules, d);
                else {
                    assertEquals(1, modules, d);
                    long mod = m.readInt(BootLayout.BOOT_INFO + 24) & 0xffffffffL;
                    assertTrue(mod >= BootLayout.BOOT_INFO && mod < BootLayout.BOOT_INFO_END - 16, d);
                    long start = m.readInt(mod) & 0xffffffffL, end = m.readInt(mod + 4) & 0xffffffffL;
                    rd = new Range("initrd", start, end);
                }
            }
        }

        byte[] cmd = cmdline.getBytes(StandardCharsets.US_ASCII);
        byte[] inRam = new byte[cmd.length + 1];
        m.read(BootLayout.CMDLINE, inRam, 0, inRam.length);
        assertTrue(
                Arrays.equals(cmd, 0, cmd.length, inRam, 0, cmd.length) && inRam[cmd.length] == 0,
                d + ": the command line at 0x20000 is not the one given");

        if (rd == null) return List.of();
        byte[] initrd = k.initrd();
        assertEquals(initrd.length, rd.end() - rd.start(), d + ": " + rd + " has not the initrd's size");
        assertEquals(0, rd.start() & 0xfff, d + ": " + rd + " is not page-aligned");
        assertTrue(rd.start() >= loaded.kernelEnd(), d + ": " + rd + " starts below kernelEnd " + loaded.kernelEnd());
        if (!rd.isEmpty()) {
            assertTrue(rd.start() >= BootLayout.BOOT_INFO_END, d + ": " + rd + " overlaps jvmm's boot data");
            assertTrue(rd.end() <= FOUR_GIB, d + ": " + rd + " lies above 4 GiB");
            assertTrue(inRam(ram, rd), d + ": " + rd + " is not RAM in the e820 map");
            for (Range r : nonEmpty) assertFalse(rd.overlaps(r), d + ": " + rd + " overlaps the kernel's " + r);
            assertEquals(
                    -1,
                    m.slice(rd.start(), initrd.length).mismatch(MemorySegment.ofArray(initrd)),
                    d + ": " + rd + " does not hold the initrd");
        }
        return List.of(rd);
    }

    private static boolean inRam(List<E820.Entry> ram, Range r) {
        return ram.stream().anyMatch(x -> r.start() >= x.address() && r.end() <= x.end());
    }

    private static void checkContents(GuestMemory m, KernelLoader.KernelImage k, Plan plan) {
        byte[] image = k.image();
        if (plan.elf() != null) {
            segmentContents(m, plan.elf());
        } else if (k.format() == KernelLoader.Format.BZIMAGE) {
            int pm = LinuxLoader.SetupHeader.parse(image).protectedModeOffset();
            expect(m, BootLayout.HIGH_LOAD, image, pm, image.length - pm, 0, "protected-mode code");
        } else {
            MultibootLoader.Header h = MultibootLoader.findHeader(image).orElseThrow();
            int fileStart = (int) (h.offset() - (h.headerAddr() - h.loadAddr()));
            int length = (int) (h.loadEndAddr() == 0 ? image.length - fileStart : h.loadEndAddr() - h.loadAddr());
            long bss = Math.max(0, h.bssEndAddr() - (h.loadAddr() + length));
            expect(m, h.loadAddr(), image, fileStart, length, bss, "a.out kludge image");
        }
    }

    private static void segmentContents(GuestMemory m, Elf elf) {
        List<Elf.Segment> segs = elf.loadSegments();
        for (int i = 0; i < segs.size(); i++) {
            Elf.Segment s = segs.get(i);
            Range r = Range.of("segment " + i, s.paddr(), s.memSize());
            boolean overwritten = false;
            for (int j = i + 1; j < segs.size(); j++)
                overwritten |=
                        r.overlaps(Range.of("", segs.get(j).paddr(), segs.get(j).memSize()));
            if (!overwritten)
                expect(
                        m,
                        s.paddr(),
                        elf.image(),
                        (int) s.offset(),
                        (int) s.fileSize(),
                        s.memSize() - s.fileSize(),
                        r.toString());
        }
    }

    private static void expect(GuestMemory m, long at, byte[] file, int offset, int length, long zeroes, String what) {
        MemorySegment got = m.slice(at, length);
        long diff = MemorySegment.mismatch(got, 0, length, MemorySegment.ofArray(file), offset, offset + length);
        assertEquals(-1, diff, what + " at 0x" + Long.toHexString(at) + " does not hold the file's bytes");
        long nonZero = firstNonZero(m.slice(at + length, zeroes));
        assertEquals(-1, nonZero, what + ": its bss is not zeroed");
    }

    private static final MethodHandle MINCORE = Linker.nativeLinker()
            .downcallHandle(
                    Linker.nativeLinker().defaultLookup().find("mincore").orElseThrow(),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));
    private static final long PAGE = 4096;

    /**
     * Fails if any byte outside {@code allowed} is not zero. Only pages the host has backed can hold anything but
     * zeroes (the RAM is dropped after each input): mincore lists them, and only they are read.
     */
    private static void assertWroteOnlyInside(GuestMemory m, List<Range> allowed, LoadedKernel loaded) {
        List<Range> sorted = allowed.stream()
                .filter(r -> !r.isEmpty())
                .sorted(Comparator.comparingLong(Range::start))
                .toList();
        for (MemoryRegion region : m.regions()) {
            byte[] resident = resident(region.host());
            for (int page = 0; page < resident.length; page++) {
                if ((resident[page] & 1) == 0) continue;
                long at = region.guestBase() + page * PAGE, to = at + PAGE;
                for (Range r : sorted) {
                    if (r.end() <= at) continue;
                    if (r.start() >= to) break;
                    if (r.start() > at) checkZero(region, at, r.start(), allowed, loaded);
                    at = Math.max(at, r.end());
                }
                if (at < to) checkZero(region, at, to, allowed, loaded);
            }
        }
    }

    private static void checkZero(MemoryRegion region, long from, long to, List<Range> allowed, LoadedKernel loaded) {
        MemorySegment s = region.host().asSlice(from - region.guestBase(), to - from);
        long i = firstNonZero(s);
        if (i >= 0)
            fail(String.format(
                    "the loader wrote 0x%02x at 0x%x, outside %s (%s)",
                    s.get(ValueLayout.JAVA_BYTE, i),
                    from + i,
                    allowed,
                    loaded == null ? "refused" : loaded.description()));
    }

    private static byte[] resident(MemorySegment host) {
        try (Arena a = Arena.ofConfined()) {
            int pages = (int) ((host.byteSize() + PAGE - 1) / PAGE);
            MemorySegment vec = a.allocate(pages);
            int r = (int) MINCORE.invokeExact(host, host.byteSize(), vec);
            if (r != 0) throw new IllegalStateException("mincore failed: " + r);
            return vec.toArray(ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            if (t instanceof RuntimeException e) throw e;
            throw new IllegalStateException(t);
        }
    }

    private static long firstNonZero(MemorySegment s) {
        for (long off = 0; off < s.byteSize(); off += ZEROES.byteSize()) {
            long n = Math.min(ZEROES.byteSize(), s.byteSize() - off);
            long i = MemorySegment.mismatch(s, off, off + n, ZEROES, 0, n);
            if (i >= 0) return off + i;
        }
        return -1;
    }

    /** All zeroes again, and no page backed: the kernel drops the pages. */
    private static void drop(GuestMemory m) {
        for (MemoryRegion r : m.regions()) Libc.madvise(r.host(), Libc.MADV_DONTNEED);
    }

    // ---- little-endian helpers for the builders

    static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }
}
