package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.boot.E820;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.x86.EntryState;
import dev.jvmm.kvm.gen.boot_e820_entry;
import dev.jvmm.kvm.gen.boot_params;
import dev.jvmm.kvm.gen.setup_header;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Linux kernels by the x86 boot protocol (Documentation/arch/x86/boot.rst): a bzImage, either decompressed on
 * the host and entered at its vmlinux's 64-bit entry (the default: it skips the guest's own decompressor)
 * or through the kernel's decompressor; an uncompressed vmlinux at its 64-bit entry, or at its PVH entry.
 */
public final class LinuxLoader {
    static final int MIN_PROTOCOL = 0x0206;
    private static final int SETUP_HEADER_OFFSET = 0x1f1;
    /** The 64-bit entry of the kernel's decompressor (startup_64), from the start of the protected-mode code. */
    private static final int STARTUP_64 = 0x200;
    /** The end of the last header field this loader reads (init_size, protocol 2.10). */
    private static final int HEADER_FIELDS_END = 0x264;

    private static final int LOADED_HIGH = 0x01, CAN_USE_HEAP = 0x80;
    private static final int XLF_KERNEL_64 = 0x01;
    private static final int XEN_ELFNOTE_PHYS32_ENTRY = 18;
    private static final int DEFAULT_CMDLINE_SIZE = 2048; // COMMAND_LINE_SIZE before protocol 2.06 told us
    private static final long DEFAULT_INITRD_ADDR_MAX = 0x37ffffffL;

    private LinuxLoader() {}

    static boolean isBzImage(byte[] image) {
        if (image.length < 0x264) return false;
        ByteBuffer b = le(image);
        return (b.getShort(0x1fe) & 0xffff) == 0xaa55 && b.getInt(0x202) == 0x53726448; // "HdrS"
    }

