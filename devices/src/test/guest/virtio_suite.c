/*
 * A guest-side virtio driver test suite: minimal virtio-mmio and virtio-pci (modern) drivers for a
 * virtio-blk disk, run under jvmm on real KVM. The host (VirtioGuestKvmTest, or the Machine with --disk
 * options) attaches:
 *   vda: virtio-mmio, 4 MiB read-write, serial "jvmm-vda"
 *   vdb: virtio-mmio, 1 MiB read-only (filled with 0x5a), serial "jvmm-vdb"
 *   vdc: virtio-pci (MSI-X), 4 MiB read-write, serial "jvmm-vdc"
 * The virtio-mmio windows and interrupt lines come from the multiboot command line, in the form Linux
 * takes them: virtio_mmio.device=4K@0xd0000000:5 (first vda, then vdb).
 * Results go to debugcon; the exit code (isa-debug-exit) is 0 when every check passed. The host then
 * checks the disk files' bytes. Interrupts are taken through the LAPIC/IOAPIC (mmio) and MSI-X (pci).
 */
#include "guest.h"
#include "virtio_transport.h"

#define VEC_VDA 0x30
#define VEC_VDB 0x31
#define VEC_PCI_CONFIG 0x40
#define VEC_PCI_QUEUE 0x41
#define LAPIC 0xfee00000u
#define IOAPIC 0xfec00000u
#define QSZ 16
#define SECTOR 512

#define F_RO 5
#define F_BLK_SIZE 6
#define F_FLUSH 9
#define F_DISCARD 13
#define F_WRITE_ZEROES 14
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define D_NEXT 1
#define D_WRITE 2

struct desc { u64 addr; u32 len; u16 flags; u16 next; } __attribute__((packed));

struct dev {
    const char *name;
    struct vtransport t;
    uptr notify, isr;
    u8 *q;                     /* desc at 0, avail at 256, used at 512 */
    u16 avail_idx, used_seen;
    volatile int irqs, config_irqs;
    u32 seed;
};

static u8 qmem[3][4096] __attribute__((aligned(4096)));
static u32 buf[8192] __attribute__((aligned(4096)));
static struct { u32 type, reserved; u64 sector; } hdr __attribute__((aligned(16)));
static volatile u8 status_byte;
static u8 segs[32] __attribute__((aligned(16)));
static char idbuf[20];

static u32 vda_gsi, vdb_gsi;
static struct dev vda = { "vda", {0, 0, 0, 0}, 0, 0, qmem[0], 0, 0, 0, 0, 0x11111111u };
static struct dev vdb = { "vdb", {0, 0, 0, 0}, 0, 0, qmem[1], 0, 0, 0, 0, 0 };
static struct dev vdc = { "vdc", {1, 0, 0, 0}, 0, 0, qmem[2], 0, 0, 0, 0, 0x33333333u };

/* --- interrupts ------------------------------------------------------------------------------------- */

/*
 * Interrupts are taken without ever returning from them: KVM's instruction emulator (which runs CPL0 code
 * on hosts without VT-x/AMD-V, such as this project's CI) cannot execute IRET in protected mode. So
 * interrupts stay disabled except inside await_interrupt(); each vector's stub calls its C handler (which
 * acknowledges the source and sends EOI), then jumps back into await_interrupt() on the stack it saved,
 * discarding the interrupt frame (IF stays clear, as the interrupt gate left it).
 */
struct idt_gate { u16 off_lo, sel; u8 zero, attr; u16 off_hi; } __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(8)));
volatile int unexpected_irqs;
u32 irq_saved_esp;

int await_interrupt(void);
void stub_vda(void), stub_vdb(void), stub_pci_queue(void), stub_pci_config(void), stub_other(void);

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
    "irq_resume:\n"                 /* eax: the vector taken */
    "  mov irq_saved_esp, %esp\n"
    "2: pop %edi\n  pop %esi\n  pop %ebx\n  pop %ebp\n"
    "  ret\n");

