package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.boot.E820;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.x86.EntryState;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;

/**
 * Multiboot (v1) kernels, as QEMU's -kernel loads them: ELF kernels by their program headers, others by the
 * header's address fields (the "a.out kludge"). The kernel is entered in 32-bit protected mode with
 * EAX = 0x2BADB002 and EBX = the multiboot info, which carries the memory map, command line and the initrd
 * as a module.
 */
public final class MultibootLoader {
    static final int HEADER_MAGIC = 0x1BADB002;
    public static final int BOOTLOADER_MAGIC = 0x2BADB002;
    private static final int SEARCH_LIMIT = 8192;
    private static final int FLAG_PAGE_ALIGN = 1, FLAG_MEMORY_INFO = 2, FLAG_VIDEO = 4, FLAG_ADDRESSES = 0x10000;
    private static final int INFO_MEMORY = 1,
            INFO_CMDLINE = 1 << 2,
            INFO_MODS = 1 << 3,
            INFO_MMAP = 1 << 6,
            INFO_LOADER_NAME = 1 << 9;

    /** The header: its offset in the file and the fields that follow the magic. */
    record Header(
            int offset, int flags, long headerAddr, long loadAddr, long loadEndAddr, long bssEndAddr, long entryAddr) {}

    private MultibootLoader() {}

    static Optional<Header> findHeader(byte[] image) {
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        int limit = Math.min(image.length - 12, SEARCH_LIMIT - 12);
        for (int off = 0; off <= limit; off += 4) {
            if (b.getInt(off) != HEADER_MAGIC) continue;
            int flags = b.getInt(off + 4);
            if (HEADER_MAGIC + flags + b.getInt(off + 8) != 0) continue;
            if ((flags & FLAG_ADDRESSES) != 0 && off + 32 <= image.length)
                return Optional.of(new Header(
                        off,
                        flags,
                        u32(b, off + 12),
                        u32(b, off + 16),
                        u32(b, off + 20),
                        u32(b, off + 24),
                        u32(b, off + 28)));
            return Optional.of(new Header(off, flags, 0, 0, 0, 0, 0));
        }
        return Optional.empty();
    }

    private static long u32(ByteBuffer b, int at) {
        return b.getInt(at) & 0xffffffffL;
    }

    static LoadedKernel load(GuestMemory memory, byte[] image, byte[] initrd, String cmdline) {
        Header h = findHeader(image).orElseThrow();
        if ((h.flags() & 0xfff8) != 0)
            throw new BootException(
                    Kind.UNSUPPORTED_PROTOCOL,
                    String.format("multiboot kernel asks for unsupported features (header flags 0x%x)", h.flags()));
        long entry, kernelEnd;
        String how;
        if ((h.flags() & FLAG_ADDRESSES) != 0) {
            // a.out kludge: the file from the header back to load_addr is the image.
            long fileStart = h.offset() - (h.headerAddr() - h.loadAddr());
            if (h.headerAddr() < h.loadAddr() || fileStart < 0 || fileStart > image.length)
                throw new BootException(Kind.TRUNCATED, "multiboot header's load address lies outside the file");
            long loadLength = h.loadEndAddr() == 0 ? image.length - fileStart : h.loadEndAddr() - h.loadAddr();
            if (loadLength < 0 || fileStart + loadLength > image.length)
                throw new BootException(Kind.TRUNCATED, "multiboot header's load range lies outside the file");
            long end = Math.max(h.loadAddr() + loadLength, h.bssEndAddr());
            LinuxLoader.checkPlacement(memory, h.loadAddr(), end - h.loadAddr(), "multiboot kernel");
            if (h.entryAddr() < h.loadAddr() || h.entryAddr() >= end)
                throw new BootException(
                        Kind.MALFORMED_KERNEL,
                        String.format(
                                "multiboot header's entry address 0x%x lies outside the kernel it loads (0x%x-0x%x)",
                                h.entryAddr(), h.loadAddr(), end));
            memory.write(h.loadAddr(), image, (int) fileStart, (int) loadLength);
            memory.fill(h.loadAddr() + loadLength, end - h.loadAddr() - loadLength, (byte) 0);
            entry = h.entryAddr();
            kernelEnd = end;
            how = "multiboot kernel (a.out kludge)";
        } else {
            Elf elf = Elf.parse(image, "multiboot kernel");
            entry = elfEntry(elf);
            kernelEnd = 0;
            for (Elf.Segment s : elf.loadSegments()) {
                LinuxLoader.checkPlacement(memory, s.paddr(), s.memSize(), "multiboot kernel");
                memory.write(s.paddr(), image, (int) s.offset(), (int) s.fileSize());
                memory.fill(s.paddr() + s.fileSize(), s.memSize() - s.fileSize(), (byte) 0);
                kernelEnd = Math.max(kernelEnd, s.paddr() + s.memSize());
            }
            how = "multiboot kernel (ELF" + (elf.is64() ? "64" : "32") + ")";
        }
        if ((h.flags() & FLAG_VIDEO) != 0)
            org.slf4j.LoggerFactory.getLogger(MultibootLoader.class)
                    .warn("multiboot kernel asks for a video mode; jvmm has no display and ignores it");
        long info = writeInfo(memory, initrd, cmdline, kernelEnd);
        EntryState state =
                EntryState.protectedMode(entry).withRax(BOOTLOADER_MAGIC).withRbx(info);
        return new LoadedKernel(state, how, kernelEnd);
    }

