package dev.jvmm.core.x86;

import dev.jvmm.core.Vcpu;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.kvm.gen.kvm_dtable;
import dev.jvmm.kvm.gen.kvm_fpu;
import dev.jvmm.kvm.gen.kvm_regs;
import dev.jvmm.kvm.gen.kvm_segment;
import dev.jvmm.kvm.gen.kvm_sregs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Puts a vCPU into the state an {@link EntryState} describes. For protected and long mode it writes a GDT
 * (and for long mode identity page tables) into low guest RAM at the fixed addresses below, the layout
 * Firecracker and most boot protocols expect to be free.
 */
public final class X86Cpu {
    public static final long GDT_ADDR = 0x500;
    public static final long PML4_ADDR = 0x9000;
    public static final long PDPT_ADDR = 0xa000;
    /** Four page directories of 2 MiB pages map the first 4 GiB. */
    public static final long PD_ADDR = 0xb000;
    /** The end of the low pages this setup writes; guests place nothing below it. */
    public static final long SETUP_END = PD_ADDR + 4 * 0x1000;

    public static final int CODE64_SELECTOR = 0x08;
    /** Linux's __BOOT_CS and __BOOT_DS are 0x10 and 0x18; multiboot kernels take any flat selectors. */
    public static final int CODE_SELECTOR = 0x10;

    public static final int DATA_SELECTOR = 0x18;
    public static final int TSS_SELECTOR = 0x20;

    static final long CR0_PE = 1, CR0_ET = 1 << 4, CR0_NE = 1 << 5, CR0_PG = 1L << 31;
    static final long CR4_PAE = 1 << 5;
    static final long EFER_LME = 1 << 8, EFER_LMA = 1 << 10;

    private X86Cpu() {}

    /** Applies entry state; the BSP and any AP started this way share the GDT and page tables. */
    public static void apply(Vcpu vcpu, GuestMemory memory, EntryState entry) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment sregs = kvm_sregs.allocate(arena);
            vcpu.getSregs(sregs);
            switch (entry.mode()) {
                case REAL -> {
                    MemorySegment cs = kvm_sregs.cs(sregs);
                    kvm_segment.selector(cs, (short) entry.realModeSegment());
                    kvm_segment.base(cs, (long) entry.realModeSegment() << 4);
                    for (MemorySegment s : dataSegments(sregs)) {
                        kvm_segment.selector(s, (short) entry.realModeSegment());
                        kvm_segment.base(s, (long) entry.realModeSegment() << 4);
                    }
                }
                case PROTECTED -> {
                    writeGdt(memory, false);
                    flatSegments(sregs, false);
                    kvm_sregs.cr0(sregs, CR0_PE | CR0_ET);
                }
                case LONG -> {
                    writeGdt(memory, true);
                    writeIdentityPageTables(memory);
                    flatSegments(sregs, true);
                    kvm_sregs.cr3(sregs, PML4_ADDR);
                    kvm_sregs.cr4(sregs, kvm_sregs.cr4(sregs) | CR4_PAE);
                    kvm_sregs.cr0(sregs, CR0_PE | CR0_ET | CR0_NE | CR0_PG);
                    kvm_sregs.efer(sregs, kvm_sregs.efer(sregs) | EFER_LME | EFER_LMA);
                }
            }
            vcpu.setSregs(sregs);

            MemorySegment regs = kvm_regs.allocate(arena);
            kvm_regs.rflags(regs, 2); // bit 1 is reserved and always set
            kvm_regs.rip(regs, entry.ip());
            kvm_regs.rsp(regs, entry.rsp());
            kvm_regs.rax(regs, entry.rax());
            kvm_regs.rbx(regs, entry.rbx());
            kvm_regs.rsi(regs, entry.rsi());
            vcpu.setRegs(regs);

