/*
 * The named-VM tests' guest: the api guest (a dot on debugcon every few million TSC ticks, so a test sees whether
 * its vCPU runs; powers off when the ACPI power button is pressed) with a serial console: it says it booted on the
 * UART at 0x3f8, and answers every line typed there with "echo: LINE". It polls the UART, as a boot loader does.
 */
#include "guest.h"

#define COM1 0x3f8
#define LSR (COM1 + 5)
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define PM1_STS 0x600
#define PM1_CNT 0x604
#define PWRBTN_STS (1 << 8)
#define TICK_TSC 20000000ULL

static void serial_putc(char c)
{
    while (!(inb(LSR) & LSR_THRE))
        cpu_relax();
    outb(COM1, c);
}

static void serial_puts(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            serial_putc('\r');
        serial_putc(*s);
    }
}

int guest_main(u32 magic, u32 info)
{
    (void)magic;
    (void)info;
    char line[128];
    unsigned n = 0;
    puts("console guest: booted\n");
    serial_puts("console guest: booted\n");
    u64 next = rdtsc() + TICK_TSC;
    for (;;) {
        if (inw(PM1_STS) & PWRBTN_STS) {
            outw(PM1_STS, PWRBTN_STS);
            serial_puts("console guest: power button\n");
            outw(PM1_CNT, (5 << 10) | (1 << 13));
            return 3; /* still running after S5 */
        }
        if (inb(LSR) & LSR_DR) {
            char c = (char)inb(COM1);
            if (c == '\r' || c == '\n') {
                if (n > 0) {
                    line[n] = 0;
                    serial_puts("echo: ");
                    serial_puts(line);
                    serial_puts("\n");
                }
                n = 0;
            } else if (n < sizeof line - 1) {
                line[n++] = c;
            }
        }
        if (rdtsc() >= next) {
            putc_debugcon('.');
            next = rdtsc() + TICK_TSC;
        }
        cpu_relax();
    }
}