#define IRQ_STUB(stub, handler, vector) \
    __asm__(".text\n.globl " #stub "\n" #stub ":\n  cld\n  call " #handler "\n  mov $" #vector ", %eax\n  jmp irq_resume\n")

static void lapic_eoi(void) { mmio_write32(LAPIC + 0xb0, 0); }
static void ioapic_write(u32 reg, u32 v) { mmio_write32(IOAPIC, reg); mmio_write32(IOAPIC + 0x10, v); }

static void mmio_irq(struct dev *d)
{
    u32 s = mmio_read32(d->t.base + 0x60);
    mmio_write32(d->t.base + 0x64, s);       /* acknowledge: the level line drops */
    if (s & 1) d->irqs++;
    if (s & 2) d->config_irqs++;
    lapic_eoi();
}

void handle_vda(void) { mmio_irq(&vda); }
void handle_vdb(void) { mmio_irq(&vdb); }
void handle_pci_queue(void) { vdc.irqs++; lapic_eoi(); }
void handle_pci_config(void) { vdc.config_irqs++; lapic_eoi(); }
void handle_other(void) { unexpected_irqs++; lapic_eoi(); }
IRQ_STUB(stub_vda, handle_vda, 0x30);
IRQ_STUB(stub_vdb, handle_vdb, 0x31);
IRQ_STUB(stub_pci_queue, handle_pci_queue, 0x41);
IRQ_STUB(stub_pci_config, handle_pci_config, 0x40);
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

static void interrupts_init(void)
{
    struct { u16 limit; u32 base; } __attribute__((packed)) idtr = { sizeof(idt) - 1, (u32)(uptr)idt };
    for (int v = 32; v < 256; v++) set_gate(v, stub_other);
    set_gate(VEC_VDA, stub_vda);
    set_gate(VEC_VDB, stub_vdb);
    set_gate(VEC_PCI_QUEUE, stub_pci_queue);
    set_gate(VEC_PCI_CONFIG, stub_pci_config);
    __asm__ volatile("lidt %0" : : "m"(idtr));
    outb(0x21, 0xff);                                /* mask the legacy PICs */
    outb(0xa1, 0xff);
    mmio_write32(LAPIC + 0xf0, 0x1ff);               /* LAPIC software enable */
    mmio_write32(LAPIC + 0x80, 0);                   /* accept every priority */
    ioapic_write(0x10 + 2 * vda_gsi, VEC_VDA | (1u << 15)); /* level, active high, unmasked, to APIC 0 */
    ioapic_write(0x11 + 2 * vda_gsi, 0);
    ioapic_write(0x10 + 2 * vdb_gsi, VEC_VDB | (1u << 15));
    ioapic_write(0x11 + 2 * vdb_gsi, 0);
}

/* Takes interrupts until *counter exceeds before (or none comes within a bound). */
static int wait_counter(volatile int *counter, int before)
{
    for (int tries = 0; tries < 16 && *counter <= before; tries++)
        if (!await_interrupt()) break;
    return *counter > before;
}

/* --- transport access -------------------------------------------------------------------------------- */

static u32 cfg32(struct dev *d, u32 off) { return d->t.pci ? mmio_read32(d->t.devcfg + off) : mr(&d->t, 0x100 + off); }

static void notify(struct dev *d)
{
    barrier();
    if (d->t.pci) mmio_write16(d->notify, 0); else mw(&d->t, 0x50, 0);
}

/* Reset, acknowledge, negotiate, set up queue 0, DRIVER_OK. Returns the accepted feature word 0. */
static int dev_init(struct dev *d, u32 want)
{
    set_status(&d->t, 0);
    CHECK(get_status(&d->t) == 0, "%s: status 0 after reset\n", d->name);
    set_status(&d->t, ST_ACK);
    set_status(&d->t, ST_ACK | ST_DRIVER);
    u32 f0 = device_features(&d->t, 0), f1 = device_features(&d->t, 1);
    CHECK(f1 & 1, "%s: VIRTIO_F_VERSION_1 offered (features %x %x)\n", d->name, f1, f0);
    driver_features(&d->t, 0, f0 & want);
    driver_features(&d->t, 1, 1);
    set_status(&d->t, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    CHECK(get_status(&d->t) & ST_FEATURES_OK, "%s: FEATURES_OK kept\n", d->name);
    memset(d->q, 0, 4096);
    d->avail_idx = d->used_seen = 0;
    u32 desc = (u32)(uptr)d->q, avail = desc + 256, used = desc + 512;
    if (d->t.pci) {
        mmio_write16(d->t.common + 0x10, 0);                 /* config vector: MSI-X entry 0 */
        CHECK(mmio_read16(d->t.common + 0x10) == 0, "%s: config vector mapped\n", d->name);
        mmio_write16(d->t.common + 0x16, 0);
        u16 max = mmio_read16(d->t.common + 0x18);
        CHECK(max >= QSZ, "%s: queue size %u\n", d->name, max);
        mmio_write16(d->t.common + 0x18, QSZ);
        mmio_write32(d->t.common + 0x20, desc); mmio_write32(d->t.common + 0x24, 0);
        mmio_write32(d->t.common + 0x28, avail); mmio_write32(d->t.common + 0x2c, 0);
        mmio_write32(d->t.common + 0x30, used); mmio_write32(d->t.common + 0x34, 0);
        mmio_write16(d->t.common + 0x1a, 1);                 /* queue vector: MSI-X entry 1 */
        CHECK(mmio_read16(d->t.common + 0x1a) == 1, "%s: queue vector mapped\n", d->name);
        mmio_write16(d->t.common + 0x1c, 1);
    } else {
        mw(&d->t, 0x30, 0);
        CHECK(mr(&d->t, 0x44) == 0, "%s: queue not ready before setup\n", d->name);
        u32 max = mr(&d->t, 0x34);
        CHECK(max >= QSZ, "%s: QueueNumMax %u\n", d->name, max);
        mw(&d->t, 0x38, QSZ);
        mw(&d->t, 0x80, desc); mw(&d->t, 0x84, 0);
        mw(&d->t, 0x90, avail); mw(&d->t, 0x94, 0);
        mw(&d->t, 0xa0, used); mw(&d->t, 0xa4, 0);
        mw(&d->t, 0x44, 1);
    }
    set_status(&d->t, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    CHECK(get_status(&d->t) == (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK), "%s: DRIVER_OK, status %x\n", d->name, get_status(&d->t));
    return (int)(f0 & want);
}

/* --- virtio-blk requests ----------------------------------------------------------------------------- */

static u16 used_idx(struct dev *d) { return *(volatile u16 *)(d->q + 512 + 2); }

/* One request (header, optional data, status); returns the status or -1 on a timeout. */
static int blk(struct dev *d, u32 type, u64 sector, void *data, u32 len, int device_writes, u32 *used_len)
{
    struct desc *t = (struct desc *)d->q;
    volatile u16 *avail = (volatile u16 *)(d->q + 256);
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status_byte = 0xff;
    int n = 0;
    t[n].addr = (u32)(uptr)&hdr; t[n].len = 16; t[n].flags = D_NEXT; t[n].next = n + 1; n++;
    if (len) { t[n].addr = (u32)(uptr)data; t[n].len = len; t[n].flags = D_NEXT | (device_writes ? D_WRITE : 0); t[n].next = n + 1; n++; }
    t[n].addr = (u32)(uptr)&status_byte; t[n].len = 1; t[n].flags = D_WRITE; t[n].next = 0;
    avail[2 + d->avail_idx % QSZ] = 0;
    barrier();
    d->avail_idx++;
    avail[1] = d->avail_idx;
    notify(d);
    for (u64 start = rdtsc(); used_idx(d) == d->used_seen;) {
        if (rdtsc() - start > HOST_WAIT_TSC) { printf("%s: request type %u timed out\n", d->name, type); return -1; }
        cpu_relax();
    }
    barrier();
    volatile u32 *e = (volatile u32 *)(d->q + 512 + 4 + 8 * (d->used_seen % QSZ));
    CHECK(e[0] == 0, "%s: used id %u is the head 0\n", d->name, e[0]);
    if (used_len) *used_len = e[1];
    d->used_seen++;
    return status_byte;
}

static u32 pattern(struct dev *d, u32 byte_offset) { return (byte_offset * 2654435761u) ^ d->seed; }

static void fill(struct dev *d, u64 sector, u32 sectors)
{
    for (u32 i = 0; i < sectors * SECTOR / 4; i++) buf[i] = pattern(d, (u32)sector * SECTOR + 4 * i);
}

static int verify(struct dev *d, u64 sector, u32 sectors)
{
    for (u32 i = 0; i < sectors * SECTOR / 4; i++)
        if (buf[i] != pattern(d, (u32)sector * SECTOR + 4 * i)) { printf("%s: word %u differs\n", d->name, i); return 0; }
    return 1;
}

static int all_zero(u32 bytes)
{
    for (u32 i = 0; i < bytes / 4; i++) if (buf[i]) return 0;
    return 1;
}

static void put_seg(int i, u64 sector, u32 count, u32 flags)
{
    u8 *s = segs + 16 * i;
    *(u64 *)s = sector;
    *(u32 *)(s + 8) = count;
    *(u32 *)(s + 12) = flags;
}

/* The data path every read-write disk must pass, whatever the transport. */
static void blk_suite(struct dev *d, const char *serial, u32 capacity)
{
    u32 ulen, f = (u32)dev_init(d, (1u << F_FLUSH) | (1u << F_BLK_SIZE) | (1u << F_DISCARD) | (1u << F_WRITE_ZEROES));
    CHECK(f & (1u << F_DISCARD), "%s: discard offered\n", d->name);
    CHECK(f & (1u << F_WRITE_ZEROES), "%s: write-zeroes offered\n", d->name);
    CHECK(!(device_features(&d->t, 0) & (1u << F_RO)), "%s: not read-only\n", d->name);
    CHECK(cfg32(d, 0) == capacity && cfg32(d, 4) == 0, "%s: capacity %u sectors\n", d->name, cfg32(d, 0));
    CHECK(cfg32(d, 20) == 512, "%s: blk_size %u\n", d->name, cfg32(d, 20));

    /* Write 64 sectors at sector 64 in four requests, then read them back in two. */
    int irqs = d->irqs;
    for (u32 r = 0; r < 4; r++) {
        u64 s = 64 + 16 * r;
        fill(d, s, 16);
        int st = blk(d, T_OUT, s, buf, 16 * SECTOR, 0, &ulen);
        CHECK(st == S_OK, "%s: write at %u: status %d\n", d->name, (u32)s, st);
    }
    CHECK(wait_counter(&d->irqs, irqs), "%s: used-buffer interrupt arrived\n", d->name);
    for (u32 r = 0; r < 2; r++) {
        u64 s = 64 + 32 * r;
        memset(buf, 0, 32 * SECTOR);
        int st = blk(d, T_IN, s, buf, 32 * SECTOR, 1, &ulen);
        CHECK(st == S_OK, "%s: read at %u: status %d\n", d->name, (u32)s, st);
        CHECK(ulen == 32 * SECTOR + 1, "%s: used len %u\n", d->name, ulen);
        CHECK(verify(d, s, 32), "%s: read back what was written at %u\n", d->name, (u32)s);
    }

    CHECK(blk(d, T_FLUSH, 0, 0, 0, 0, &ulen) == S_OK, "%s: flush\n", d->name);

    memset(idbuf, 0x55, sizeof idbuf);
    CHECK(blk(d, T_GET_ID, 0, idbuf, 20, 1, &ulen) == S_OK, "%s: get-id\n", d->name);
    CHECK(strncmp(idbuf, serial, 20) == 0 && idbuf[strlen(serial)] == 0, "%s: serial '%s'\n", d->name, serial);

    /* Discard 8 sectors; write then zero 4 others. */
    put_seg(0, 256, 8, 0);
    CHECK(blk(d, T_DISCARD, 0, segs, 16, 0, &ulen) == S_OK, "%s: discard\n", d->name);
    fill(d, 300, 4);
    CHECK(blk(d, T_OUT, 300, buf, 4 * SECTOR, 0, &ulen) == S_OK, "%s: write before zeroing\n", d->name);
    put_seg(0, 300, 4, 0);
    CHECK(blk(d, T_WRITE_ZEROES, 0, segs, 16, 0, &ulen) == S_OK, "%s: write-zeroes\n", d->name);
    memset(buf, 0xee, 4 * SECTOR);
    CHECK(blk(d, T_IN, 300, buf, 4 * SECTOR, 1, &ulen) == S_OK && all_zero(4 * SECTOR), "%s: zeroed sectors read as zero\n", d->name);
    put_seg(0, 1, 1, 1);
    CHECK(blk(d, T_DISCARD, 0, segs, 16, 0, &ulen) == S_UNSUPP, "%s: discard with unmap is unsupported\n", d->name);

    /* Malformed requests on purpose: an error status, and the device keeps serving. */
    CHECK(blk(d, T_IN, capacity, buf, SECTOR, 1, &ulen) == S_IOERR, "%s: read beyond capacity -> IOERR\n", d->name);
    CHECK(blk(d, T_OUT, capacity - 1, buf, 2 * SECTOR, 0, &ulen) == S_IOERR, "%s: write across the end -> IOERR\n", d->name);
    CHECK(blk(d, T_IN, 0, buf, 100, 1, &ulen) == S_IOERR, "%s: partial sector -> IOERR\n", d->name);
    CHECK(blk(d, 77, 0, buf, SECTOR, 1, &ulen) == S_UNSUPP, "%s: unknown type -> UNSUPP\n", d->name);
    CHECK(blk(d, T_IN, 64, buf, SECTOR, 1, &ulen) == S_OK && verify(d, 64, 1), "%s: still serving\n", d->name);
    CHECK(!(get_status(&d->t) & ST_NEEDS_RESET), "%s: no NEEDS_RESET\n", d->name);
}

/* --- virtio-mmio ----------------------------------------------------------------------------------------- */

static void mmio_suite(void)
{
    puts("virtio-mmio\n");
    CHECK(mr(&vda.t, 0x000) == 0x74726976, "vda: magic %x\n", mr(&vda.t, 0x000));
    CHECK(mr(&vda.t, 0x004) == 2, "vda: version %u\n", mr(&vda.t, 0x004));
    CHECK(mr(&vda.t, 0x008) == 2, "vda: device id %u (block)\n", mr(&vda.t, 0x008));
    CHECK(mr(&vdb.t, 0x008) == 2, "vdb: device id %u (block)\n", mr(&vdb.t, 0x008));
    blk_suite(&vda, "jvmm-vda", 8192);

    /* vdb: read-only. */
    u32 ulen;
    dev_init(&vdb, 1u << F_FLUSH);
    CHECK(device_features(&vdb.t, 0) & (1u << F_RO), "vdb: VIRTIO_BLK_F_RO offered\n");
    CHECK(!(device_features(&vdb.t, 0) & (1u << F_DISCARD)), "vdb: no discard on a read-only disk\n");
    fill(&vdb, 0, 1);
    CHECK(blk(&vdb, T_OUT, 0, buf, SECTOR, 0, &ulen) == S_IOERR, "vdb: write refused with IOERR\n");
    memset(buf, 0, SECTOR);
    CHECK(blk(&vdb, T_IN, 0, buf, SECTOR, 1, &ulen) == S_OK, "vdb: read\n");
    CHECK(((u8 *)buf)[0] == 0x5a && ((u8 *)buf)[511] == 0x5a, "vdb: contents %x\n", ((u8 *)buf)[0]);
    memset(idbuf, 0, sizeof idbuf);
    CHECK(blk(&vdb, T_GET_ID, 0, idbuf, 20, 1, &ulen) == S_OK && strcmp(idbuf, "jvmm-vdb") == 0, "vdb: serial\n");
    CHECK(wait_counter(&vdb.irqs, 0), "vdb: its own interrupt line fired\n");
}

/* --- virtio-pci ------------------------------------------------------------------------------------------ */

static void pci_suite(void)
{
    puts("virtio-pci\n");
    int slot = -1, host_bridge = 0;
    for (int s = 0; s < 32; s++) {
        u32 id = pci_read32(0, s, 0, 0);
        if (id == 0xffffffffu) continue;
        if ((pci_read32(0, s, 0, 8) >> 16) == 0x0600) host_bridge = 1;
        if (id == ((0x1040u + 2) << 16 | 0x1af4)) slot = s;
    }
    CHECK(host_bridge, "a host bridge (class 06:00) on bus 0\n");
    CHECK(slot > 0, "virtio-blk 1af4:1042 found\n");
    if (slot < 0) return;
    CHECK((pci_read8(0, slot, 0, 8)) >= 1, "revision >= 1 (non-transitional)\n");
    CHECK(pci_read16(0, slot, 0, 0x2e) >= 0x40, "subsystem id >= 0x40\n");
    CHECK(pci_read16(0, slot, 0, 0x0a) == 0x0100, "class 01:00\n");

    u32 lo = pci_read32(0, slot, 0, 0x10), hi = pci_read32(0, slot, 0, 0x14);
    CHECK((lo & 0x7) == 0x4, "BAR0 is a 64-bit memory BAR (%x)\n", lo);
    pci_write32(0, slot, 0, 0x10, 0xffffffffu);
    pci_write32(0, slot, 0, 0x14, 0xffffffffu);
    u32 size = ~(pci_read32(0, slot, 0, 0x10) & ~0xfu) + 1;
    CHECK(size == 0x8000 && pci_read32(0, slot, 0, 0x14) == 0xffffffffu, "BAR0 sizes to %x\n", size);
    pci_write32(0, slot, 0, 0x10, lo);
    pci_write32(0, slot, 0, 0x14, hi);
    CHECK(hi == 0 && (lo & ~0xfu) != 0, "BAR0 placed below 4 GiB at %x\n", lo & ~0xfu);
    vdc.t.base = lo & ~0xfu;

    int msix = 0, found = 0;
    for (u8 cap = pci_read8(0, slot, 0, 0x34); cap; cap = pci_read8(0, slot, 0, cap + 1)) {
        u8 id = pci_read8(0, slot, 0, cap);
        if (id == 0x11) msix = cap;
        if (id != 0x09) continue;
        u8 type = pci_read8(0, slot, 0, cap + 3), bar = pci_read8(0, slot, 0, cap + 4);
        u32 off = pci_read32(0, slot, 0, cap + 8);
        if (bar != 0 && type != 5) continue;
        found |= 1 << type;
        if (type == 1 && !vdc.t.common) vdc.t.common = vdc.t.base + off;
        if (type == 3 && !vdc.isr) vdc.isr = vdc.t.base + off;
        if (type == 4 && !vdc.t.devcfg) vdc.t.devcfg = vdc.t.base + off;
        if (type == 2 && !vdc.notify) vdc.notify = vdc.t.base + off; /* queue 0: notify_off 0 */
    }
    CHECK((found & 0x3e) == 0x3e, "common, notify, ISR, device and PCI_CFG capabilities (%x)\n", found);
    CHECK(msix != 0, "MSI-X capability\n");
    pci_write16(0, slot, 0, 0x04, pci_read16(0, slot, 0, 0x04) | 0x6); /* memory decoding, bus master */

    /* MSI-X: entry 0 config changes, entry 1 queue 0, both to APIC 0. */
    u16 ctrl = pci_read16(0, slot, 0, msix + 2);
    u32 table = pci_read32(0, slot, 0, msix + 4);
    CHECK((table & 7) == 0 && (ctrl & 0x7ff) >= 1, "MSI-X table in BAR0 with %u vectors\n", (ctrl & 0x7ff) + 1);
    uptr t = vdc.t.base + (table & ~7u);
    mmio_write32(t + 0, 0xfee00000u); mmio_write32(t + 4, 0); mmio_write32(t + 8, VEC_PCI_CONFIG); mmio_write32(t + 12, 0);
    mmio_write32(t + 16, 0xfee00000u); mmio_write32(t + 20, 0); mmio_write32(t + 24, VEC_PCI_QUEUE); mmio_write32(t + 28, 0);
    pci_write16(0, slot, 0, msix + 2, ctrl | 0x8000);

    blk_suite(&vdc, "jvmm-vdc", 8192);

    /* A descriptor loop: the device must refuse the queue (NEEDS_RESET, config interrupt), not hang. */
    struct desc *q = (struct desc *)vdc.q;
    volatile u16 *avail = (volatile u16 *)(vdc.q + 256);
    int cfg_irqs = vdc.config_irqs;
    q[0].addr = (u32)(uptr)&hdr; q[0].len = 16; q[0].flags = D_NEXT; q[0].next = 0;
    avail[2 + vdc.avail_idx % QSZ] = 0;
    barrier();
    avail[1] = ++vdc.avail_idx;
    notify(&vdc);
    CHECK(wait_counter(&vdc.config_irqs, cfg_irqs), "vdc: configuration interrupt after a descriptor loop\n");
    CHECK(get_status(&vdc.t) & ST_NEEDS_RESET, "vdc: DEVICE_NEEDS_RESET after a descriptor loop\n");
    u32 ulen;
    dev_init(&vdc, 1u << F_FLUSH);
    CHECK(blk(&vdc, T_FLUSH, 0, 0, 0, 0, &ulen) == S_OK, "vdc: works again after reset\n");
}

static u32 parse_number(const char **p)
{
    const char *s = *p;
    u32 v = 0, base = 10;
    if (s[0] == '0' && s[1] == 'x') { base = 16; s += 2; }
    for (;; s++) {
        u32 d;
        if (*s >= '0' && *s <= '9') d = (u32)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f') d = (u32)(*s - 'a' + 10);
        else break;
        v = v * base + d;
    }
    *p = s;
    return v;
}

/* The n-th "virtio_mmio.device=<size>K@<base>:<irq>" of the command line; 0 if absent or malformed. */
static int find_mmio_device(const char *cmdline, int n, u32 *base, u32 *irq)
{
    static const char key[] = "virtio_mmio.device=";
    for (const char *p = cmdline; *p; p++) {
        if (strncmp(p, key, sizeof key - 1) != 0) continue;
        if (n-- > 0) continue;
        const char *s = p + sizeof key - 1;
        u32 size = parse_number(&s);
        if (*s++ != 'K' || *s++ != '@' || size != 4) return 0;
        *base = parse_number(&s);
        if (*s++ != ':') return 0;
        *irq = parse_number(&s);
        return 1;
    }
    return 0;
}

int guest_main(u32 magic, u32 info)
{
    puts("virtio suite\n");
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uptr)info;
    const char *cmdline = magic == MULTIBOOT_BOOTLOADER_MAGIC && mbi && (mbi->flags & 4) ? (const char *)(uptr)mbi->cmdline : "";
    printf("cmdline: %s\n", cmdline);
    u32 a, b;
    int ok = find_mmio_device(cmdline, 0, &a, &vda_gsi) && find_mmio_device(cmdline, 1, &b, &vdb_gsi);
    CHECK(ok && vda_gsi < 24 && vdb_gsi < 24, "two virtio-mmio devices on the command line\n");
    if (!ok || vda_gsi >= 24 || vdb_gsi >= 24) return guest_result();
    vda.t.base = a;
    vdb.t.base = b;
    interrupts_init();
    mmio_suite();
    pci_suite();
    CHECK(unexpected_irqs == 0, "no unexpected interrupts (%d)\n", unexpected_irqs);
    return guest_result();
}
