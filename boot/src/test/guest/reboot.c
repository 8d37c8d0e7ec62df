/* Says it booted, then reboots the machine through the FADT's reset register (port 0x606, value 0x0f), as Linux
 * does with reboot=a. Every boot is a fresh machine, so the guest keeps no count: the host counts the lines. */
#include "guest.h"

#define ACPI_RESET_PORT 0x606
#define ACPI_RESET_VALUE 0x0f

int guest_main(u32 magic, u32 info)
{
    (void)magic;
    (void)info;
    puts("reboot guest: booted\n");
    outb(ACPI_RESET_PORT, ACPI_RESET_VALUE);
    for (int i = 0; i < 1000000; i++) cpu_relax();
    puts("still running after reset\n");
    return 2;
}
