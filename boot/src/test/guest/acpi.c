/*
 * ACPI test kernel: finds the RSDP as Linux does (the EBDA's first KiB, then 0xE0000-0xFFFFF on 16-byte
 * boundaries), walks RSDP -> XSDT -> MADT and FADT -> DSDT checking every checksum, counts the enabled
 * processors in the MADT, reads SLP_TYPa from the DSDT's \_S5 package and then powers off through the
 * FADT's PM1a control block (SLP_TYP | SLP_EN), or with "reset" on its command line resets through the
 * FADT's reset register. Either should end the VM; if the guest is still running it exits with code 1.
 */
#include "guest.h"

static u8 sum(const u8 *p, u32 n)
{
    u8 s = 0;
    while (n--) s += *p++;
    return s;
}

static const u8 *scan_rsdp(u32 start, u32 len)
{
    for (u32 a = start; a + 36 <= start + len; a += 16) {
        const u8 *p = (const u8 *)(uptr)a;
        if (memcmp(p, "RSD PTR ", 8) == 0 && sum(p, 20) == 0) return p;
    }
    return 0;
}

/* A table at a 64-bit physical address, if it is below 4 GiB, has this signature and a good checksum. */
static const u8 *table(u64 addr, const char *sig)
{
    if (addr == 0 || addr >> 32) return 0;
    const u8 *t = (const u8 *)(uptr)(u32)addr;
    u32 len = *(const u32 *)(t + 4);
    if (memcmp(t, sig, 4) != 0 || len < 36) return 0;
    CHECK(sum(t, len) == 0, "%s checksum", sig);
    return t;
}

static int contains(const char *s, const char *word)
{
    unsigned long n = strlen(word);
    for (; s && *s; s++)
        if (strncmp(s, word, n) == 0) return 1;
    return 0;
}

/* An AML integer at p (Zero, One, BytePrefix); -1 for anything else. */
static int aml_small_int(const u8 *p)
{
    if (p[0] == 0x00) return 0;
    if (p[0] == 0x01) return 1;
    if (p[0] == 0x0a) return p[1];
    return -1;
}

int guest_main(u32 magic, u32 info)
{
    CHECK(magic == MULTIBOOT_BOOTLOADER_MAGIC, "multiboot magic %x", magic);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uptr)info;
    const char *cmdline = (mbi->flags & 4) ? (const char *)(uptr)mbi->cmdline : "";

    u32 ebda = (u32)(*(volatile u16 *)0x40e) << 4;
    const u8 *rsdp = ebda ? scan_rsdp(ebda, 1024) : 0;
    if (!rsdp) rsdp = scan_rsdp(0xe0000, 0x20000);
    CHECK(rsdp != 0, "RSDP found");
    if (!rsdp) return guest_result();
    printf("rsdp at %x revision %u\n", (u32)(uptr)rsdp, rsdp[15]);
    CHECK(rsdp[15] >= 2, "ACPI 2.0+ RSDP");
    CHECK(sum(rsdp, *(const u32 *)(rsdp + 20)) == 0, "RSDP extended checksum");
    const u8 *xsdt = table(*(const u64 *)(rsdp + 24), "XSDT");
    CHECK(xsdt != 0, "XSDT");
    if (!xsdt) return guest_result();

    const u8 *madt = 0, *fadt = 0;
    u32 n = (*(const u32 *)(xsdt + 4) - 36) / 8;
    for (u32 i = 0; i < n; i++) {
        u64 a = *(const u64 *)(xsdt + 36 + 8 * i);
        if (!madt) madt = table(a, "APIC");
        if (!fadt) fadt = table(a, "FACP");
    }
    CHECK(madt != 0 && fadt != 0, "MADT and FADT listed in the XSDT");
    if (!madt || !fadt) return guest_result();

    int cpus = 0, ioapics = 0;
    u32 madt_len = *(const u32 *)(madt + 4);
    for (u32 off = 44; off + 2 <= madt_len; off += madt[off + 1]) {
        const u8 *e = madt + off;
        if (e[1] < 2) break;
        if (e[0] == 0 && (*(const u32 *)(e + 4) & 1)) {
            CHECK(e[3] == cpus, "processor %d has APIC id %u", cpus, e[3]);
            cpus++;
        } else if (e[0] == 9 && (*(const u32 *)(e + 8) & 1)) {
            cpus++;
        } else if (e[0] == 1) {
            CHECK(*(const u32 *)(e + 4) == 0xfec00000u, "IOAPIC address");
            ioapics++;
        }
    }
    printf("madt: %d cpus, %d ioapic\n", cpus, ioapics);
    CHECK(ioapics == 1, "one IOAPIC");

    /* FADT: the 64-bit DSDT pointer and the PM1a control block (X_ form when present). */
    u64 dsdt_addr = *(const u64 *)(fadt + 140);
    if (!dsdt_addr) dsdt_addr = *(const u32 *)(fadt + 40);
    const u8 *dsdt = table(dsdt_addr, "DSDT");
    CHECK(dsdt != 0, "DSDT");
    if (!dsdt) return guest_result();
    u16 pm1a_cnt = (u16)(fadt[172] == 1 ? *(const u64 *)(fadt + 176) : *(const u32 *)(fadt + 64));
    CHECK(pm1a_cnt != 0, "PM1a control block");

    /* \_S5: NameOp '\' "_S5_" PackageOp PkgLength NumElements SLP_TYPa ... */
    int slp_typ = -1;
    u32 dsdt_len = *(const u32 *)(dsdt + 4);
    for (u32 i = 36; i + 9 < dsdt_len; i++) {
        if (memcmp(dsdt + i, "_S5_", 4) == 0 && dsdt[i + 4] == 0x12) {
            const u8 *pkg = dsdt + i + 5;
            if (pkg[0] & 0xc0) break; /* a one-byte PkgLength is all a four-integer package needs */
            slp_typ = aml_small_int(pkg + 2);
            break;
        }
    }
    printf("S5 SLP_TYP %d, PM1a_CNT at %x\n", slp_typ, pm1a_cnt);
    CHECK(slp_typ >= 0 && slp_typ <= 7, "SLP_TYPa from \\_S5");
    if (checks_failed) return guest_result();

    if (contains(cmdline, "reset")) {
        CHECK(*(const u32 *)(fadt + 112) & (1 << 10), "RESET_REG_SUP");
        CHECK(fadt[116] == 1, "reset register in port I/O");
        u16 port = (u16)*(const u64 *)(fadt + 120);
        printf("reset through port %x value %x\n", port, fadt[128]);
        outb(port, fadt[128]);
    } else {
        u16 cnt = inw(pm1a_cnt);
        CHECK(cnt & 1, "SCI_EN: in ACPI mode");
        puts("powering off\n");
        cnt = (u16)((cnt & ~0x3c00) | (slp_typ << 10));
        outw(pm1a_cnt, cnt);
        outw(pm1a_cnt, cnt | (1 << 13));
    }
    for (volatile int i = 0; i < 1000000; i++) cpu_relax();
    puts("FAIL: still running\n");
    return 1;
}
