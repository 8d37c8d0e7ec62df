/* Reads the CMOS clock and memory bytes, prints them for the test to compare with the host, checks the
 * small devices (debugcon read-back, port 0x80), and ends through isa-debug-exit with code 42. */
#include "guest.h"

static u8 cmos(u8 reg)
{
    outb(0x70, (u8)(0x80 | reg)); /* with NMIs masked, as Linux does */
    return inb(0x71);
}

static u32 bcd(u8 v) { return (v >> 4) * 10u + (v & 0xf); }

int guest_main(u32 magic, u32 info)
{
    (void)magic;
    (void)info;
    CHECK(inb(0xe9) == 0xe9, "debugcon read-back");
    outb(0x80, 0x12);
    CHECK(inb(0x80) == 0xff, "port 0x80 floats");
    CHECK((cmos(0x0d) & 0x80) != 0, "RTC valid");
    CHECK((cmos(0x0b) & 0x06) == 0x02, "BCD, 24 hour");

    /* Read the time twice around the update cycle, as mc146818_get_time does. */
    u8 sec, min, hour, day, mon, year, cent;
    for (;;) {
        while (cmos(0x0a) & 0x80) cpu_relax();
        sec = cmos(0x00);
        min = cmos(0x02);
        hour = cmos(0x04);
        day = cmos(0x07);
        mon = cmos(0x08);
        year = cmos(0x09);
        cent = cmos(0x32);
        if (!(cmos(0x0a) & 0x80) && cmos(0x00) == sec) break;
    }
    printf("rtc %u%02u-%02u-%02u %02u:%02u:%02u\n", bcd(cent), bcd(year), bcd(mon), bcd(day), bcd(hour),
           bcd(min), bcd(sec));
    printf("cmos base=%u ext=%u ext16=%u\n", cmos(0x15) | (u32)cmos(0x16) << 8, cmos(0x17) | (u32)cmos(0x18) << 8,
           cmos(0x34) | (u32)cmos(0x35) << 8);
    return guest_result() == 0 ? 42 : 1;
}