            MemorySegment fpu = kvm_fpu.allocate(arena);
            kvm_fpu.fcw(fpu, (short) 0x37f); // x87 and SSE at their reset defaults
            kvm_fpu.mxcsr(fpu, 0x1f80);
            vcpu.setFpu(fpu);
        }
    }

    private static MemorySegment[] dataSegments(MemorySegment sregs) {
        return new MemorySegment[] {
            kvm_sregs.ds(sregs), kvm_sregs.es(sregs), kvm_sregs.fs(sregs), kvm_sregs.gs(sregs), kvm_sregs.ss(sregs)
        };
    }

    private static void flatSegments(MemorySegment sregs, boolean longMode) {
        MemorySegment cs = kvm_sregs.cs(sregs);
        segment(cs, CODE_SELECTOR, 0xb, longMode);
        for (MemorySegment s : dataSegments(sregs)) segment(s, DATA_SELECTOR, 0x3, false);
        MemorySegment tr = kvm_sregs.tr(sregs);
        kvm_segment.selector(tr, (short) TSS_SELECTOR);
        kvm_segment.base(tr, 0);
        kvm_segment.limit(tr, 0xfffff);
        kvm_segment.type(tr, (byte) 0xb); // busy 32/64-bit TSS
        kvm_segment.present(tr, (byte) 1);
        kvm_segment.s(tr, (byte) 0);
        kvm_segment.g(tr, (byte) 0);
        kvm_segment.db(tr, (byte) 0);
        kvm_segment.l(tr, (byte) 0);
        kvm_segment.unusable(tr, (byte) 0);
        setTable(kvm_sregs.gdt(sregs), GDT_ADDR, 5 * 8 - 1);
    }

    private static void setTable(MemorySegment table, long base, int limit) {
        kvm_dtable.base(table, base);
        kvm_dtable.limit(table, (short) limit);
    }

    private static void segment(MemorySegment s, int selector, int type, boolean longCode) {
        kvm_segment.selector(s, (short) selector);
        kvm_segment.base(s, 0);
        kvm_segment.limit(s, 0xffffffff);
        kvm_segment.type(s, (byte) type);
        kvm_segment.present(s, (byte) 1);
        kvm_segment.dpl(s, (byte) 0);
        kvm_segment.s(s, (byte) 1);
        kvm_segment.l(s, (byte) (longCode ? 1 : 0));
        kvm_segment.db(s, (byte) (longCode ? 0 : 1));
        kvm_segment.g(s, (byte) 1);
        kvm_segment.avl(s, (byte) 0);
        kvm_segment.unusable(s, (byte) 0);
    }

    /** Encodes a segment descriptor (base, limit, flags as bits 52-55 and access byte). */
    static long descriptor(long base, long limit, int flags, int access) {
        return ((base & 0xff000000L) << 32)
                | ((long) (flags & 0xf) << 52)
                | ((limit & 0xf0000L) << 32)
                | ((long) (access & 0xff) << 40)
                | ((base & 0x00ffffffL) << 16)
                | (limit & 0xffffL);
    }

    private static void writeGdt(GuestMemory memory, boolean longMode) {
        memory.writeLong(GDT_ADDR, 0);
        memory.writeLong(GDT_ADDR + CODE64_SELECTOR, descriptor(0, 0xfffff, 0xa, 0x9b));
        // 0x10: the boot code segment, 64-bit (L) in long mode, 32-bit (D) otherwise; 4 KiB granular.
        memory.writeLong(GDT_ADDR + CODE_SELECTOR, descriptor(0, 0xfffff, longMode ? 0xa : 0xc, 0x9b));
        memory.writeLong(GDT_ADDR + DATA_SELECTOR, descriptor(0, 0xfffff, 0xc, 0x93));
        memory.writeLong(GDT_ADDR + TSS_SELECTOR, descriptor(0, 0xfffff, 0x0, 0x8b));
    }

    private static void writeIdentityPageTables(GuestMemory memory) {
        memory.fill(PML4_ADDR, SETUP_END - PML4_ADDR, (byte) 0);
        memory.writeLong(PML4_ADDR, PDPT_ADDR | 0x3); // present, writable
        for (int i = 0; i < 4; i++) {
            long pd = PD_ADDR + i * 0x1000L;
            memory.writeLong(PDPT_ADDR + i * 8L, pd | 0x3);
            for (int j = 0; j < 512; j++) {
                long phys = ((long) i << 30) | ((long) j << 21);
                memory.writeLong(pd + j * 8L, phys | 0x83); // present, writable, 2 MiB page
            }
        }
    }
}
