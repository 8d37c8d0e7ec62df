/* The demo guest: says hello on the serial console, shows what it was given, and ends the run. */
#include "guest.h"

#define COM1 0x3f8

static void serial_putc(char c)
{
    if (c == '\n') serial_putc('\r');
    while (!(inb(COM1 + 5) & 0x20)) cpu_relax(); /* wait for THR empty */
    outb(COM1, (u8)c);
}

static void say(const char *s) { while (*s) serial_putc(*s++); }

static void say_num(u32 v)
{
    char buf[12];
    int n = 0;
    do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) serial_putc(buf[--n]);
}

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

int guest_main(u32 magic, u32 info_addr)
{
    struct multiboot_info *info = (struct multiboot_info *)(uptr)info_addr;
    say("Hello from a jvmm guest!\n");
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
        say("not started by a multiboot loader\n");
        return 1;
    }
    u32 a, b, c, d;
    char vendor[13];
    cpuid(0, &a, &b, &c, &d);
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    say("CPU vendor: ");
    say(vendor);
    struct mp_cpu cpus[32];
    int n = mp_find_cpus(cpus, 32, 0);
    say("\nvCPUs: ");
    say_num(n < 0 ? 0 : (u32)n);
    say("\nmemory: ");
    say_num((info->mem_upper + 1024) / 1024);
    say(" MiB\ncommand line: ");
    say((const char *)(uptr)info->cmdline);
    say("\nBye: powering off through ACPI ends the run.\n");
    /* ACPI soft-off (S5): PM1a_CNT at 0x604 (the FADT's), SLP_TYP 5 (the DSDT's \_S5) with SLP_EN. A reset would
     * boot the demo again, as QEMU does. */
    outw(0x604, (5 << 10) | (1 << 13));
    for (;;) __asm__ volatile("cli; hlt");
}