    private static ByteBuffer le(byte[] image) {
        return ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The setup header's fields a loader reads. */
    record SetupHeader(
            int version,
            int setupSects,
            int loadflags,
            int xloadflags,
            long initrdAddrMax,
            int cmdlineSize,
            long payloadOffset,
            long payloadLength,
            long kernelAlignment,
            long prefAddress,
            long initSize,
            int headerEnd) {
        static SetupHeader parse(byte[] image) {
            ByteBuffer b = le(image);
            int version = b.getShort(0x206) & 0xffff;
            if (version < MIN_PROTOCOL)
                throw new BootException(
                        Kind.UNSUPPORTED_PROTOCOL,
                        String.format(
                                "this kernel speaks boot protocol %d.%02d; jvmm needs 2.06 or newer (Linux 2.6.22+)",
                                version >> 8, version & 0xff));
            int setupSects = image[0x1f1] & 0xff;
            if (setupSects == 0) setupSects = 4;
            return new SetupHeader(
                    version,
                    setupSects,
                    image[0x211] & 0xff,
                    b.getShort(0x236) & 0xffff,
                    b.getInt(0x22c) & 0xffffffffL,
                    b.getInt(0x238),
                    b.getInt(0x248) & 0xffffffffL,
                    b.getInt(0x24c) & 0xffffffffL,
                    b.getInt(0x230) & 0xffffffffL,
                    b.getLong(0x258),
                    b.getInt(0x260) & 0xffffffffL,
                    0x202 + (image[0x201] & 0xff));
        }

        int protectedModeOffset() {
            return (setupSects + 1) * 512;
        }
    }

    static LoadedKernel loadBzImage(
            GuestMemory memory, byte[] image, byte[] initrd, String cmdline, KernelLoader.BootPath path) {
        SetupHeader h = SetupHeader.parse(image);
        if ((h.loadflags() & LOADED_HIGH) == 0)
            throw new BootException(
                    Kind.UNSUPPORTED_PROTOCOL, "this kernel is a zImage (loads low); jvmm boots bzImages");
        if ((h.xloadflags() & XLF_KERNEL_64) == 0)
            throw new BootException(
                    Kind.NOT_X86_64,
                    "this kernel has no 64-bit entry point (XLF_KERNEL_64): jvmm boots x86-64 kernels");
        // The header ends where its jump says (0x202 + the byte at 0x201), and only that much is the kernel's
        // header in the zero page: one that ends before the fields read here (up to init_size) is inconsistent.
        if (h.headerEnd() < HEADER_FIELDS_END)
            throw new BootException(
                    Kind.MALFORMED_KERNEL,
                    String.format(
                            "this bzImage's setup header ends at 0x%x, before the fields of its protocol %s (to 0x%x)",
                            h.headerEnd(), version(h), HEADER_FIELDS_END));
        int pmOffset = h.protectedModeOffset();
        if (pmOffset >= image.length)
            throw new BootException(
                    Kind.TRUNCATED, "bzImage is truncated: its setup code runs past the end of the file");
        if (path == KernelLoader.BootPath.PVH)
            throw new BootException(
                    Kind.BOOT_PATH_UNSUPPORTED,
                    "--boot-path=pvh needs an uncompressed vmlinux with a PVH note, not a bzImage");

        if (path == KernelLoader.BootPath.DECOMPRESSOR) {
            long load = BootLayout.HIGH_LOAD;
            long pmSize = image.length - pmOffset;
            if (pmSize <= STARTUP_64)
                throw new BootException(
                        Kind.TRUNCATED,
                        "bzImage is truncated: its protected-mode code (" + pmSize
                                + " bytes) ends before its 64-bit entry at +0x200");
            long needed = Math.max(pmSize, h.initSize());
            if (!memory.isValid(load, needed))
                throw new BootException(
                        Kind.KERNEL_DOES_NOT_FIT,
                        "the kernel needs " + (needed >> 20)
                                + " MiB from 1 MiB up to decompress itself; give the guest more --memory");
            memory.write(load, image, pmOffset, (int) pmSize);
            long end = load + needed;
            writeZeroPage(memory, image, h, cmdline, initrd, end, load);
            EntryState entry = EntryState.longMode(load + STARTUP_64).withRsi(BootLayout.ZERO_PAGE);
            return new LoadedKernel(entry, "Linux bzImage, protocol " + version(h) + ", through its decompressor", end);
        }

        if (h.version() < 0x0208 || h.payloadLength() == 0)
            throw new BootException(
                    Kind.BOOT_PATH_UNSUPPORTED,
                    "this kernel's header does not locate its payload (protocol < 2.08);"
                            + " boot it with --boot-path=decompressor");
        long start = pmOffset + h.payloadOffset();
        if (start + h.payloadLength() > image.length)
            throw new BootException(
                    Kind.TRUNCATED, "bzImage is truncated: its compressed payload runs past the end of the file");
        byte[] payload = java.util.Arrays.copyOfRange(image, (int) start, (int) (start + h.payloadLength()));
        PayloadDecompressor.Format format = PayloadDecompressor.detect(payload);
        byte[] vmlinux = PayloadDecompressor.decompress(payload, memory.size());
        if (!Elf.isElf(vmlinux))
            throw new BootException(
                    Kind.BOOT_PATH_UNSUPPORTED,
                    "the bzImage's payload is not an ELF vmlinux (a relocs-only or non-x86 kernel?);"
                            + " boot it with --boot-path=decompressor");
        Elf elf = Elf.parse(vmlinux, "the bzImage's vmlinux");
        checkEntry(elf, elf.entry(), "64-bit entry point");
        long end = loadElf(memory, elf);
        writeZeroPage(memory, image, h, cmdline, initrd, end, -1);
        EntryState entry = EntryState.longMode(elf.entry()).withRsi(BootLayout.ZERO_PAGE);
        return new LoadedKernel(
                entry,
                "Linux bzImage, protocol " + version(h) + ", " + format.name().toLowerCase()
                        + " payload decompressed on the host, 64-bit entry",
                end);
    }

    static LoadedKernel loadVmlinux(
            GuestMemory memory, byte[] image, byte[] initrd, String cmdline, KernelLoader.BootPath path) {
        Elf elf = Elf.parse(image, "kernel");
        if (path == KernelLoader.BootPath.DECOMPRESSOR)
            throw new BootException(
                    Kind.BOOT_PATH_UNSUPPORTED, "--boot-path=decompressor needs a bzImage, not a vmlinux");
        long pvhEntry = -1;
        for (Elf.Note n : elf.notes())
            if (n.name().equals("Xen") && n.type() == XEN_ELFNOTE_PHYS32_ENTRY && n.desc().length >= 4)
                pvhEntry = n.desc().length >= 8
                        ? le(n.desc()).getLong(0)
                        : le(n.desc()).getInt(0) & 0xffffffffL;
        // As Firecracker and Cloud Hypervisor do: a vmlinux that offers the PVH entry is entered there.
        boolean pvh = path == KernelLoader.BootPath.PVH || (path == KernelLoader.BootPath.AUTO && pvhEntry >= 0);
        if (path == KernelLoader.BootPath.PVH && pvhEntry < 0)
            throw new BootException(
                    Kind.BOOT_PATH_UNSUPPORTED, "this vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
        if (!pvh && (!elf.is64() || elf.machine() != 62))
            throw new BootException(
                    Kind.NOT_X86_64, "this ELF kernel is not an x86-64 vmlinux (and has no multiboot header)");
        checkEntry(elf, pvh ? pvhEntry : elf.entry(), pvh ? "PVH entry point" : "64-bit entry point");
        long end = loadElf(memory, elf);
        if (pvh) {
            long startInfo = PvhStartInfo.write(memory, cmdline, initrd, end);
            return new LoadedKernel(
                    EntryState.protectedMode(pvhEntry).withRbx(startInfo), "Linux vmlinux, PVH entry", end);
        }
        writeZeroPage(memory, null, null, cmdline, initrd, end, -1);
        return new LoadedKernel(
                EntryState.longMode(elf.entry()).withRsi(BootLayout.ZERO_PAGE), "Linux vmlinux, 64-bit entry", end);
    }

    /** An entry point outside every PT_LOAD segment would run whatever lies in RAM there: refused, as GRUB does. */
    static void checkEntry(Elf elf, long entry, String what) {
        for (Elf.Segment s : elf.loadSegments()) if (Long.compareUnsigned(entry - s.paddr(), s.memSize()) < 0) return;
        throw new BootException(
                Kind.MALFORMED_KERNEL,
                String.format("the kernel's %s 0x%x lies outside the segments it loads", what, entry));
    }

    /** Loads PT_LOAD segments at their physical addresses; returns the end of the highest one. */
    static long loadElf(GuestMemory memory, Elf elf) {
        long end = 0;
        for (Elf.Segment s : elf.loadSegments()) {
            checkPlacement(memory, s.paddr(), s.memSize(), "the kernel");
            memory.write(s.paddr(), elf.image(), (int) s.offset(), (int) s.fileSize());
            memory.fill(s.paddr() + s.fileSize(), s.memSize() - s.fileSize(), (byte) 0);
            end = Math.max(end, s.paddr() + s.memSize());
        }
        return end;
    }

    /**
     * Where a kernel (or a part of it) may be placed: in RAM the e820 map gives the guest, above jvmm's boot data,
     * below 4 GiB (the most either entry mode reaches). {@code what} names the kernel in the messages.
     */
    static void checkPlacement(GuestMemory memory, long address, long length, String what) {
        if (address < BootLayout.BOOT_INFO_END)
            throw new BootException(
                    Kind.RESERVED_LOAD_ADDRESS,
                    String.format("%s wants to load at 0x%x, below 256 KiB where jvmm keeps boot data", what, address));
        if (!memory.isValid(address, Math.max(1, length)))
            throw new BootException(
                    Kind.KERNEL_DOES_NOT_FIT,
                    String.format(
                            "%s loads at 0x%x-0x%x, beyond guest RAM; give the guest more --memory",
                            what, address, address + length));
        if (length > BootLayout.ENTRY_REACH - address)
            throw new BootException(
                    Kind.UNSUPPORTED_PROTOCOL,
                    String.format(
                            "%s loads at 0x%x-0x%x, above 4 GiB, out of its entry's reach (32-bit, or 64-bit with"
                                    + " the first 4 GiB mapped); link it below 4 GiB",
                            what, address, address + length));
        // The MP table, the VGA hole and the ACPI tables lie between 640 KiB and 1 MiB: not the kernel's.
        if (!E820.isRam(memory, address, Math.max(1, length)))
            throw new BootException(
                    Kind.RESERVED_LOAD_ADDRESS,
                    String.format(
                            "%s loads at 0x%x-0x%x, which the memory map does not give the guest as RAM"
                                    + " (jvmm keeps its MP and ACPI tables between 640 KiB and 1 MiB)",
                            what, address, address + length));
    }

    private static String version(SetupHeader h) {
        return (h.version() >> 8) + "." + String.format("%02d", h.version() & 0xff);
    }

    /**
     * Fills struct boot_params: the image's setup header (or a minimal one for a bare vmlinux), loader type,
     * command line, initrd and e820 map.
     */
    static void writeZeroPage(
            GuestMemory memory,
            byte[] image,
            SetupHeader h,
            String cmdline,
            byte[] initrd,
            long kernelEnd,
            long code32Start) {
        MemorySegment zp = memory.slice(BootLayout.ZERO_PAGE, boot_params.sizeof());
        zp.fill((byte) 0);
        MemorySegment hdr = boot_params.hdr(zp);
        if (image != null) {
            int len = Math.min(h.headerEnd(), image.length) - SETUP_HEADER_OFFSET;
            MemorySegment.copy(MemorySegment.ofArray(image), SETUP_HEADER_OFFSET, zp, SETUP_HEADER_OFFSET, len);
            // Fields the boot loader writes: what the image has there (zeroes, in a kernel) does not pass as jvmm's
            // word, or the kernel would take an initrd or a setup_data list from wherever they point.
            setup_header.ramdisk_image(hdr, 0);
            setup_header.ramdisk_size(hdr, 0);
            setup_header.setup_data(hdr, 0L);
        } else {
            setup_header.boot_flag(hdr, (short) 0xaa55);
            setup_header.header(hdr, 0x53726448);
            setup_header.version(hdr, (short) 0x020f);
            setup_header.kernel_alignment(hdr, 0x1000000);
        }
        setup_header.type_of_loader(hdr, (byte) 0xff); // an unregistered boot loader
        byte flags = setup_header.loadflags(hdr);
        setup_header.loadflags(hdr, (byte) (flags | CAN_USE_HEAP | (image != null ? 0 : LOADED_HIGH)));
        setup_header.heap_end_ptr(hdr, (short) 0xfe00);
        if (code32Start >= 0) setup_header.code32_start(hdr, (int) code32Start);
        setup_header.vid_mode(hdr, (short) 0xffff); // "normal" text mode; there is no display to ask about

        int cmdlineMax = h != null && h.cmdlineSize() > 0 ? h.cmdlineSize() : DEFAULT_CMDLINE_SIZE;
        byte[] cmd = cmdline.getBytes(StandardCharsets.US_ASCII);
        if (cmd.length > Math.min(cmdlineMax, BootLayout.CMDLINE_MAX - 1))
            throw new BootException(
                    Kind.CMDLINE_TOO_LONG,
                    cmdlineMax < BootLayout.CMDLINE_MAX
                            ? "the command line is " + cmd.length + " bytes; this kernel accepts at most " + cmdlineMax
                            : "the command line is " + cmd.length + " bytes; at most " + (BootLayout.CMDLINE_MAX - 1)
                                    + " fit");
        memory.write(BootLayout.CMDLINE, cmd);
        memory.writeByte(BootLayout.CMDLINE + cmd.length, (byte) 0);
        setup_header.cmd_line_ptr(hdr, (int) BootLayout.CMDLINE);
        setup_header.cmdline_size(hdr, cmdlineMax);

        if (initrd != null) {
            long max = h != null && h.initrdAddrMax() != 0 ? h.initrdAddrMax() : DEFAULT_INITRD_ADDR_MAX;
            long at = placeInitrd(memory, initrd.length, kernelEnd, max);
            memory.write(at, initrd);
            setup_header.ramdisk_image(hdr, (int) at);
            setup_header.ramdisk_size(hdr, initrd.length);
        }

        List<E820.Entry> map = E820.of(memory);
        if (map.size() > 128) throw new IllegalStateException("more e820 entries than the zero page holds");
        for (int i = 0; i < map.size(); i++) {
            MemorySegment e = boot_params.e820_table(zp, i);
            boot_e820_entry.addr(e, map.get(i).address());
            boot_e820_entry.size(e, map.get(i).size());
            boot_e820_entry.type(e, map.get(i).type());
        }
        boot_params.e820_entries(zp, (byte) map.size());
    }

    /** The highest page-aligned place for the initrd that is RAM, below max, and above the kernel. */
    static long placeInitrd(GuestMemory memory, long size, long kernelEnd, long max) {
        long best = -1;
        long room = Math.max(1, size); // an empty initrd too starts at or below max, never at max + 1 (4 GiB: 0)
        for (E820.Entry e : E820.of(memory)) {
            if (e.type() != E820.RAM) continue;
            long top = Math.min(e.end(), max + 1);
            long at = (top - room) & ~0xfffL;
            if (at >= Math.max(e.address(), (kernelEnd + 0xfff) & ~0xfffL) && at + room <= top)
                best = Math.max(best, at);
        }
        if (best < 0)
            throw new BootException(
                    Kind.INITRD_DOES_NOT_FIT,
                    String.format(
                            "the initrd (%d MiB) does not fit in guest RAM above the kernel and below 0x%x;"
                                    + " give the guest more --memory",
                            size >> 20, max));
        return best;
    }
}
