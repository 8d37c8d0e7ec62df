/* The test-guest runtime: port I/O, debugcon output, isa-debug-exit, multiboot info, MP table, PCI. */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long uptr;

#define DEBUGCON_PORT 0xe9
#ifndef DEBUG_EXIT_PORT
#define DEBUG_EXIT_PORT 0xf4
#endif

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline u8 mmio_read8(uptr a) { return *(volatile u8 *)a; }
static inline u16 mmio_read16(uptr a) { return *(volatile u16 *)a; }
static inline u32 mmio_read32(uptr a) { return *(volatile u32 *)a; }
static inline void mmio_write8(uptr a, u8 v) { *(volatile u8 *)a = v; }
static inline void mmio_write16(uptr a, u16 v) { *(volatile u16 *)a = v; }
static inline void mmio_write32(uptr a, u32 v) { *(volatile u32 *)a = v; }
static inline void barrier(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
/*
 * How long a guest waits for the host (a device's reply, a peer's frame) before it reports a timeout: TSC ticks,
 * several seconds at any clock rate. A count of loop iterations is no bound in time: under an emulated CPU the
 * loop can outrun the host's thread that would answer.
 */
#define HOST_WAIT_TSC 20000000000ULL

/* Entry point each guest defines; its return value becomes the debug-exit code. */
int guest_main(u32 magic, u32 info);

void guest_exit(int code) __attribute__((noreturn));
void putc_debugcon(char c);
void puts(const char *s);
/* printf subset: %s %c %d %u %x %08x %p %%. */
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
int memcmp(const void *a, const void *b, unsigned long n);
unsigned long strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, unsigned long n);

/* Test bookkeeping: CHECK prints "ok"/"FAIL" lines; guest_result() is 0 when every check passed. */
extern int checks_failed, checks_passed;
#define CHECK(cond, ...) do { if (cond) { checks_passed++; } else { checks_failed++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); puts("\n"); } } while (0)
int guest_result(void);

/* Multiboot v1 info (the fields the tests read). */
struct multiboot_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
} __attribute__((packed));
struct multiboot_mmap_entry {
    u32 size;
    u64 addr, len;
    u32 type;
} __attribute__((packed));
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

/* MP table (Intel MultiProcessor Specification 1.4). */
struct mp_cpu { u8 apic_id; u8 flags; };
/* Finds the MP floating pointer and config table; fills up to max CPUs; returns the count or -1. */
int mp_find_cpus(struct mp_cpu *cpus, int max, u32 *ioapic_addr);

/* PCI configuration mechanism #1. */
u32 pci_read32(u8 bus, u8 dev, u8 fn, u8 off);
void pci_write32(u8 bus, u8 dev, u8 fn, u8 off, u32 v);
u16 pci_read16(u8 bus, u8 dev, u8 fn, u8 off);
u8 pci_read8(u8 bus, u8 dev, u8 fn, u8 off);
void pci_write16(u8 bus, u8 dev, u8 fn, u8 off, u16 v);

#endif
