/*
 * A guest-side virtio-vsock driver test: a minimal polling driver for a virtio-pci socket device (1af4:1053, found
 * on bus 0), against jvmm's host side in Firecracker's convention, with the test's host programs on Unix sockets:
 *   - guest_cid in configuration space is the one on the command line (cid=N),
 *   - the guest connects to host port 1234 (a host program listens on uds_path_1234), sends a greeting, reads the
 *     answer, closes (SHUTDOWN both ways) and gets the device's RST,
 *   - a connect to host port 1235 (nothing listens) is reset,
 *   - a spoofed packet (wrong src_cid) gets no answer, data for no connection gets a reset,
 *   - the guest listens on port 52: a host program's CONNECT 52 arrives as a REQUEST; the guest accepts with a
 *     buf_alloc of 16 bytes, and the host program's 40 bytes come in no more than the credit allows, the rest after
 *     CREDIT_UPDATEs; the guest answers "pong"; the host program's close arrives as SHUTDOWN, and the guest's close
 *     is answered with RST.
 * Requests for port 52 that come before the guest listens are reset (as Linux does); the host program retries.
 * Interrupts stay off: the driver polls the used rings. Results go to debugcon; the exit code is 0 when all pass.
 */
#include "guest.h"
#include "virtio_transport.h"

#define QSZ 16
#define RXBUFS 8
#define RXBUF 1068 /* header + 1024 */
#define HDR 44
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define D_WRITE 2
#define HOST_CID 2

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };

