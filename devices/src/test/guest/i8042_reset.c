/* Probes the keyboard controller as Linux's i8042 driver does, then resets the machine with command 0xFE
 * (Linux's reboot=k). Reaching the end is a failure: the reset must have ended the run. */
#include "guest.h"

#define DATA 0x60
#define STATUS 0x64
#define OBF 0x01

static int read_data(void)
{
    for (int i = 0; i < 100000; i++)
        if (inb(STATUS) & OBF) return inb(DATA);
    return -1;
}

static int command(u8 cmd)
{
    outb(STATUS, cmd);
    return read_data();
}

int guest_main(u32 magic, u32 info)
{
    (void)magic;
    (void)info;
    while (inb(STATUS) & OBF) (void)inb(DATA); /* flush */
    CHECK(command(0xaa) == 0x55, "self test");
    CHECK(command(0xab) == 0x00, "keyboard interface test");
    int ctr = command(0x20);
    CHECK(ctr >= 0, "command byte");
    outb(STATUS, 0x60);
    outb(DATA, (u8)(ctr | 0x10));
    CHECK(command(0x20) == (ctr | 0x10), "command byte written");
    printf("i8042 probed, checks failed: %d; resetting\n", checks_failed);
    if (checks_failed) return 1;
    outb(STATUS, 0xfe);
    for (int i = 0; i < 1000000; i++) cpu_relax();
    puts("still running after reset\n");
    return 2;
}
