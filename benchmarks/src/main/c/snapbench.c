/*
 * The snapshot benchmark's guest (multiboot): dirties the share of its RAM the command line asks for
 * ("touch=MIB": one word in every 4 KiB page from 16 MiB up, so each of those pages is saved and none of the rest),
 * says "ready" on the UART, then echoes every byte it receives there. Polled, not interrupt-driven, so its first
 * instruction after a restore is an exit the host can see, and the echo is the guest answering on its console.
 */
#include "guest.h"

#define COM1 0x3f8
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20
#define TOUCH_FROM (16u << 20)
#define PAGE 4096u

static void uart_put(char c) {
    while (!(inb(COM1 + 5) & LSR_THR_EMPTY)) cpu_relax();
    outb(COM1, (u8)c);
}

static u32 touch_mib(const char *c) {
    for (; *c; c++) {
        if (strncmp(c, "touch=", 6)) continue;
        u32 v = 0;
        for (c += 6; *c >= '0' && *c <= '9'; c++) v = v * 10 + (u32)(*c - '0');
        return v;
    }
    return 0;
}

int guest_main(u32 magic, u32 info) {
    (void)magic;
    struct multiboot_info *mb = (struct multiboot_info *)(uptr)info;
    u32 ram_end = (1u << 20) + mb->mem_upper * 1024u; /* contiguous RAM from 1 MiB, below the PCI hole */
    u32 mib = (mb->flags & 4) ? touch_mib((const char *)(uptr)mb->cmdline) : 0;
    u32 end = TOUCH_FROM + mib * (1u << 20);
    if (mib && (end < TOUCH_FROM || end > ram_end)) {
        printf("touch=%u MiB does not fit below 0x%x\n", mib, ram_end);
        return 1;
    }
    for (u32 a = TOUCH_FROM; a < end && a >= TOUCH_FROM; a += PAGE) *(volatile u32 *)(uptr)a = a ^ 0x5eed5eedu;
    for (const char *s = "ready\n"; *s; s++) uart_put(*s);
    for (;;) {
        if (inb(COM1 + 5) & LSR_DATA_READY) uart_put((char)inb(COM1));
    }
}
