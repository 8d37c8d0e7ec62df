package dev.jvmm.boot.loader;

/**
 * Where jvmm places boot data in low guest RAM. Below 0x10000 the x86 setup writes its GDT (0x500) and
 * long-mode page tables (0x9000-0xefff); see dev.jvmm.core.x86.X86Cpu.
 */
public final class BootLayout {
    /** Linux's zero page (struct boot_params). */
    public static final long ZERO_PAGE = 0x7000;
    /** The kernel command line (up to 64 KiB). */
    public static final long CMDLINE = 0x20000;

    public static final int CMDLINE_MAX = 0x10000;
    /** Multiboot info, its memory map and module list; PVH start info likewise. */
    public static final long BOOT_INFO = 0x30000;

    public static final long BOOT_INFO_END = 0x40000;
    /** Where a protected-mode kernel (bzImage payload, multiboot default) is loaded. */
    public static final long HIGH_LOAD = 0x100000;

    /**
     * The first 4 GiB: all a 32-bit entry (PVH, multiboot) addresses and all the identity page tables of a long-mode
     * entry map (dev.jvmm.core.x86.X86Cpu), so a kernel must lie below.
     */
    public static final long ENTRY_REACH = 1L << 32;

    private BootLayout() {}
}
