/*
 * A guest-side virtio-net driver test: minimal polling drivers for a virtio-mmio NIC (announced on the multiboot
 * command line, as Linux takes it: virtio_mmio.device=4K@0xd0000000:5) and a virtio-pci NIC (found on bus 0),
 * each attached by the host to jvmm's user-mode network. On each NIC the guest:
 *   - checks the MAC address and link status in configuration space (expected MACs on the command line:
 *     mac0=525400123456 for the mmio NIC, mac1=... for the pci one),
 *   - sends an ARP request for 10.0.2.2 and waits for the gateway's reply,
 *   - sends a runt frame (the device must drop it and keep going) and a DHCPDISCOVER, and waits for a
 *     DHCPOFFER of 10.0.2.15.
 * With "peer=tap" on the command line both NICs are TAPs on one bridge with a Linux peer at 10.0.2.2: only the
 * ARP exchange (and the runt frame) is done, and the reply may come from any MAC.
 * The mmio NIC runs without, the pci NIC with VIRTIO_NET_F_MRG_RXBUF. Interrupts stay off: the driver polls the
 * used rings (the blk suite covers interrupts). Results go to debugcon; the exit code is 0 when all checks pass.
 */
#include "guest.h"
#include "virtio_transport.h"

#define QSZ 16
#define RXBUFS 8
#define BUFSZ 2048
#define HDR 12
#define F_MAC 5
#define F_MRG_RXBUF 15
#define F_STATUS 16
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define D_WRITE 2

struct desc { u64 addr; u32 len; u16 flags; u16 next; } __attribute__((packed));

struct nic {
    const char *name;
    struct vtransport t;
    uptr notify[2];
    u8 *q[2];                 /* per queue: desc at 0, avail at 256, used at 512 */
    u16 avail_idx[2], used_seen[2];
    u8 mac[6];
    u8 (*rx)[BUFSZ];
    int mergeable;
};

static u8 qmem[2][2][4096] __attribute__((aligned(4096)));
static u8 rxmem[2][RXBUFS][BUFSZ] __attribute__((aligned(64)));
static u8 txbuf[BUFSZ] __attribute__((aligned(64)));
static struct nic nics[2] = {
    { "net-mmio", {0, 0, 0, 0}, {0, 0}, {qmem[0][0], qmem[0][1]}, {0, 0}, {0, 0}, {0}, rxmem[0], 0 },
    { "net-pci", {1, 0, 0, 0}, {0, 0}, {qmem[1][0], qmem[1][1]}, {0, 0}, {0, 0}, {0}, rxmem[1], 1 },
};

