package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.boot.E820;
import dev.jvmm.core.memory.GuestMemory;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** Xen's hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1, for the PVH entry. */
final class PvhStartInfo {
    static final int MAGIC = 0x336ec578;

    private PvhStartInfo() {}

    /** Writes the start info, memory map, command line and module; returns the start info's address. */
    static long write(GuestMemory memory, String cmdline, byte[] initrd, long kernelEnd) {
        long info = BootLayout.BOOT_INFO;
        long memmap = info + 0x40;
        List<E820.Entry> map = E820.of(memory);
        long modlist = memmap + 24L * map.size();
        memory.fill(info, BootLayout.BOOT_INFO_END - info, (byte) 0);
        memory.writeInt(info, MAGIC);
        memory.writeInt(info + 4, 1); // version 1: has the memory map
        byte[] cmd = cmdline.getBytes(StandardCharsets.US_ASCII);
        if (cmd.length >= BootLayout.CMDLINE_MAX)
            throw new BootException(
                    Kind.CMDLINE_TOO_LONG,
                    "the command line is " + cmd.length + " bytes; at most " + (BootLayout.CMDLINE_MAX - 1) + " fit");
        memory.write(BootLayout.CMDLINE, cmd);
        memory.writeByte(BootLayout.CMDLINE + cmd.length, (byte) 0);
        memory.writeLong(info + 24, BootLayout.CMDLINE);
        long p = memmap;
        for (E820.Entry e : map) {
            memory.writeLong(p, e.address());
            memory.writeLong(p + 8, e.size());
            memory.writeInt(p + 16, e.type());
            p += 24;
        }
        memory.writeLong(info + 40, memmap);
        memory.writeInt(info + 48, map.size());
        if (initrd != null) {
            long at = LinuxLoader.placeInitrd(memory, initrd.length, kernelEnd, 0xffffffffL);
            memory.write(at, initrd);
            memory.writeLong(modlist, at);
            memory.writeLong(modlist + 8, initrd.length);
            memory.writeInt(info + 12, 1);
            memory.writeLong(info + 16, modlist);
        }
        return info;
    }
}
