/*
 * refvmm: the C reference VMM the jvmm benchmarks are measured against. It runs the same benchmark guest
 * (bench.bin, a flat 32-bit multiboot kernel loaded at 1 MiB) on a VM of the same shape as jvmm's (in-kernel
 * irqchip and PIT, CPUID as KVM supports it) and serves every exit with the least work it can.
 *
 * Usage: refvmm GUEST.bin "CMDLINE" [--mem MiB] [--samples FILE] [--empty-runs N]
 *
 * Output on stdout, one record per line (machine-readable, space-separated):
 *   tsc_khz K            the vCPU's TSC frequency (KVM_GET_TSC_KHZ), to turn guest cycles into time
 *   batch NS             host time of one batch, between the guest's start and end markers
 *   R kind=... cycles=H  the guest's own line for that batch (rdtsc delta, hex), passed through
 *   empty_run NS N       N KVM_RUN calls with immediate_exit set (host-side only; --empty-runs)
 *   exit CODE            the guest's debug-exit code
 * Guest debugcon output is passed through unbuffered (the launch benchmark times its first byte).
 * --samples writes, per batch, the host-side interval between consecutive benchmark exits (u32 ns, native
 * byte order): one clock read per exit, so timing runs leave it off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "vmm_common.h"

#define BENCH_PORT 0x5a0
#define IOEVENT_PORT 0x5a4
#define IRQ_READY_PORT 0x5a8
#define CTL_PORT 0x5b0
#define DEBUGCON_PORT 0xe9
#define DEBUG_EXIT_PORT 0xf4
#define BENCH_MMIO 0xd0000000ull
#define LOAD_ADDR 0x100000
#define MBI_ADDR 0x7000
#define CMDLINE_ADDR 0x7100
#define GDT_ADDR 0x500
#define WAKE_VECTOR 0x40
#define MSI_GSI 24

/* The irq benchmark's host side: each time the guest says "ready" (ioeventfd), inject one MSI (irqfd). */
struct pinger { int ready_fd, irq_fd; };
static void *pinger_main(void *arg) {
    struct pinger *p = arg;
    uint64_t v;
    for (;;) {
        if (read(p->ready_fd, &v, 8) != 8) {
            if (errno == EINTR) continue;
            return NULL;
        }
        v = 1;
        if (write(p->irq_fd, &v, 8) != 8) return NULL;
    }
}

