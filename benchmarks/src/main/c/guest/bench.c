/*
 * The exit-latency benchmark guest, run unchanged by jvmm, the C reference VMM (refvmm) and QEMU microvm.
 * It is a multiboot kernel; every VMM passes "kind=K n=N reps=R cpl=C gate=G" as the multiboot command line.
 *
 * Each rep is a batch of N exits of one kind, bracketed by markers on the control port (the host times
 * them) and by rdtsc (the guest times them; the only clock QEMU offers). In gate mode (jvmm's JMH runs) the
 * guest asks the control port for each batch's size instead and runs until it answers 0.
 *
 * cpl=3 runs the loops in user mode (IOPL 3, flat DPL-3 segments): this host emulates kernel-mode code
 * (~0.8 us per instruction) but runs user mode natively, so a CPL3 loop leaves the exit alone in the figure.
 */
#include "guest.h"

#define BENCH_PORT 0x5a0     /* port I/O sink: a VMM answers it with the least work it can */
#define IOEVENT_PORT 0x5a4   /* registered with KVM_IOEVENTFD: completed in the kernel */
#define IRQ_READY_PORT 0x5a8 /* ioeventfd too: "ready for the next interrupt" in the irq benchmark */
#define CTL_PORT 0x5b0       /* in: next batch size (gate mode); out 1: batch starts, out 2: batch ends;
                              * then +4, +8: the batch's rdtsc delta, low and high half */
#define BENCH_MMIO 0xd0000000u
#define WAKE_VECTOR 0x40
#define LAPIC 0xfee00000u

enum kind { K_NONE, K_IDLE, K_PIO_OUT, K_PIO_IN, K_MMIO_WRITE, K_MMIO_READ, K_IOEVENTFD, K_IRQ };
static const char *const kind_names[] = {"none", "idle", "pio_out", "pio_in", "mmio_write", "mmio_read",
                                         "ioeventfd", "irq"};
#define KINDS (int)(sizeof(kind_names) / sizeof(kind_names[0]))

static int kind = K_NONE, cpl = 0, gate = 0;
static u32 n = 1000, reps = 1;
volatile u32 irq_count;