struct desc { u64 addr; u32 len; u16 flags; u16 next; } __attribute__((packed));
struct hdr {
    u64 src_cid, dst_cid;
    u32 src_port, dst_port, len;
    u16 type, op;
    u32 flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

static u8 qmem[3][4096] __attribute__((aligned(4096))); /* per queue: desc at 0, avail at 256, used at 512 */
static u8 rxmem[RXBUFS][RXBUF] __attribute__((aligned(64)));
static u8 evmem[2][8] __attribute__((aligned(8)));
static u8 txbuf[HDR + 256] __attribute__((aligned(64)));
static struct vtransport t = {1, 0, 0, 0};
static uptr notify[3];
static u32 notify_base, notify_multiplier;
static u16 avail_idx[3], used_seen[3];
static u64 guest_cid;
static int listening52;

/* The packet last received. */
static struct hdr rh;
static u8 rpayload[1024];

static void kick(int qi)
{
    barrier();
    mmio_write16(notify[qi], (u16)qi);
}

static void setup_queue(int qi)
{
    u32 desc = (u32)(uptr)qmem[qi], avail = desc + 256, used = desc + 512;
    memset(qmem[qi], 0, 4096);
    mmio_write16(t.common + 0x16, (u16)qi);
    mmio_write16(t.common + 0x18, QSZ);
    mmio_write32(t.common + 0x20, desc); mmio_write32(t.common + 0x24, 0);
    mmio_write32(t.common + 0x28, avail); mmio_write32(t.common + 0x2c, 0);
    mmio_write32(t.common + 0x30, used); mmio_write32(t.common + 0x34, 0);
    notify[qi] = notify_base + mmio_read16(t.common + 0x1e) * notify_multiplier;
    mmio_write16(t.common + 0x1c, 1);
}

static void post(int qi, u16 id, void *buf, u32 len)
{
    struct desc *d = (struct desc *)qmem[qi];
    volatile u16 *avail = (volatile u16 *)(qmem[qi] + 256);
    d[id].addr = (u32)(uptr)buf;
    d[id].len = len;
    d[id].flags = D_WRITE;
    d[id].next = 0;
    avail[2 + avail_idx[qi] % QSZ] = id;
    barrier();
    avail[1] = ++avail_idx[qi];
}

static u16 used_idx(int qi) { return *(volatile u16 *)(qmem[qi] + 512 + 2); }

/* Sends a packet (header and payload in one device-readable buffer) and waits until the device took it. */
static int send(u16 op, u32 src_port, u32 dst_port, u32 flags, u32 buf_alloc, u32 fwd_cnt, const void *data, u32 len)
{
    struct hdr *h = (struct hdr *)txbuf;
    struct desc *d = (struct desc *)qmem[1];
    volatile u16 *avail = (volatile u16 *)(qmem[1] + 256);
    memset(h, 0, HDR);
    h->src_cid = guest_cid;
    h->dst_cid = HOST_CID;
    h->src_port = src_port;
    h->dst_port = dst_port;
    h->len = len;
    h->type = 1;
    h->op = op;
    h->flags = flags;
    h->buf_alloc = buf_alloc;
    h->fwd_cnt = fwd_cnt;
    if (len) memcpy(txbuf + HDR, data, len);
    u16 slot = avail_idx[1] % QSZ;
    d[slot].addr = (u32)(uptr)txbuf;
    d[slot].len = HDR + len;
    d[slot].flags = 0;
    d[slot].next = 0;
    avail[2 + slot] = slot;
    barrier();
    avail[1] = ++avail_idx[1];
    kick(1);
    for (u64 start = rdtsc(); used_idx(1) == used_seen[1];) {
        if (rdtsc() - start > HOST_WAIT_TSC) { puts("transmit timed out\n"); return 0; }
        cpu_relax();
    }
    used_seen[1]++;
    return 1;
}

/* The next packet within `wait` TSC ticks, into rh and rpayload (its buffer goes back to the device); 0 if none. */
static int receive_within(u64 wait)
{
    for (;;) {
        for (u64 start = rdtsc(); used_idx(0) == used_seen[0];) {
            if (rdtsc() - start > wait) return 0;
            cpu_relax();
        }
        barrier();
        volatile u32 *e = (volatile u32 *)(qmem[0] + 512 + 4 + 8 * (used_seen[0] % QSZ));
        u32 id = e[0], total = e[1];
        used_seen[0]++;
        CHECK(id < RXBUFS && total >= HDR && total <= RXBUF, "rx used element id %u len %u\n", id, total);
        if (id >= RXBUFS) return 0;
        memcpy(&rh, rxmem[id], HDR);
        u32 n = total - HDR;
        CHECK(rh.len == n, "rx header len %u, used length %u\n", rh.len, total);
        if (n > sizeof rpayload) n = sizeof rpayload;
        memcpy(rpayload, rxmem[id] + HDR, n);
        post(0, (u16)id, rxmem[id], RXBUF);
        kick(0);
        CHECK(rh.dst_cid == guest_cid, "packet to our CID (dst_cid %u)\n", (u32)rh.dst_cid);
        if (rh.op == OP_REQUEST && rh.dst_port == 52 && !listening52) {
            /* A host program too early: nobody listens yet, as Linux answers. */
            send(OP_RST, 52, rh.src_port, 0, 0, 0, 0, 0);
            continue;
        }
        return 1;
    }
}

static int receive(void) { return receive_within(HOST_WAIT_TSC); }

/* Waits for a packet and checks its op and ports. */
static int expect(u16 op, u32 host_port, u32 guest_port, const char *what)
{
    if (!receive()) {
        printf("FAIL %s: nothing received\n", what);
        checks_failed++;
        return 0;
    }
    int ok = rh.op == op && rh.src_cid == HOST_CID && rh.dst_port == guest_port
             && (!host_port || rh.src_port == host_port);
    CHECK(ok, "%s: got op %u from %u:%u to port %u\n", what, rh.op, (u32)rh.src_cid, rh.src_port, rh.dst_port);
    return ok;
}

/* --- the tests ------------------------------------------------------------------------------------------ */

static void guest_connects(void)
{
    static const char hello[] = "hello from the guest";
    static const char answer[] = "hello from the host";
    send(OP_REQUEST, 5000, 1234, 0, 65536, 0, 0, 0);
    if (!expect(OP_RESPONSE, 1234, 5000, "connect to host port 1234")) return;
    CHECK(rh.buf_alloc >= 4096, "the device advertises its buffer (%u)\n", rh.buf_alloc);
    send(OP_RW, 5000, 1234, 0, 65536, 0, hello, sizeof hello - 1);
    u32 got = 0;
    static char in[64];
    while (got < sizeof answer - 1) {
        if (!expect(OP_RW, 1234, 5000, "the host program's answer")) return;
        CHECK(got + rh.len <= sizeof in, "answer fits\n");
        if (got + rh.len > sizeof in) return;
        memcpy(in + got, rpayload, rh.len);
        got += rh.len;
    }
    CHECK(memcmp(in, answer, sizeof answer - 1) == 0, "the answer is '%s'\n", answer);
    send(OP_SHUTDOWN, 5000, 1234, 3, 65536, got, 0, 0);
    expect(OP_RST, 1234, 5000, "our close is answered with RST");
}

static void nothing_listens(void)
{
    send(OP_REQUEST, 5001, 1235, 0, 65536, 0, 0, 0);
    expect(OP_RST, 1235, 5001, "a connect to a port nothing serves is reset");
}

static void hostile_packets(void)
{
    /* A request from another CID: no answer. Then data for no connection: a reset, which must come next. */
    u64 cid = guest_cid;
    guest_cid = 77;
    send(OP_REQUEST, 5002, 1234, 0, 65536, 0, 0, 0);
    guest_cid = cid;
    send(OP_RW, 5003, 1234, 0, 65536, 0, "x", 1);
    expect(OP_RST, 1234, 5003, "the spoofed request got nothing; data for no connection got RST");
}

static void host_connects(void)
{
    static const char expected[] = "0123456789abcdef0123456789ABCDEF01234567";
    static char in[64];
    listening52 = 1;
    if (!expect(OP_REQUEST, 0, 52, "a host program's CONNECT 52")) return;
    u32 host_port = rh.src_port;
    printf("host port %u connects\n", host_port);
    send(OP_RESPONSE, 52, host_port, 0, 16, 0, 0, 0);
    u32 got = 0, fwd = 0, alloc = 16;
    while (got < 40) {
        if (!expect(OP_RW, host_port, 52, "the host program's bytes")) return;
        CHECK(got + rh.len <= fwd + alloc, "no more than the credit: %u + %u > %u\n", got, rh.len, fwd + alloc);
        if (got + rh.len > sizeof in) return;
        memcpy(in + got, rpayload, rh.len);
        got += rh.len;
        if (got == fwd + alloc && got < 40) {
            /* Credit used up: nothing beyond it may come; then the guest frees its buffer and says so. */
            CHECK(!receive_within(HOST_WAIT_TSC / 64), "nothing beyond the credit arrives (op %u len %u)\n", rh.op,
                  rh.len);
            fwd = got;
            alloc = fwd >= 32 ? 64 : 16;
            send(OP_CREDIT_UPDATE, 52, host_port, 0, alloc, fwd, 0, 0);
        }
    }
    CHECK(memcmp(in, expected, 40) == 0, "the 40 bytes arrived in order\n");
    send(OP_RW, 52, host_port, 0, 64, got, "pong", 4);
    if (!expect(OP_SHUTDOWN, host_port, 52, "the host program's close")) return;
    CHECK(rh.flags & 2, "SHUTDOWN says the host sends no more (flags %u)\n", rh.flags);
    send(OP_SHUTDOWN, 52, host_port, 3, 64, got, 0, 0);
    expect(OP_RST, host_port, 52, "our close is answered with RST");
}

/* --- discovery --------------------------------------------------------------------------------------------- */

static const char *find(const char *s, const char *key)
{
    unsigned long k = strlen(key);
    for (; *s; s++) if (strncmp(s, key, k) == 0) return s + k;
    return 0;
}

static int find_device(void)
{
    int slot = -1;
    for (int s = 0; s < 32; s++)
        if (pci_read32(0, (u8)s, 0, 0) == ((0x1040u + 19) << 16 | 0x1af4)) slot = s;
    CHECK(slot > 0, "virtio-vsock 1af4:1053 found on bus 0\n");
    if (slot < 0) return 0;
    t.base = pci_read32(0, (u8)slot, 0, 0x10) & ~0xfu;
    for (u8 cap = pci_read8(0, (u8)slot, 0, 0x34); cap; cap = pci_read8(0, (u8)slot, 0, cap + 1)) {
        if (pci_read8(0, (u8)slot, 0, cap) != 0x09) continue;
        u8 type = pci_read8(0, (u8)slot, 0, cap + 3);
        u32 off = pci_read32(0, (u8)slot, 0, cap + 8);
        if (type == 1 && !t.common) t.common = t.base + off;
        if (type == 4 && !t.devcfg) t.devcfg = t.base + off;
        if (type == 2 && !notify_base) {
            notify_base = t.base + off;
            notify_multiplier = pci_read32(0, (u8)slot, 0, cap + 16);
        }
    }
    CHECK(t.common && t.devcfg && notify_base, "common, device and notify capabilities\n");
    pci_write16(0, (u8)slot, 0, 0x04, pci_read16(0, (u8)slot, 0, 0x04) | 0x6);
    return t.common && t.devcfg && notify_base;
}

static int init(u32 expected_cid)
{
    set_status(&t, 0);
    set_status(&t, ST_ACK);
    set_status(&t, ST_ACK | ST_DRIVER);
    u32 f0 = device_features(&t, 0), f1 = device_features(&t, 1);
    CHECK((f1 & 1) && (f0 & 1), "VERSION_1 and VIRTIO_VSOCK_F_STREAM offered (%x %x)\n", f1, f0);
    CHECK(!(f0 & 2), "no seqpacket offered\n");
    driver_features(&t, 0, 1);
    driver_features(&t, 1, 1);
    set_status(&t, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    CHECK(get_status(&t) & ST_FEATURES_OK, "FEATURES_OK kept\n");
    guest_cid = mmio_read32(t.devcfg) | (u64)mmio_read32(t.devcfg + 4) << 32;
    CHECK(guest_cid == expected_cid, "guest_cid %u is the one configured (%u)\n", (u32)guest_cid, expected_cid);
    for (int q = 0; q < 3; q++) setup_queue(q);
    for (u16 i = 0; i < RXBUFS; i++) post(0, i, rxmem[i], RXBUF);
    for (u16 i = 0; i < 2; i++) post(2, i, evmem[i], 8);
    set_status(&t, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    CHECK(get_status(&t) == (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK), "DRIVER_OK (status %x)\n",
          get_status(&t));
    kick(0);
    kick(2);
    return get_status(&t) & ST_DRIVER_OK;
}

int guest_main(u32 magic, u32 info)
{
    puts("virtio-vsock suite\n");
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uptr)info;
    const char *cmdline =
        magic == MULTIBOOT_BOOTLOADER_MAGIC && mbi && (mbi->flags & 4) ? (const char *)(uptr)mbi->cmdline : "";
    printf("cmdline: %s\n", cmdline);
    const char *c = find(cmdline, "cid=");
    CHECK(c != 0, "cid= on the command line\n");
    if (!c) return guest_result();
    u32 cid = 0;
    for (; *c >= '0' && *c <= '9'; c++) cid = cid * 10 + (u32)(*c - '0');
    if (!find_device() || !init(cid)) return guest_result();
    puts("guest connects\n");
    guest_connects();
    puts("nothing listens\n");
    nothing_listens();
    puts("hostile packets\n");
    hostile_packets();
    puts("host connects\n");
    host_connects();
    CHECK(used_idx(2) == 0, "no event arrived\n");
    CHECK(!(get_status(&t) & ST_NEEDS_RESET), "no NEEDS_RESET\n");
    return guest_result();
}
