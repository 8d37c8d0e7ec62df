/*
 * The API tests' guest: says it booted (with its command line), then prints a dot every few million TSC ticks
 * so a test can see whether its vCPU runs (a paused VM prints none), and polls the ACPI power button's status
 * bit (PM1_STS at 0x600, PWRBTN_STS) as an OS's handler would see it: when the host presses the button it says
 * so and powers off through PM1a_CNT (SLP_TYP 5, SLP_EN), which ends the run with a power-off.
 */
#include "guest.h"

#define PM1_STS 0x600
#define PM1_CNT 0x604
#define PWRBTN_STS (1 << 8)
#define TICK_TSC 20000000ULL

int guest_main(u32 magic, u32 info)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uptr)info;
    const char *cmdline = (magic == MULTIBOOT_BOOTLOADER_MAGIC && (mbi->flags & 4)) ? (const char *)(uptr)mbi->cmdline : "";
    printf("api guest: booted, cmdline=%s\n", cmdline);
    u64 next = rdtsc() + TICK_TSC;
    for (;;) {
        if (inw(PM1_STS) & PWRBTN_STS) {
            outw(PM1_STS, PWRBTN_STS);
            puts("\napi guest: power button\n");
            outw(PM1_CNT, (5 << 10) | (1 << 13));
            return 3; /* still running after S5: the test sees exit code 3 instead of a power-off */
        }
        if (rdtsc() >= next) {
            putc_debugcon('.');
            next = rdtsc() + TICK_TSC;
        }
        cpu_relax();
    }
}
