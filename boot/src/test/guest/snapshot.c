/*
 * The snapshot tests' guest: rounds of work that a snapshot may cut anywhere, each leaving a trace the host and the
 * guest itself check after a restore. Round r (1 to ROUNDS):
 *   - the counter in memory becomes r (checked against the round, so a restore that lost or repeated memory shows);
 *   - sector r of the virtio-pci disk (MSI-X) is written with round r's pattern and read back, each request
 *     completed by its MSI-X interrupt;
 *   - "round r" is sent on the UART interrupt-driven: one byte, then wait for the THR-empty interrupt (IRQ 4);
 *   - the TSC must have moved forward.
 * Then every sector 1..ROUNDS is read back and checked, "snapshot guest: done" goes to the UART, and the exit code
 * (isa-debug-exit) is 0 when every check passed. The host snapshots the machine mid-run (while requests are
 * going), restores it, and checks that the UART's rounds go on without a gap.
 */
#include "guest.h"
#include "virtio_transport.h"

#define ROUNDS 300
#define VEC_UART 0x24
#define VEC_CFG 0x40
#define VEC_Q 0x41
#define LAPIC 0xfee00000u
#define IOAPIC 0xfec00000u
#define COM1 0x3f8
#define QSZ 16
#define SECTOR 512
#define T_IN 0
#define T_OUT 1
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define D_NEXT 1
#define D_WRITE 2

struct desc { u64 addr; u32 len; u16 flags; u16 next; } __attribute__((packed));

static u8 qmem[4096] __attribute__((aligned(4096)));
static u32 buf[SECTOR / 4] __attribute__((aligned(64)));
static struct { u32 type, reserved; u64 sector; } hdr __attribute__((aligned(16)));
static volatile u8 status_byte;
static struct vtransport vt = {1, 0, 0, 0};
static uptr notify_addr;
static u16 avail_idx, used_seen;
static volatile int q_irqs, cfg_irqs, uart_irqs, unexpected_irqs;
static volatile u32 counter;

/* --- interrupts, taken without IRET (KVM's instruction emulator cannot run it): see virtio_suite.c ------ */

struct idt_gate { u16 off_lo, sel; u8 zero, attr; u16 off_hi; } __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(8)));
u32 irq_saved_esp;

int await_interrupt(void);
void stub_uart(void), stub_q(void), stub_cfg(void), stub_other(void);

__asm__(
    ".text\n"
    ".globl await_interrupt\n"
    "await_interrupt:\n"
    "  push %ebp\n  push %ebx\n  push %esi\n  push %edi\n"
    "  mov %esp, irq_saved_esp\n"
    "  sti\n"
    "  mov $2000000, %ecx\n"
    "1: pause\n  dec %ecx\n  jnz 1b\n"
    "  cli\n"
    "  xor %eax, %eax\n"
    "  jmp 2f\n"
    "irq_resume:\n"
    "  mov irq_saved_esp, %esp\n"
    "2: pop %edi\n  pop %esi\n  pop %ebx\n  pop %ebp\n"
    "  ret\n");