static const u8 GATEWAY_MAC[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
static const u8 BROADCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static int tap_peer;

/* --- transport access -------------------------------------------------------------------------------- */

static u8 cfg8(struct nic *n, u32 off)
{
    return n->t.pci ? mmio_read8(n->t.devcfg + off) : mmio_read8(n->t.base + 0x100 + off);
}


static void kick(struct nic *n, int qi)
{
    barrier();
    if (n->t.pci) mmio_write16(n->notify[qi], (u16)qi); else mw(&n->t, 0x50, (u32)qi);
}

static u32 notify_base, notify_multiplier;

static void setup_queue(struct nic *n, int qi)
{
    u32 desc = (u32)(uptr)n->q[qi], avail = desc + 256, used = desc + 512;
    memset(n->q[qi], 0, 4096);
    n->avail_idx[qi] = n->used_seen[qi] = 0;
    if (n->t.pci) {
        mmio_write16(n->t.common + 0x16, (u16)qi);
        mmio_write16(n->t.common + 0x18, QSZ);
        mmio_write32(n->t.common + 0x20, desc); mmio_write32(n->t.common + 0x24, 0);
        mmio_write32(n->t.common + 0x28, avail); mmio_write32(n->t.common + 0x2c, 0);
        mmio_write32(n->t.common + 0x30, used); mmio_write32(n->t.common + 0x34, 0);
        n->notify[qi] = notify_base + mmio_read16(n->t.common + 0x1e) * notify_multiplier;
        mmio_write16(n->t.common + 0x1c, 1);
    } else {
        mw(&n->t, 0x30, (u32)qi);
        mw(&n->t, 0x38, QSZ);
        mw(&n->t, 0x80, desc); mw(&n->t, 0x84, 0);
        mw(&n->t, 0x90, avail); mw(&n->t, 0x94, 0);
        mw(&n->t, 0xa0, used); mw(&n->t, 0xa4, 0);
        mw(&n->t, 0x44, 1);
    }
}

static void post_rx(struct nic *n, u16 id)
{
    struct desc *t = (struct desc *)n->q[0];
    volatile u16 *avail = (volatile u16 *)(n->q[0] + 256);
    t[id].addr = (u32)(uptr)n->rx[id];
    t[id].len = BUFSZ;
    t[id].flags = D_WRITE;
    t[id].next = 0;
    avail[2 + n->avail_idx[0] % QSZ] = id;
    barrier();
    avail[1] = ++n->avail_idx[0];
}

static int nic_init(struct nic *n)
{
    set_status(&n->t, 0);
    CHECK(get_status(&n->t) == 0, "%s: status 0 after reset\n", n->name);
    set_status(&n->t, ST_ACK);
    set_status(&n->t, ST_ACK | ST_DRIVER);
    u32 f0 = device_features(&n->t, 0), f1 = device_features(&n->t, 1);
    u32 want = (1u << F_MAC) | (1u << F_STATUS) | (n->mergeable ? 1u << F_MRG_RXBUF : 0);
    CHECK((f1 & 1) && (f0 & want) == want, "%s: features %x %x offered\n", n->name, f1, f0);
    driver_features(&n->t, 0, f0 & want);
    driver_features(&n->t, 1, 1);
    set_status(&n->t, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    CHECK(get_status(&n->t) & ST_FEATURES_OK, "%s: FEATURES_OK kept\n", n->name);
    setup_queue(n, 0);
    setup_queue(n, 1);
    for (u16 i = 0; i < RXBUFS; i++) post_rx(n, i);
    set_status(&n->t, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    CHECK(get_status(&n->t) == (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK), "%s: DRIVER_OK (status %x)\n", n->name, get_status(&n->t));
    kick(n, 0);
    for (int i = 0; i < 6; i++) n->mac[i] = cfg8(n, (u32)i);
    CHECK((cfg8(n, 6) & 1) == 1, "%s: link up\n", n->name);
    return get_status(&n->t) & ST_DRIVER_OK;
}

/* --- frames ---------------------------------------------------------------------------------------------- */

static u16 used_idx(struct nic *n, int qi) { return *(volatile u16 *)(n->q[qi] + 512 + 2); }

/* Sends hdr + frame (len bytes of frame) and waits until the device has taken it. */
static int send(struct nic *n, const u8 *frame, u32 len)
{
    struct desc *t = (struct desc *)n->q[1];
    volatile u16 *avail = (volatile u16 *)(n->q[1] + 256);
    memset(txbuf, 0, HDR);
    memcpy(txbuf + HDR, frame, len);
    u16 slot = n->avail_idx[1] % QSZ;
    t[slot].addr = (u32)(uptr)txbuf;
    t[slot].len = HDR + len;
    t[slot].flags = 0;
    t[slot].next = 0;
    avail[2 + slot] = slot;
    barrier();
    avail[1] = ++n->avail_idx[1];
    kick(n, 1);
    for (u64 start = rdtsc(); used_idx(n, 1) == n->used_seen[1];) {
        if (rdtsc() - start > HOST_WAIT_TSC) { printf("%s: transmit timed out\n", n->name); return 0; }
        cpu_relax();
    }
    n->used_seen[1]++;
    return 1;
}

/* Waits for the next received frame; returns its Ethernet bytes (0 on timeout) and its length. */
static u8 *receive(struct nic *n, u32 *len)
{
    for (u64 start = rdtsc(); used_idx(n, 0) == n->used_seen[0];) {
        if (rdtsc() - start > HOST_WAIT_TSC) { printf("%s: nothing received\n", n->name); return 0; }
        cpu_relax();
    }
    barrier();
    volatile u32 *e = (volatile u32 *)(n->q[0] + 512 + 4 + 8 * (n->used_seen[0] % QSZ));
    u32 id = e[0], total = e[1];
    n->used_seen[0]++;
    CHECK(id < RXBUFS && total >= HDR + 14 && total <= BUFSZ, "%s: used element id %u len %u\n", n->name, id, total);
    if (id >= RXBUFS) return 0;
    u8 *b = n->rx[id];
    u16 num_buffers = (u16)(b[10] | b[11] << 8);
    CHECK(num_buffers == 1, "%s: num_buffers %u\n", n->name, num_buffers);
    /* The frame is copied out before the buffer goes back to the device. */
    static u8 frame[BUFSZ];
    *len = total - HDR;
    memcpy(frame, b + HDR, *len);
    post_rx(n, (u16)id);
    kick(n, 0);
    return frame;
}

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { p[0] = (u8)(v >> 24); p[1] = (u8)(v >> 16); p[2] = (u8)(v >> 8); p[3] = (u8)v; }

static u32 eth(u8 *f, const u8 *dst, const u8 *src, u16 type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
    return 14;
}

/* Waits for a frame of the given Ethernet type, skipping up to a few others. */
static u8 *receive_type(struct nic *n, u16 type, u32 *len)
{
    for (int tries = 0; tries < 8; tries++) {
        u8 *f = receive(n, len);
        if (!f) return 0;
        if (be16(f + 12) == type) return f;
    }
    return 0;
}

static void arp(struct nic *n)
{
    static u8 f[64];
    memset(f, 0, sizeof f);
    u32 o = eth(f, BROADCAST, n->mac, 0x0806);
    put16(f + o, 1); put16(f + o + 2, 0x0800); f[o + 4] = 6; f[o + 5] = 4; put16(f + o + 6, 1);
    memcpy(f + o + 8, n->mac, 6); put32(f + o + 14, 0x0a00020f);
    put32(f + o + 24, 0x0a000202);
    CHECK(send(n, f, 60), "%s: ARP request sent\n", n->name);
    u32 len;
    u8 *r = 0;
    /* On a bridge other hosts' ARP requests arrive too: wait for a reply. */
    for (int tries = 0; tries < 8; tries++) {
        r = receive_type(n, 0x0806, &len);
        if (!r || be16(r + 14 + 6) == 2) break;
    }
    CHECK(r != 0, "%s: ARP reply received\n", n->name);
    if (!r) return;
    CHECK(be16(r + 14 + 6) == 2 && be32(r + 14 + 14) == 0x0a000202, "%s: reply says who has 10.0.2.2\n", n->name);
    if (!tap_peer) CHECK(memcmp(r + 14 + 8, GATEWAY_MAC, 6) == 0, "%s: gateway MAC 52:55:0a:00:02:02\n", n->name);
    CHECK(memcmp(r, n->mac, 6) == 0, "%s: reply addressed to our MAC\n", n->name);
}

static u16 ip_checksum(const u8 *p, u32 len)
{
    u32 s = 0;
    for (u32 i = 0; i < len; i += 2) s += be16(p + i);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (u16)~s;
}

static void dhcp(struct nic *n)
{
    static u8 f[14 + 20 + 8 + 244];
    memset(f, 0, sizeof f);
    u32 o = eth(f, BROADCAST, n->mac, 0x0800);
    u8 *ip = f + o, *udp = ip + 20, *bootp = udp + 8;
    u32 bootp_len = 244;
    ip[0] = 0x45; put16(ip + 2, (u16)(20 + 8 + bootp_len)); ip[8] = 64; ip[9] = 17;
    put32(ip + 12, 0); put32(ip + 16, 0xffffffffu);
    put16(ip + 10, ip_checksum(ip, 20));
    put16(udp, 68); put16(udp + 2, 67); put16(udp + 4, (u16)(8 + bootp_len)); /* UDP checksum 0: none */
    bootp[0] = 1; bootp[1] = 1; bootp[2] = 6; put32(bootp + 4, 0x4a564d4du); put16(bootp + 10, 0x8000);
    memcpy(bootp + 28, n->mac, 6);
    put32(bootp + 236, 0x63825363u);
    bootp[240] = 53; bootp[241] = 1; bootp[242] = 1; bootp[243] = 255;
    CHECK(send(n, f, sizeof f), "%s: DHCPDISCOVER sent\n", n->name);
    u32 len;
    u8 *r = receive_type(n, 0x0800, &len);
    CHECK(r != 0, "%s: DHCP reply received\n", n->name);
    if (!r) return;
    u8 *rip = r + 14, *rudp = rip + (rip[0] & 15) * 4, *rb = rudp + 8;
    CHECK(rip[9] == 17 && be16(rudp) == 67 && be16(rudp + 2) == 68, "%s: UDP from port 67 to 68\n", n->name);
    CHECK(rb[0] == 2 && be32(rb + 4) == 0x4a564d4du, "%s: BOOTREPLY to our xid\n", n->name);
    CHECK(be32(rb + 16) == 0x0a00020f, "%s: offers 10.0.2.15 (yiaddr %x)\n", n->name, be32(rb + 16));
    int offer = 0;
    for (u32 i = 240; i + 2 < len - (u32)(rb - r) && rb[i] != 255; i += rb[i] == 0 ? 1 : 2u + rb[i + 1])
        if (rb[i] == 53 && rb[i + 2] == 2) offer = 1;
    CHECK(offer, "%s: message type DHCPOFFER\n", n->name);
}

static void nic_suite(struct nic *n, const u8 *expected_mac)
{
    printf("%s\n", n->name);
    if (!nic_init(n)) return;
    CHECK(memcmp(n->mac, expected_mac, 6) == 0, "%s: MAC %x:%x:%x:%x:%x:%x as configured\n", n->name,
          n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
    arp(n);
    static const u8 runt[5] = {1, 2, 3, 4, 5};
    CHECK(send(n, runt, sizeof runt), "%s: a runt frame is completed, not left hanging\n", n->name);
    if (!tap_peer) dhcp(n);
    arp(n);
    CHECK(!(get_status(&n->t) & ST_NEEDS_RESET), "%s: no NEEDS_RESET\n", n->name);
}

/* --- discovery --------------------------------------------------------------------------------------------- */

static u32 parse_hex(const char **p)
{
    const char *s = *p;
    u32 v = 0;
    if (s[0] == '0' && s[1] == 'x') s += 2;
    for (;; s++) {
        if (*s >= '0' && *s <= '9') v = v * 16 + (u32)(*s - '0');
        else if (*s >= 'a' && *s <= 'f') v = v * 16 + (u32)(*s - 'a' + 10);
        else break;
    }
    *p = s;
    return v;
}

static const char *find(const char *s, const char *key)
{
    unsigned long k = strlen(key);
    for (; *s; s++) if (strncmp(s, key, k) == 0) return s + k;
    return 0;
}

/* "mac0=525400123456": the MAC the host configured for a NIC. */
static int expected_mac(const char *cmdline, const char *key, u8 *mac)
{
    const char *s = find(cmdline, key);
    if (!s) return 0;
    for (int i = 0; i < 6; i++) {
        u8 b = 0;
        for (int j = 0; j < 2; j++, s++) {
            if (*s >= '0' && *s <= '9') b = (u8)(b * 16 + (*s - '0'));
            else if (*s >= 'a' && *s <= 'f') b = (u8)(b * 16 + (*s - 'a' + 10));
            else return 0;
        }
        mac[i] = b;
    }
    return 1;
}

static int find_pci_nic(struct nic *n)
{
    int slot = -1;
    for (int s = 0; s < 32; s++)
        if (pci_read32(0, (u8)s, 0, 0) == ((0x1040u + 1) << 16 | 0x1af4)) slot = s;
    CHECK(slot > 0, "virtio-net 1af4:1041 found on bus 0\n");
    if (slot < 0) return 0;
    CHECK(pci_read16(0, (u8)slot, 0, 0x0a) == 0x0200, "class 02:00 (Ethernet)\n");
    u32 lo = pci_read32(0, (u8)slot, 0, 0x10);
    n->t.base = lo & ~0xfu;
    for (u8 cap = pci_read8(0, (u8)slot, 0, 0x34); cap; cap = pci_read8(0, (u8)slot, 0, cap + 1)) {
        if (pci_read8(0, (u8)slot, 0, cap) != 0x09 || pci_read8(0, (u8)slot, 0, cap + 4) != 0) continue;
        u8 type = pci_read8(0, (u8)slot, 0, cap + 3);
        u32 off = pci_read32(0, (u8)slot, 0, cap + 8);
        if (type == 1 && !n->t.common) n->t.common = n->t.base + off;
        if (type == 4 && !n->t.devcfg) n->t.devcfg = n->t.base + off;
        if (type == 2 && !notify_base) { notify_base = n->t.base + off; notify_multiplier = pci_read32(0, (u8)slot, 0, cap + 16); }
    }
    CHECK(n->t.common && n->t.devcfg && notify_base, "common, device and notify capabilities\n");
    pci_write16(0, (u8)slot, 0, 0x04, pci_read16(0, (u8)slot, 0, 0x04) | 0x6);
    return n->t.common && n->t.devcfg && notify_base;
}

int guest_main(u32 magic, u32 info)
{
    puts("virtio-net suite\n");
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uptr)info;
    const char *cmdline = magic == MULTIBOOT_BOOTLOADER_MAGIC && mbi && (mbi->flags & 4) ? (const char *)(uptr)mbi->cmdline : "";
    printf("cmdline: %s\n", cmdline);
    u8 mac0[6], mac1[6];
    tap_peer = find(cmdline, "peer=tap") != 0;
    int macs = expected_mac(cmdline, "mac0=", mac0) && expected_mac(cmdline, "mac1=", mac1);
    CHECK(macs, "expected MACs on the command line\n");
    const char *dev = find(cmdline, "virtio_mmio.device=4K@");
    CHECK(dev != 0, "a virtio-mmio device on the command line\n");
    if (!macs || !dev) return guest_result();
    nics[0].t.base = parse_hex(&dev);
    CHECK(mr(&nics[0].t, 0) == 0x74726976 && mr(&nics[0].t, 8) == 1, "%s: virtio-mmio magic and device id 1 (net)\n", nics[0].name);
    nic_suite(&nics[0], mac0);
    if (find_pci_nic(&nics[1])) nic_suite(&nics[1], mac1);
    return guest_result();
}
