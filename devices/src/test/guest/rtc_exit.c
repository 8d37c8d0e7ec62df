/* Reads the CMOS clock and memory bytes, prints them for the test to compare with the host, checks the
 * small devices (debugcon read-back, port 0x80), checks the RTC's update interrupt reaches the LAPIC through
 * IOAPIC pin 8 (as hwclock's wait for a clock tick needs), and ends through isa-debug-exit with code 42. */
#include "guest.h"

static u8 cmos(u8 reg)
{
    outb(0x70, (u8)(0x80 | reg)); /* with NMIs masked, as Linux does */
    return inb(0x71);
}

#define LAPIC 0xfee00000u
#define IOAPIC 0xfec00000u
#define RTC_VECTOR 0x38

static void cmos_write(u8 reg, u8 v)
{
    outb(0x70, (u8)(0x80 | reg));
    outb(0x71, v);
}

static int lapic_irr(u8 vector)
{
    return (mmio_read32(LAPIC + 0x200 + (vector / 32) * 0x10) >> (vector % 32)) & 1;
}

/* Enables the update-ended interrupt and looks for it at the LAPIC with interrupts off (IF=0): it must be
 * pending within the second after the clock's seconds change. */
static void check_update_interrupt(void)
{
    outb(0x21, 0xff); /* the PIC also sees IRQ 8: keep it out of the way */
    outb(0xa1, 0xff);
    mmio_write32(LAPIC + 0xf0, 0x1ff);
    mmio_write32(LAPIC + 0x80, 0);
    /* Redirection entry 8: fixed, physical APIC 0, edge, active high, unmasked. */
    mmio_write32(IOAPIC, 0x10 + 2 * 8 + 1);
    mmio_write32(IOAPIC + 0x10, 0);
    mmio_write32(IOAPIC, 0x10 + 2 * 8);
    mmio_write32(IOAPIC + 0x10, RTC_VECTOR);

    (void)cmos(0x0c);
    CHECK(!lapic_irr(RTC_VECTOR), "no RTC interrupt before it is enabled");
    cmos_write(0x0b, 0x12); /* UIE, 24 hour, BCD */
    u8 s0 = cmos(0x00);
    while (cmos(0x00) == s0) cpu_relax();
    u8 s1 = cmos(0x00);
    int pending = 0;
    while (!(pending = lapic_irr(RTC_VECTOR)) && cmos(0x00) == s1) cpu_relax();
    CHECK(pending, "update interrupt pending at the LAPIC within a second");
    u8 c = cmos(0x0c);
    CHECK((c & 0x90) == 0x90, "status C %x: IRQF and UF", c);
    cmos_write(0x0b, 0x02);
    c = cmos(0x0c);
    CHECK((c & 0x80) == 0, "status C %x: no IRQF once disabled", c);
    printf("rtc update interrupt %s\n", pending ? "seen" : "missing");
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
    check_update_interrupt();
    return guest_result() == 0 ? 42 : 1;
}