#define IRQ_STUB(stub, handler, vector) \
    __asm__(".text\n.globl " #stub "\n" #stub ":\n  cld\n  call " #handler "\n" \
            "  mov $" #vector ", %eax\n  jmp irq_resume\n")

static void lapic_eoi(void) { mmio_write32(LAPIC + 0xb0, 0); }
static void ioapic_write(u32 reg, u32 v) { mmio_write32(IOAPIC, reg); mmio_write32(IOAPIC + 0x10, v); }

void handle_uart(void)
{
    u8 iir = inb(COM1 + 2); /* reading IIR acknowledges the THR-empty interrupt */
    if ((iir & 0x0f) == 0x02) uart_irqs++;
    lapic_eoi();
}
void handle_q(void) { q_irqs++; lapic_eoi(); }
void handle_cfg(void) { cfg_irqs++; lapic_eoi(); }
void handle_other(void) { unexpected_irqs++; lapic_eoi(); }
IRQ_STUB(stub_uart, handle_uart, 0x24);
IRQ_STUB(stub_q, handle_q, 0x41);
IRQ_STUB(stub_cfg, handle_cfg, 0x40);
IRQ_STUB(stub_other, handle_other, 0xff);

static void set_gate(int v, void (*h)(void))
{
    u16 cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    uptr a = (uptr)h;
    idt[v].off_lo = (u16)a;
    idt[v].off_hi = (u16)(a >> 16);
    idt[v].sel = cs;
    idt[v].zero = 0;
    idt[v].attr = 0x8e;
}

static int wait_counter(volatile int *c, int before)
{
    for (int tries = 0; tries < 16 && *c <= before; tries++)
        if (!await_interrupt()) break;
    return *c > before;
}

static void interrupts_init(void)
{
    struct { u16 limit; u32 base; } __attribute__((packed)) idtr = { sizeof(idt) - 1, (u32)(uptr)idt };
    for (int v = 32; v < 256; v++) set_gate(v, stub_other);
    set_gate(VEC_UART, stub_uart);
    set_gate(VEC_Q, stub_q);
    set_gate(VEC_CFG, stub_cfg);
    __asm__ volatile("lidt %0" : : "m"(idtr));
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    mmio_write32(LAPIC + 0xf0, 0x1ff);
    mmio_write32(LAPIC + 0x80, 0);
    ioapic_write(0x10 + 2 * 4, VEC_UART); /* ISA IRQ 4: edge, active high, unmasked, to APIC 0 */
    ioapic_write(0x11 + 2 * 4, 0);
}

/* --- the UART, interrupt-driven ---------------------------------------------------------------------- */

static void uart_init(void)
{
    outb(COM1 + 3, 0x03); /* 8n1 */
    outb(COM1 + 2, 0x00); /* no FIFO */
    outb(COM1 + 4, 0x08); /* OUT2: the interrupt reaches the PIC/IOAPIC */
    outb(COM1 + 1, 0x02); /* THR-empty interrupt: raised at once, THR being empty */
    CHECK(wait_counter(&uart_irqs, 0), "uart: THR-empty interrupt when enabled\n");
}

static void uart_putc(char c)
{
    int before = uart_irqs;
    outb(COM1, (u8)c);
    CHECK(wait_counter(&uart_irqs, before), "uart: THR-empty interrupt after sending '%c'\n", c);
}

static void uart_puts(const char *s)
{
    for (; *s; s++) uart_putc(*s);
}

static void uart_putu(u32 v)
{
    char d[12];
    int n = 0;
    do { d[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) uart_putc(d[--n]);
}

/* --- virtio-blk over virtio-pci ------------------------------------------------------------------------ */

static int pci_init(void)
{
    int slot = -1;
    for (int s = 0; s < 32 && slot < 0; s++)
        if (pci_read32(0, s, 0, 0) == 0x10421af4u) slot = s;
    CHECK(slot > 0, "virtio-blk 1af4:1042 on bus 0\n");
    if (slot < 0) return 0;
    u32 lo = pci_read32(0, slot, 0, 0x10);
    vt.base = lo & ~0xfu;
    int msix = 0;
    for (u8 cap = pci_read8(0, slot, 0, 0x34); cap; cap = pci_read8(0, slot, 0, cap + 1)) {
        u8 id = pci_read8(0, slot, 0, cap);
        if (id == 0x11) msix = cap;
        if (id != 0x09 || pci_read8(0, slot, 0, cap + 4) != 0) continue;
        u8 type = pci_read8(0, slot, 0, cap + 3);
        u32 off = pci_read32(0, slot, 0, cap + 8);
        if (type == 1 && !vt.common) vt.common = vt.base + off;
        if (type == 4 && !vt.devcfg) vt.devcfg = vt.base + off;
        if (type == 2 && !notify_addr) notify_addr = vt.base + off;
    }
    CHECK(msix && vt.common && notify_addr, "virtio-pci capabilities and MSI-X\n");
    if (!msix || !vt.common || !notify_addr) return 0;
    pci_write16(0, slot, 0, 0x04, pci_read16(0, slot, 0, 0x04) | 0x6);
    u16 ctrl = pci_read16(0, slot, 0, msix + 2);
    uptr t = vt.base + (pci_read32(0, slot, 0, msix + 4) & ~7u);
    mmio_write32(t + 0, 0xfee00000u); mmio_write32(t + 4, 0); mmio_write32(t + 8, VEC_CFG); mmio_write32(t + 12, 0);
    mmio_write32(t + 16, 0xfee00000u); mmio_write32(t + 20, 0); mmio_write32(t + 24, VEC_Q); mmio_write32(t + 28, 0);
    pci_write16(0, slot, 0, msix + 2, ctrl | 0x8000);

    set_status(&vt, 0);
    set_status(&vt, ST_ACK);
    set_status(&vt, ST_ACK | ST_DRIVER);
    driver_features(&vt, 0, 0);
    driver_features(&vt, 1, 1); /* VERSION_1 only: no event index, an interrupt for every used buffer */
    set_status(&vt, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    u32 desc = (u32)(uptr)qmem;
    mmio_write16(vt.common + 0x10, 0);
    mmio_write16(vt.common + 0x16, 0);
    mmio_write16(vt.common + 0x18, QSZ);
    mmio_write32(vt.common + 0x20, desc); mmio_write32(vt.common + 0x24, 0);
    mmio_write32(vt.common + 0x28, desc + 256); mmio_write32(vt.common + 0x2c, 0);
    mmio_write32(vt.common + 0x30, desc + 512); mmio_write32(vt.common + 0x34, 0);
    mmio_write16(vt.common + 0x1a, 1);
    mmio_write16(vt.common + 0x1c, 1);
    set_status(&vt, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    CHECK(get_status(&vt) == (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK), "disk: DRIVER_OK\n");
    return 1;
}

static u16 used_idx(void) { return *(volatile u16 *)(qmem + 512 + 2); }

/* One request of one sector; waits for it to be used and for its MSI-X interrupt. Returns the status. */
static int blk(u32 type, u32 sector)
{
    struct desc *d = (struct desc *)qmem;
    volatile u16 *avail = (volatile u16 *)(qmem + 256);
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status_byte = 0xff;
    d[0].addr = (u32)(uptr)&hdr; d[0].len = 16; d[0].flags = D_NEXT; d[0].next = 1;
    d[1].addr = (u32)(uptr)buf; d[1].len = SECTOR; d[1].flags = D_NEXT | (type == T_IN ? D_WRITE : 0); d[1].next = 2;
    d[2].addr = (u32)(uptr)&status_byte; d[2].len = 1; d[2].flags = D_WRITE; d[2].next = 0;
    int irqs = q_irqs;
    avail[2 + avail_idx % QSZ] = 0;
    barrier();
    avail[1] = ++avail_idx;
    barrier();
    mmio_write16(notify_addr, 0);
    for (u64 start = rdtsc(); used_idx() == used_seen;) {
        if (rdtsc() - start > HOST_WAIT_TSC) { printf("disk: request %u timed out\n", type); return -1; }
        cpu_relax();
    }
    used_seen++;
    CHECK(wait_counter(&q_irqs, irqs), "disk: MSI-X interrupt for request %u at sector %u\n", type, sector);
    return status_byte;
}

static u32 pattern(u32 sector, u32 word) { return (sector * 2654435761u) ^ (word * 40503u) ^ 0x5a5a0000u; }

int guest_main(u32 magic, u32 info)
{
    (void)magic;
    (void)info;
    puts("snapshot guest\n");
    interrupts_init();
    uart_init();
    if (!pci_init()) return guest_result();
    uart_puts("snapshot guest: started\n");
    u64 last_tsc = rdtsc();
    for (u32 r = 1; r <= ROUNDS; r++) {
        CHECK(counter == r - 1, "round %u: the counter is %u\n", r, counter);
        counter = r;
        for (u32 i = 0; i < SECTOR / 4; i++) buf[i] = pattern(r, i);
        CHECK(blk(T_OUT, r) == 0, "round %u: write\n", r);
        memset(buf, 0, SECTOR);
        CHECK(blk(T_IN, r) == 0, "round %u: read\n", r);
        int same = 1;
        for (u32 i = 0; i < SECTOR / 4; i++) same &= buf[i] == pattern(r, i);
        CHECK(same, "round %u: read back what was written\n", r);
        u64 now = rdtsc();
        CHECK(now > last_tsc, "round %u: the TSC went back\n", r);
        last_tsc = now;
        uart_puts("round ");
        uart_putu(r);
        uart_putc('\n');
        if (checks_failed) break;
    }
    for (u32 s = 1; s <= ROUNDS && !checks_failed; s++) {
        memset(buf, 0, SECTOR);
        CHECK(blk(T_IN, s) == 0, "final read of sector %u\n", s);
        int same = 1;
        for (u32 i = 0; i < SECTOR / 4; i++) same &= buf[i] == pattern(s, i);
        CHECK(same, "sector %u holds round %u's data at the end\n", s, s);
    }
    CHECK(unexpected_irqs == 0, "no unexpected interrupts (%d)\n", unexpected_irqs);
    uart_puts(checks_failed ? "snapshot guest: FAILED\n" : "snapshot guest: done\n");
    return guest_result();
}
