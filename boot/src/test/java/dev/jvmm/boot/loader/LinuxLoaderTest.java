package dev.jvmm.boot.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.x86.EntryState;
import dev.jvmm.kvm.gen.boot_params;
import dev.jvmm.kvm.gen.setup_header;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bzImage protocol against a synthetic kernel: setup header, gzip payload holding a tiny ELF64 vmlinux. */
class LinuxLoaderTest {
    @TempDir
    Path dir;

    private static final long VMLINUX_LOAD = 0x1000000, VMLINUX_ENTRY = 0x1000040;

    /** A minimal x86-64 ELF with one PT_LOAD of 0x100 bytes (0xcc) at 16 MiB and 0x1000 of bss. */
    static byte[] tinyVmlinux() {
        ByteBuffer b = ByteBuffer.allocate(0x200).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {0x7f, 'E', 'L', 'F', 2, 1, 1});
        b.putShort(16, (short) 2)
                .putShort(18, (short) 62)
                .putInt(20, 1)
                .putLong(24, VMLINUX_ENTRY)
                .putLong(32, 64);
        b.putShort(52, (short) 64).putShort(54, (short) 56).putShort(56, (short) 1);
        b.putInt(64, 1)
                .putInt(68, 7)
                .putLong(72, 0x100)
                .putLong(80, 0xffffffff81000000L)
                .putLong(88, VMLINUX_LOAD)
                .putLong(96, 0x100)
                .putLong(104, 0x1100);
        for (int i = 0x100; i < 0x200; i++) b.put(i, (byte) 0xcc);
        return b.array();
    }

    static byte[] bzImage(int version, int cmdlineSize, int xloadflags) throws IOException {
        ByteArrayOutputStream gz = new ByteArrayOutputStream();
        try (GZIPOutputStream o = new GZIPOutputStream(gz)) {
            o.write(tinyVmlinux());
        }
        gz.writeBytes(ByteBuffer.allocate(4)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(tinyVmlinux().length)
                .array());
        byte[] payload = gz.toByteArray();
        int setupSects = 4;
        int pmOffset = (setupSects + 1) * 512;
        ByteBuffer b = ByteBuffer.allocate(pmOffset + 0x300 + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(0x1f1, (byte) setupSects);
        b.putShort(0x1fe, (short) 0xaa55);
        b.put(0x201, (byte) 0x66); // jump: header runs to 0x268
        b.putInt(0x202, 0x53726448);
        b.putShort(0x206, (short) version);
        b.put(0x211, (byte) 1); // LOADED_HIGH
        b.putInt(0x22c, 0x7fffffff); // initrd_addr_max
        b.putInt(0x230, 0x200000);
        b.putShort(0x236, (short) xloadflags);
        b.putInt(0x238, cmdlineSize);
        b.putInt(0x248, 0x300); // payload_offset from the protected-mode code
        b.putInt(0x24c, payload.length);
        b.putLong(0x258, 0x1000000);
        b.putInt(0x260, 0x2000000);
        b.put(pmOffset + 0x300, payload);
        return b.array();
    }

    private static GuestMemory ram() {
        return GuestMemory.allocate(List.of(new GuestMemory.Layout(0, 64 << 20)), GuestMemory.Options.DEFAULT);
    }

    private LoadedKernel load(GuestMemory m, byte[] image, byte[] initrd, String cmdline, KernelLoader.BootPath path)
            throws IOException {
        Path k = Files.write(dir.resolve("bzImage"), image);
        Optional<Path> i = initrd == null ? Optional.empty() : Optional.of(Files.write(dir.resolve("initrd"), initrd));
        return KernelLoader.load(m, new KernelLoader.Request(k, i, cmdline, path));
    }

    @Test
    void hostDecompressionLoadsTheVmlinuxAndFillsTheZeroPage() throws Exception {
        byte[] initrd = new byte[3 << 20];
        initrd[0] = 42;
        try (GuestMemory m = ram()) {
            LoadedKernel k =
                    load(m, bzImage(0x020f, 2048, 1), initrd, "console=ttyS0 quiet", KernelLoader.BootPath.AUTO);
            EntryState e = k.entry();
            assertEquals(EntryState.Mode.LONG, e.mode());
            assertEquals(VMLINUX_ENTRY, e.ip());
            assertEquals(BootLayout.ZERO_PAGE, e.rsi());
            assertEquals((byte) 0xcc, m.readByte(VMLINUX_LOAD));
            assertEquals(0, m.readByte(VMLINUX_LOAD + 0x100), "bss zeroed");
            assertTrue(k.description().contains("gzip payload decompressed on the host"), k.description());

            MemorySegment zp = m.slice(BootLayout.ZERO_PAGE, boot_params.sizeof());
            MemorySegment hdr = boot_params.hdr(zp);
            assertEquals(0x53726448, setup_header.header(hdr), "the image's header was copied");
            assertEquals((byte) 0xff, setup_header.type_of_loader(hdr));
            assertEquals((int) BootLayout.CMDLINE, setup_header.cmd_line_ptr(hdr));
            assertEquals("console=ttyS0 quiet", MultibootLoaderTest.cString(m, BootLayout.CMDLINE));
            long ramdisk = setup_header.ramdisk_image(hdr) & 0xffffffffL;
            assertEquals(initrd.length, setup_header.ramdisk_size(hdr));
            assertEquals(0, ramdisk & 0xfff, "page-aligned");
            assertTrue(ramdisk >= VMLINUX_LOAD + 0x1100, "above the kernel");
            assertEquals((64 << 20) - initrd.length, ramdisk, "as high as RAM allows");
            assertEquals(42, m.readByte(ramdisk));
            assertEquals(4, boot_params.e820_entries(zp), "base RAM, the MP table's KiB, the ACPI area, high RAM");
        }
    }

    @Test
    void decompressorPathLoadsTheProtectedModeCodeAtOneMib() throws Exception {
        byte[] image = bzImage(0x020f, 2048, 1);
        try (GuestMemory m = ram()) {
            LoadedKernel k = load(m, image, null, "", KernelLoader.BootPath.DECOMPRESSOR);
            assertEquals(0x100200, k.entry().ip(), "the 64-bit entry is 0x200 past the load address");
            assertEquals(image[5 * 512], m.readByte(0x100000));
            MemorySegment hdr = boot_params.hdr(m.slice(BootLayout.ZERO_PAGE, boot_params.sizeof()));
            assertEquals(0x100000, setup_header.code32_start(hdr));
        }
    }

    @Test
    void aCommandLineLongerThanTheKernelAcceptsIsRefused() throws Exception {
        try (GuestMemory m = ram()) {
            BootException e = assertThrows(
                    BootException.class,
                    () -> load(
                            m, bzImage(0x020f, 16, 1), null, "console=ttyS0 loglevel=8", KernelLoader.BootPath.AUTO));
            assertEquals(Kind.CMDLINE_TOO_LONG, e.kind(), e.getMessage());
            assertEquals(
                    "the command line is 24 bytes; this kernel accepts at most 16",
                    e.getMessage(),
                    "the message names both values");
        }
    }

    @Test
    void oldProtocolsAnd32BitOnlyKernelsAreRefused() throws Exception {
        try (GuestMemory m = ram()) {
            BootException old = assertThrows(
                    BootException.class, () -> load(m, bzImage(0x0204, 256, 1), null, "", KernelLoader.BootPath.AUTO));
            assertEquals(Kind.UNSUPPORTED_PROTOCOL, old.kind(), old.getMessage());
            BootException i386 = assertThrows(
                    BootException.class, () -> load(m, bzImage(0x020f, 256, 0), null, "", KernelLoader.BootPath.AUTO));
            assertEquals(Kind.NOT_X86_64, i386.kind(), i386.getMessage());
        }
    }

    @Test
    void aTruncatedImageIsRefused() throws Exception {
        byte[] image = bzImage(0x020f, 2048, 1);
        byte[] cut = java.util.Arrays.copyOf(image, image.length - 40);
        try (GuestMemory m = ram()) {
            BootException e =
                    assertThrows(BootException.class, () -> load(m, cut, null, "", KernelLoader.BootPath.AUTO));
            assertEquals(Kind.TRUNCATED, e.kind(), e.getMessage());
        }
    }

    @Test
    void anInitrdThatDoesNotFitIsRefused() throws Exception {
        try (GuestMemory m = ram()) {
            BootException e = assertThrows(
                    BootException.class,
                    () -> load(m, bzImage(0x020f, 2048, 1), new byte[60 << 20], "", KernelLoader.BootPath.AUTO));
            assertEquals(Kind.INITRD_DOES_NOT_FIT, e.kind(), e.getMessage());
        }
    }
}