/* ---- command line ---- */
static u32 parse_u32(const char *s, int len) {
    u32 v = 0;
    for (int i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (u32)(s[i] - '0');
    return v;
}

static void parse_cmdline(const char *c) {
    while (*c) {
        while (*c == ' ') c++;
        const char *key = c;
        while (*c && *c != '=' && *c != ' ') c++;
        if (*c != '=') continue; /* QEMU puts the kernel's file name first: skip words without '=' */
        int klen = (int)(c - key);
        const char *val = ++c;
        while (*c && *c != ' ') c++;
        int vlen = (int)(c - val);
        if (klen == 4 && !strncmp(key, "kind", 4)) {
            for (int k = 0; k < KINDS; k++)
                if ((int)strlen(kind_names[k]) == vlen && !strncmp(val, kind_names[k], vlen)) kind = k;
        } else if (klen == 1 && key[0] == 'n') {
            n = parse_u32(val, vlen);
        } else if (klen == 4 && !strncmp(key, "reps", 4)) {
            reps = parse_u32(val, vlen);
        } else if (klen == 3 && !strncmp(key, "cpl", 3)) {
            cpl = parse_u32(val, vlen) == 3 ? 3 : 0;
        } else if (klen == 4 && !strncmp(key, "gate", 4)) {
            gate = parse_u32(val, vlen) != 0;
        }
    }
}

/* ---- descriptor tables: kernel and user flat segments, a TSS for the ring-3 -> ring-0 stack ---- */
struct tss {
    u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u32 es, cs, ss, ds, fs, gs, ldt;
    u16 trap, iomap_base;
} __attribute__((packed));

static u64 gdt[6] __attribute__((aligned(8)));
static u64 idt[256] __attribute__((aligned(8)));
static struct tss tss __attribute__((aligned(16)));
static u8 kernel_stack[16384] __attribute__((aligned(16)));
static u8 user_stack[16384] __attribute__((aligned(16)));
extern void isr_wake(void);
extern void isr_spurious(void);

#define KCODE 0x08
#define KDATA 0x10
#define UCODE (0x18 | 3)
#define UDATA (0x20 | 3)
#define TSS_SEL 0x28

static u64 descriptor(u32 base, u32 limit, u32 flags, u32 access) {
    return ((u64)(base & 0xff000000u) << 32) | ((u64)(flags & 0xf) << 52) | ((u64)(limit & 0xf0000u) << 32) |
           ((u64)(access & 0xff) << 40) | ((u64)(base & 0x00ffffffu) << 16) | (limit & 0xffffu);
}

static u64 interrupt_gate(void (*handler)(void)) {
    u32 h = (u32)(uptr)handler;
    return ((u64)(h & 0xffff0000u) << 32) | ((u64)0x8e << 40) | ((u64)KCODE << 16) | (h & 0xffffu);
}

static void setup_descriptors(void) {
    gdt[0] = 0;
    gdt[1] = descriptor(0, 0xfffff, 0xc, 0x9a);
    gdt[2] = descriptor(0, 0xfffff, 0xc, 0x92);
    gdt[3] = descriptor(0, 0xfffff, 0xc, 0xfa);
    gdt[4] = descriptor(0, 0xfffff, 0xc, 0xf2);
    memset(&tss, 0, sizeof tss);
    tss.esp0 = (u32)(uptr)(kernel_stack + sizeof kernel_stack);
    tss.ss0 = KDATA;
    tss.iomap_base = sizeof tss; /* no bitmap: IOPL 3 grants ring 3 the ports */
    gdt[5] = descriptor((u32)(uptr)&tss, sizeof tss - 1, 0, 0x89);
    struct { u16 limit; u32 base; } __attribute__((packed)) gdtr = {sizeof gdt - 1, (u32)(uptr)gdt};
    __asm__ volatile("lgdt %0\n\t"
                     "ljmp %1, $1f\n"
                     "1:\tmov %2, %%ax\n\t"
                     "mov %%ax, %%ds\n\tmov %%ax, %%es\n\tmov %%ax, %%ss\n\tmov %%ax, %%fs\n\tmov %%ax, %%gs\n\t"
                     "mov %3, %%ax\n\tltr %%ax"
                     : : "m"(gdtr), "i"(KCODE), "i"(KDATA), "i"(TSS_SEL) : "eax", "memory");
    idt[WAKE_VECTOR] = interrupt_gate(isr_wake);
    idt[0xff] = interrupt_gate(isr_spurious);
    struct { u16 limit; u32 base; } __attribute__((packed)) idtr = {sizeof idt - 1, (u32)(uptr)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

/* ---- the loops: one exit-causing instruction, then dec/jnz ---- */
static void __attribute__((noinline)) loop_exits(u32 count) {
    if (count == 0) return;
    switch (kind) {
    case K_PIO_OUT:
        __asm__ volatile("1: outb %%al, %%dx\n\tdec %%ecx\n\tjnz 1b" : "+c"(count) : "a"(0), "d"(BENCH_PORT) : "memory");
        break;
    case K_PIO_IN:
        __asm__ volatile("1: inb %%dx, %%al\n\tdec %%ecx\n\tjnz 1b" : "+c"(count) : "d"(BENCH_PORT) : "eax", "memory");
        break;
    case K_MMIO_WRITE:
        __asm__ volatile("1: movl %%eax, (%%edi)\n\tdec %%ecx\n\tjnz 1b" : "+c"(count) : "a"(0), "D"(BENCH_MMIO) : "memory");
        break;
    case K_MMIO_READ:
        __asm__ volatile("1: movl (%%edi), %%eax\n\tdec %%ecx\n\tjnz 1b" : "+c"(count) : "D"(BENCH_MMIO) : "eax", "memory");
        break;
    case K_IOEVENTFD:
        __asm__ volatile("1: outb %%al, %%dx\n\tdec %%ecx\n\tjnz 1b" : "+c"(count) : "a"(0), "d"(IOEVENT_PORT) : "memory");
        break;
    case K_IRQ:
        /* Ping-pong: tell the host (ioeventfd) we are ready, sleep until its irqfd interrupt arrives.
         * sti's one-instruction shadow makes "sti; hlt" atomic, so a wake-up cannot slip in between; the
         * handler resumes at irq_resume with interrupts off (see isr.S). */
        __asm__ volatile("1: outb %%al, %%dx\n\tsti\n\thlt\n\t.globl irq_resume\nirq_resume:\n\t"
                         "dec %%ecx\n\tjnz 1b"
                         : "+c"(count) : "a"(0), "d"(IRQ_READY_PORT) : "memory");
        break;
    default:
        break;
    }
}

static void print_u64_hex(u64 v) { printf("%x%08x", (u32)(v >> 32), (u32)v); }

static void run_benchmark(void) {
    for (u32 rep = 0;; rep++) {
        u32 count = n;
        if (gate) {
            count = inl(CTL_PORT);
            if (count == 0 || count == 0xffffffffu) break;
        } else {
            if (rep >= reps) break;
            outl(CTL_PORT, 1);
        }
        u64 t0 = rdtsc();
        loop_exits(count);
        u64 t1 = rdtsc();
        outl(CTL_PORT, 2);
        outl(CTL_PORT + 4, (u32)(t1 - t0)); /* the guest's own time of the batch, for hosts that read it */
        outl(CTL_PORT + 8, (u32)((t1 - t0) >> 32));
        if (!gate) {
            printf("R kind=%s cpl=%d n=%u cycles=", kind_names[kind], cpl, count);
            print_u64_hex(t1 - t0);
            puts("\n");
        }
    }
    printf("D irqs=%u\n", irq_count);
    guest_exit(0);
}

/*
 * Drops to ring 3 with IOPL 3 and interrupts off; never returns (the benchmark ends through debug-exit).
 * SYSEXIT, not IRET: KVM's instruction emulator, which runs all kernel-mode code on this host, implements
 * IRET only in real mode and no far return to an outer privilege level. SYSEXIT takes CS and SS from
 * IA32_SYSENTER_CS + 16 and + 24, the user code and data descriptors of the GDT above.
 */
static void __attribute__((noreturn)) enter_user_mode(void (*fn)(void)) {
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"(KCODE), "d"(0)); /* IA32_SYSENTER_CS */
    __asm__ volatile("pushf\n\torl $0x3000, (%%esp)\n\tpopf\n\t"  /* IOPL 3 */
                     "mov %0, %%ds\n\tmov %0, %%es\n\tmov %0, %%fs\n\tmov %0, %%gs\n\t"
                     "sysexit"
                     : : "r"((u32)UDATA), "c"((u32)(uptr)(user_stack + sizeof user_stack)), "d"(fn) : "memory");
    __builtin_unreachable();
}

int guest_main(u32 magic, u32 info) {
    putc_debugcon('.'); /* the first sign of life, timed by the launch benchmark */
    if (magic == MULTIBOOT_BOOTLOADER_MAGIC) {
        const struct multiboot_info *mbi = (const struct multiboot_info *)(uptr)info;
        if (mbi->flags & (1u << 2)) parse_cmdline((const char *)(uptr)mbi->cmdline);
    }
    if (kind == K_NONE) return 0;
    if (kind == K_IDLE) {
        puts("ready\n"); /* the memory benchmark reads the VMM's footprint now */
        for (;;) __asm__ volatile("cli; hlt");
    }
    setup_descriptors();
    if (kind == K_IRQ) {
        cpl = 0; /* hlt is privileged */
        mmio_write32(LAPIC + 0xf0, 0x100 | 0xff); /* software-enable the local APIC, spurious vector 0xff */
    }
    if (cpl == 3) enter_user_mode(run_benchmark);
    run_benchmark();
    return 0;
}
