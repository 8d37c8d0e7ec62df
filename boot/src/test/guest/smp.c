/*
 * SMP test kernel: reads the MP table, checks it lists every vCPU with APIC ids 0..n-1 and vCPU 0 as the
 * bootstrap processor, then wakes each application processor with INIT-SIPI-SIPI into a real-mode
 * trampoline that records its own APIC id (from CPUID). Passes when every listed CPU came up.
 */
#include "guest.h"

#define LAPIC 0xfee00000u
#define ICR_LOW 0x300
#define ICR_HIGH 0x310
#define TRAMPOLINE 0x8000u
#define SEEN_BITMAP 0x7f00u

extern const u8 ap_trampoline_start[], ap_trampoline_end[];
__asm__(
    ".code16\n"
    ".globl ap_trampoline_start, ap_trampoline_end\n"
    "ap_trampoline_start:\n"
    "  cli\n"
    "  xor %ax, %ax\n"
    "  mov %ax, %ds\n"
    "  mov $1, %eax\n"
    "  cpuid\n"
    "  shr $24, %ebx\n"
    "  lock btsl %ebx, 0x7f00\n"
    "1: hlt\n"
    "  jmp 1b\n"
    "ap_trampoline_end:\n"
    ".code32\n");

static void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC + reg, v); }
static u32 lapic_read(u32 reg) { return mmio_read32(LAPIC + reg); }

static void wait_icr_idle(void)
{
    for (int i = 0; i < 1000000 && (lapic_read(ICR_LOW) & (1 << 12)); i++) cpu_relax();
}

static void delay(int n) { for (volatile int i = 0; i < n; i++) cpu_relax(); }

int guest_main(u32 magic, u32 info)
{
    (void)info;
    CHECK(magic == MULTIBOOT_BOOTLOADER_MAGIC, "multiboot magic %x", magic);
    struct mp_cpu cpus[64];
    u32 ioapic = 0;
    int n = mp_find_cpus(cpus, 64, &ioapic);
    printf("mp table: %d cpus, ioapic at %x\n", n, ioapic);
    CHECK(n >= 1, "MP table found");
    CHECK(ioapic == 0xfec00000u, "IOAPIC at %x", ioapic);
    u32 bsp_id = lapic_read(0x20) >> 24;
    CHECK(bsp_id == 0, "BSP APIC id %u", bsp_id);
    for (int i = 0; i < n; i++) {
        CHECK(cpus[i].apic_id == i, "cpu %d has APIC id %u", i, cpus[i].apic_id);
        CHECK((cpus[i].flags & 1) != 0, "cpu %d enabled", i);
        CHECK(((cpus[i].flags & 2) != 0) == (i == 0), "only cpu 0 is the BSP (cpu %d flags %x)", i, cpus[i].flags);
    }

    memcpy((void *)TRAMPOLINE, ap_trampoline_start, (unsigned long)(ap_trampoline_end - ap_trampoline_start));
    *(volatile u32 *)SEEN_BITMAP = 1u << bsp_id;
    lapic_write(0xf0, lapic_read(0xf0) | 0x100); /* software-enable the local APIC */
    for (int i = 0; i < n; i++) {
        if (cpus[i].apic_id == bsp_id) continue;
        lapic_write(ICR_HIGH, (u32)cpus[i].apic_id << 24);
        lapic_write(ICR_LOW, 0x4500); /* INIT, assert */
        wait_icr_idle();
        delay(1000);
        for (int sipi = 0; sipi < 2; sipi++) {
            lapic_write(ICR_HIGH, (u32)cpus[i].apic_id << 24);
            lapic_write(ICR_LOW, 0x4600 | (TRAMPOLINE >> 12)); /* STARTUP at 0x8000 */
            wait_icr_idle();
            delay(200);
        }
    }
    u32 want = n >= 32 ? 0xffffffffu : (1u << n) - 1;
    u32 seen = 0;
    for (u64 start = rdtsc(); rdtsc() - start < HOST_WAIT_TSC && (seen = *(volatile u32 *)SEEN_BITMAP) != want;) cpu_relax();
    printf("started: %x of %x\n", seen, want);
    CHECK(seen == want, "every CPU came up: %x of %x", seen, want);
    printf("cpus=%d\n", n);
    return guest_result();
}
