#include "guest.h"
#include <stdarg.h>

int checks_failed, checks_passed;

void guest_exit(int code)
{
    /* isa-debug-exit: the VMM exits with (code << 1) | 1. */
    outl(DEBUG_EXIT_PORT, (u32)code);
    for (;;) __asm__ volatile("cli; hlt");
}

int guest_result(void)
{
    printf("checks: %d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

void putc_debugcon(char c) { outb(DEBUGCON_PORT, (u8)c); }

void puts(const char *s) { while (*s) putc_debugcon(*s++); }

static void put_unsigned(unsigned long long v, unsigned base, int width, char pad)
{
    char buf[24];
    int n = 0;
    do { buf[n++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
    while (n < width) buf[n++] = pad;
    while (n) putc_debugcon(buf[--n]);
}

void printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') { putc_debugcon(*fmt); continue; }
        fmt++;
        char pad = ' ';
        int width = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        int is_long_long = 0;
        while (*fmt == 'l') { is_long_long++; fmt++; }
        switch (*fmt) {
        case 's': puts(va_arg(ap, const char *)); break;
        case 'c': putc_debugcon((char)va_arg(ap, int)); break;
        case 'd': {
            long long v = is_long_long >= 2 ? va_arg(ap, long long) : va_arg(ap, int);
            if (v < 0) { putc_debugcon('-'); v = -v; }
            put_unsigned((unsigned long long)v, 10, width, pad);
            break;
        }
        case 'u': put_unsigned(is_long_long >= 2 ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned), 10, width, pad); break;
        case 'x': put_unsigned(is_long_long >= 2 ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned), 16, width, pad); break;
        case 'p': puts("0x"); put_unsigned((uptr)va_arg(ap, void *), 16, 8, '0'); break;
        case '%': putc_debugcon('%'); break;
        default: putc_debugcon('?'); break;
        }
    }
    va_end(ap);
}

void *memset(void *d, int c, unsigned long n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
void *memcpy(void *d, const void *s, unsigned long n) { u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }
int memcmp(const void *a, const void *b, unsigned long n)
{
    const u8 *p = a, *q = b;
    for (; n; n--, p++, q++) if (*p != *q) return *p - *q;
    return 0;
}
unsigned long strlen(const char *s) { unsigned long n = 0; while (s[n]) n++; return n; }
int strcmp(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return (u8)*a - (u8)*b; }
int strncmp(const char *a, const char *b, unsigned long n)
{
    for (; n; n--, a++, b++) { if (*a != *b) return (u8)*a - (u8)*b; if (!*a) return 0; }
    return 0;
}

static u8 checksum(const u8 *p, u32 n) { u8 s = 0; while (n--) s += *p++; return s; }

static const u8 *mp_scan(u32 base, u32 len)
{
    for (u32 a = base; a + 16 <= base + len; a += 16) {
        const u8 *p = (const u8 *)(uptr)a;
        if (p[0] == '_' && p[1] == 'M' && p[2] == 'P' && p[3] == '_' && checksum(p, 16) == 0) return p;
    }
    return 0;
}

int mp_find_cpus(struct mp_cpu *cpus, int max, u32 *ioapic_addr)
{
    /* The spec's search order: the EBDA's first KiB, the last KiB of base memory, the BIOS ROM area. */
    u32 ebda = (u32)(*(volatile u16 *)0x40e) << 4;
    const u8 *fp = ebda ? mp_scan(ebda, 1024) : 0;
    if (!fp) fp = mp_scan(0x9fc00, 1024);
    if (!fp) fp = mp_scan(0xf0000, 0x10000);
    if (!fp) return -1;
    const u8 *cfg = (const u8 *)(uptr)*(const u32 *)(fp + 4);
    if (!cfg || cfg[0] != 'P' || cfg[1] != 'C' || cfg[2] != 'M' || cfg[3] != 'P') return -1;
    u16 base_len = *(const u16 *)(cfg + 4);
    if (checksum(cfg, base_len) != 0) return -1;
    u16 count = *(const u16 *)(cfg + 34);
    const u8 *e = cfg + 44;
    int n = 0;
    for (u16 i = 0; i < count && e < cfg + base_len; i++) {
        switch (e[0]) {
        case 0: /* processor */
            if (n < max) { cpus[n].apic_id = e[1]; cpus[n].flags = e[3]; }
            n++;
            e += 20;
            break;
        case 2: /* I/O APIC */
            if (ioapic_addr) *ioapic_addr = *(const u32 *)(e + 4);
            e += 8;
            break;
        default: /* bus, I/O interrupt, local interrupt */
            e += 8;
            break;
        }
    }
    return n;
}

static u32 pci_addr(u8 bus, u8 dev, u8 fn, u8 off)
{
    return 0x80000000u | ((u32)bus << 16) | ((u32)dev << 11) | ((u32)fn << 8) | (off & 0xfc);
}
u32 pci_read32(u8 bus, u8 dev, u8 fn, u8 off) { outl(0xcf8, pci_addr(bus, dev, fn, off)); return inl(0xcfc); }
void pci_write32(u8 bus, u8 dev, u8 fn, u8 off, u32 v) { outl(0xcf8, pci_addr(bus, dev, fn, off)); outl(0xcfc, v); }
u16 pci_read16(u8 bus, u8 dev, u8 fn, u8 off) { outl(0xcf8, pci_addr(bus, dev, fn, off)); return inw(0xcfc + (off & 2)); }
u8 pci_read8(u8 bus, u8 dev, u8 fn, u8 off) { outl(0xcf8, pci_addr(bus, dev, fn, off)); return inb(0xcfc + (off & 3)); }
void pci_write16(u8 bus, u8 dev, u8 fn, u8 off, u16 v) { outl(0xcf8, pci_addr(bus, dev, fn, off)); outw(0xcfc + (off & 2), v); }