    /**
     * The physical entry point: e_entry if it lies in a segment as loaded, else (as GRUB does for a kernel linked
     * at a virtual address) e_entry translated from the segment whose virtual range holds it; refused otherwise.
     */
    private static long elfEntry(Elf elf) {
        long entry = elf.entry();
        for (Elf.Segment s : elf.loadSegments())
            if (Long.compareUnsigned(entry - s.paddr(), s.memSize()) < 0) return entry;
        for (Elf.Segment s : elf.loadSegments())
            if (Long.compareUnsigned(entry - s.vaddr(), s.memSize()) < 0) return entry - s.vaddr() + s.paddr();
        throw new BootException(
                Kind.MALFORMED_KERNEL,
                String.format("multiboot kernel's entry point 0x%x lies outside the segments it loads", entry));
    }

    /**
     * The first page-aligned place after the kernel that is RAM in the e820 map and ends below 4 GiB (the module
     * list holds 32-bit addresses): right after the kernel unless that runs into the MP and ACPI tables below 1 MiB.
     */
    private static long placeModule(GuestMemory memory, long size, long kernelEnd) {
        for (E820.Entry e : E820.of(memory)) {
            if (e.type() != E820.RAM) continue;
            long at = (Math.max(e.address(), kernelEnd) + 0xfff) & ~0xfffL;
            if (at <= e.end() - size && at + size <= 0xffffffffL) return at;
        }
        throw new BootException(
                Kind.INITRD_DOES_NOT_FIT,
                "initrd of " + size + " bytes does not fit after the kernel; give the guest more --memory");
    }

    /** Writes the multiboot info, memory map, command line and module list; returns the info's address. */
    private static long writeInfo(GuestMemory memory, byte[] initrd, String cmdline, long kernelEnd) {
        List<E820.Entry> map = E820.of(memory);
        long info = BootLayout.BOOT_INFO;
        long mmap = info + 0x100;
        long mods = mmap + 24L * map.size() + 0x10;
        long strings = mods + 0x20;
        memory.fill(info, BootLayout.BOOT_INFO_END - info, (byte) 0);

        int flags = INFO_MEMORY | INFO_MMAP | INFO_CMDLINE | INFO_LOADER_NAME | INFO_MODS;
        long lowKiB = 0, highKiB = 0;
        for (E820.Entry e : map) {
            if (e.type() != E820.RAM) continue;
            if (e.address() == 0) lowKiB = e.size() / 1024;
            if (e.address() == E820.HIGH_MEMORY_START) highKiB = e.size() / 1024;
        }
        memory.writeInt(info, flags);
        memory.writeInt(info + 4, (int) lowKiB);
        memory.writeInt(info + 8, (int) Math.min(highKiB, 0xffffffffL));
        long p = mmap;
        for (E820.Entry e : map) {
            memory.writeInt(p, 20); // size of the rest of the entry
            memory.writeLong(p + 4, e.address());
            memory.writeLong(p + 12, e.size());
            memory.writeInt(p + 20, e.type());
            p += 24;
        }
        memory.writeInt(info + 44, (int) (p - mmap));
        memory.writeInt(info + 48, (int) mmap);

        byte[] cmd = (cmdline + "\0").getBytes(StandardCharsets.US_ASCII);
        if (cmd.length > BootLayout.CMDLINE_MAX)
            throw new BootException(
                    Kind.CMDLINE_TOO_LONG,
                    "command line is " + (cmd.length - 1) + " bytes; at most " + (BootLayout.CMDLINE_MAX - 1) + " fit");
        memory.write(BootLayout.CMDLINE, cmd);
        memory.writeInt(info + 16, (int) BootLayout.CMDLINE);
        byte[] name = "jvmm\0".getBytes(StandardCharsets.US_ASCII);
        memory.write(strings, name);
        memory.writeInt(info + 64, (int) strings);

        if (initrd != null) {
            long start = placeModule(memory, initrd.length, kernelEnd);
            memory.write(start, initrd);
            memory.writeInt(mods, (int) start);
            memory.writeInt(mods + 4, (int) (start + initrd.length));
            memory.writeInt(mods + 8, (int) strings); // module string: the loader's name stands in for a path
            memory.writeInt(info + 20, 1);
            memory.writeInt(info + 24, (int) mods);
        }
        return info;
    }
}