static uint64_t gdt_entry(uint32_t base, uint32_t limit, uint32_t flags, uint32_t access) {
    return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf) << 52) |
           ((uint64_t)(limit & 0xf0000u) << 32) | ((uint64_t)(access & 0xff) << 40) |
           ((uint64_t)(base & 0x00ffffffu) << 16) | (limit & 0xffffu);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: refvmm GUEST.bin CMDLINE [--mem MiB] [--samples FILE] [--empty-runs N]\n");
        return 2;
    }
    const char *guest = argv[1], *cmdline = argv[2], *samples_path = NULL;
    size_t mem_size = 64ull << 20;
    long empty_runs = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mem")) mem_size = (size_t)atol(argv[i + 1]) << 20;
        else if (!strcmp(argv[i], "--samples")) samples_path = argv[i + 1];
        else if (!strcmp(argv[i], "--empty-runs")) empty_runs = atol(argv[i + 1]);
        else { fprintf(stderr, "refvmm: unknown option %s\n", argv[i]); return 2; }
    }

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    uint8_t *mem;
    int vm = create_vm(kvm, mem_size, &mem);

    FILE *f = fopen(guest, "rb");
    if (!f) die(guest);
    size_t len = fread(mem + LOAD_ADDR, 1, mem_size - LOAD_ADDR, f);
    fclose(f);
    if (len == 0) { fprintf(stderr, "refvmm: %s is empty\n", guest); return 2; }
    /* Multiboot info with only a command line, as a multiboot loader would pass it. */
    uint32_t *mbi = (uint32_t *)(mem + MBI_ADDR);
    memset(mbi, 0, 128);
    mbi[0] = 1u << 2;
    mbi[4] = CMDLINE_ADDR;
    snprintf((char *)mem + CMDLINE_ADDR, 0x800, "%s", cmdline);
    uint64_t *gdt = (uint64_t *)(mem + GDT_ADDR);
    gdt[0] = 0;
    gdt[2] = gdt_entry(0, 0xfffff, 0xc, 0x9b);
    gdt[3] = gdt_entry(0, 0xfffff, 0xc, 0x93);
    gdt[4] = gdt_entry(0, 0xfffff, 0x0, 0x8b);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0) die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    xioctl(vcpu, KVM_SET_CPUID2, supported_cpuid(kvm), "KVM_SET_CPUID2");

    struct kvm_sregs sregs;
    xioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    flat_segment(&sregs.cs, 0x10, 0xb);
    flat_segment(&sregs.ds, 0x18, 0x3);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    memset(&sregs.tr, 0, sizeof sregs.tr);
    sregs.tr.selector = 0x20;
    sregs.tr.limit = 0xfffff;
    sregs.tr.type = 0xb;
    sregs.tr.present = 1;
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = 5 * 8 - 1;
    sregs.cr0 = 0x11; /* PE | ET */
    xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = LOAD_ADDR, .rflags = 2, .rax = 0x2badb002, .rbx = MBI_ADDR};
    xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

    /* Kernel-completed writes: the ioeventfd benchmark's port and the irq benchmark's "ready" port. */
    int ioevent_fd = eventfd(0, EFD_CLOEXEC), ready_fd = eventfd(0, EFD_CLOEXEC), irq_fd = eventfd(0, EFD_CLOEXEC);
    if (ioevent_fd < 0 || ready_fd < 0 || irq_fd < 0) die("eventfd");
    struct kvm_ioeventfd ioe = {.addr = IOEVENT_PORT, .len = 1, .fd = ioevent_fd, .flags = KVM_IOEVENTFD_FLAG_PIO};
    xioctl(vm, KVM_IOEVENTFD, &ioe, "KVM_IOEVENTFD");
    struct kvm_ioeventfd ready = {.addr = IRQ_READY_PORT, .len = 1, .fd = ready_fd, .flags = KVM_IOEVENTFD_FLAG_PIO};
    xioctl(vm, KVM_IOEVENTFD, &ready, "KVM_IOEVENTFD");
    /* One MSI route (fixed delivery, vector WAKE_VECTOR, APIC 0) behind an irqfd. */
    struct { struct kvm_irq_routing r; struct kvm_irq_routing_entry e[1]; } routing;
    memset(&routing, 0, sizeof routing);
    routing.r.nr = 1;
    routing.e[0].gsi = MSI_GSI;
    routing.e[0].type = KVM_IRQ_ROUTING_MSI;
    routing.e[0].u.msi.address_lo = 0xfee00000;
    routing.e[0].u.msi.data = WAKE_VECTOR;
    xioctl(vm, KVM_SET_GSI_ROUTING, &routing, "KVM_SET_GSI_ROUTING");
    struct kvm_irqfd irqfd = {.fd = (uint32_t)irq_fd, .gsi = MSI_GSI};
    xioctl(vm, KVM_IRQFD, &irqfd, "KVM_IRQFD");
    struct pinger pinger = {ready_fd, irq_fd};
    pthread_t pinger_thread;
    if (pthread_create(&pinger_thread, NULL, pinger_main, &pinger) != 0) die("pthread_create");

    printf("tsc_khz %d\n", ioctl(vcpu, KVM_GET_TSC_KHZ, 0));
    fflush(stdout);

    if (empty_runs > 0) {
        /* The bare cost of entering and leaving KVM_RUN: immediate_exit makes it return EINTR at once. */
        run->immediate_exit = 1;
        for (int round = 0; round < 2; round++) { /* the first round warms caches and branch predictors */
            uint64_t t0 = now_ns();
            for (long i = 0; i < empty_runs; i++) {
                if (ioctl(vcpu, KVM_RUN, 0) == 0 || errno != EINTR) die("KVM_RUN with immediate_exit");
            }
            uint64_t t1 = now_ns();
            if (round == 1) printf("empty_run %llu %ld\n", (unsigned long long)(t1 - t0), empty_runs);
        }
        run->immediate_exit = 0;
        fflush(stdout);
    }

    FILE *samples = samples_path ? fopen(samples_path, "wb") : NULL;
    if (samples_path && !samples) die(samples_path);
    size_t cap = 1 << 20, nsamples = 0;
    uint32_t *sample = samples ? malloc(cap * sizeof *sample) : NULL;
    uint64_t batch_start = 0, last = 0;
    int in_batch = 0;

    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            uint16_t port = run->io.port;
            if (port == BENCH_PORT) {
                if (run->io.direction == KVM_EXIT_IO_IN) memset(data, 0, (size_t)run->io.size * run->io.count);
                if (samples && in_batch) {
                    uint64_t t = now_ns();
                    if (nsamples < cap) sample[nsamples++] = (uint32_t)(t - last);
                    last = t;
                }
            } else if (port == CTL_PORT) {
                if (run->io.direction == KVM_EXIT_IO_IN) {
                    memset(data, 0, (size_t)run->io.size * run->io.count); /* no gate: a batch of 0 */
                } else {
                    uint32_t v;
                    memcpy(&v, data, 4);
                    uint64_t t = now_ns();
                    if (v == 1) { batch_start = last = t; in_batch = 1; }
                    else if (v == 2 && in_batch) {
                        in_batch = 0;
                        printf("batch %llu\n", (unsigned long long)(t - batch_start));
                    }
                }
            } else if (port == DEBUGCON_PORT && run->io.direction == KVM_EXIT_IO_OUT) {
                fwrite(data, run->io.size, run->io.count, stdout);
                fflush(stdout);
            } else if (port == DEBUG_EXIT_PORT && run->io.direction == KVM_EXIT_IO_OUT) {
                uint32_t code = 0;
                memcpy(&code, data, run->io.size < 4 ? run->io.size : 4);
                if (samples) {
                    fwrite(sample, sizeof *sample, nsamples, samples);
                    fclose(samples);
                }
                printf("exit %u\n", code);
                fflush(stdout);
                _exit(0); /* the pinger thread blocks in read(); no teardown to time */
            } else if (run->io.direction == KVM_EXIT_IO_IN) {
                memset(data, 0xff, (size_t)run->io.size * run->io.count);
            }
            break;
        }
        case KVM_EXIT_MMIO:
            if (!run->mmio.is_write) memset(run->mmio.data, 0, sizeof run->mmio.data);
            if (samples && in_batch && run->mmio.phys_addr == BENCH_MMIO) {
                uint64_t t = now_ns();
                if (nsamples < cap) sample[nsamples++] = (uint32_t)(t - last);
                last = t;
            }
            break;
        case KVM_EXIT_HLT:
            printf("exit hlt\n");
            return 1;
        case KVM_EXIT_SHUTDOWN:
            xioctl(vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
            fprintf(stderr, "refvmm: guest triple fault at rip 0x%llx\n", (unsigned long long)regs.rip);
            return 3;
        case KVM_EXIT_INTERNAL_ERROR:
            fprintf(stderr, "refvmm: KVM internal error, suberror %u", run->internal.suberror);
            for (unsigned i = 0; i < run->internal.ndata && i < 16; i++) fprintf(stderr, " 0x%llx", (unsigned long long)run->internal.data[i]);
            xioctl(vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
            fprintf(stderr, " rip 0x%llx rsp 0x%llx\n", (unsigned long long)regs.rip, (unsigned long long)regs.rsp);
            return 3;
        default:
            fprintf(stderr, "refvmm: unexpected exit reason %u\n", run->exit_reason);
            return 3;
        }
    }
}
