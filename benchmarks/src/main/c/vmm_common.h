/*
 * What the C reference VMMs (refvmm.c, lifecycle.c) share: dying with the failed call named, an ioctl that dies on
 * failure, the monotonic clock, a flat 32-bit segment, a VM of jvmm's default shape and the host's CPUID. Messages start with the program's name
 * (program_invocation_short_name: the including file defines _GNU_SOURCE before its first #include).
 */
#ifndef JVMM_BENCH_VMM_COMMON_H
#define JVMM_BENCH_VMM_COMMON_H
#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

static void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
    exit(2);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *name) {
    int r = ioctl(fd, req, arg);
    if (r < 0) die(name);
    return r;
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type) {
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->limit = 0xffffffff;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->db = 1;
    s->g = 1;
}

/*
 * A VM as jvmm builds one by default: TSS and identity map below 4 GiB, in-kernel irqchip and PIT, and mem_size
 * bytes of anonymous memory at guest address 0 (*mem), in that order.
 */
static int create_vm(int kvm, size_t mem_size, uint8_t **mem) {
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) die("KVM_SET_TSS_ADDR");
    uint64_t idmap = 0xfffbc000ull;
    xioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap, "KVM_SET_IDENTITY_MAP_ADDR");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    xioctl(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

    *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (*mem == MAP_FAILED) die("mmap guest memory");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (uintptr_t)*mem};
    xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
    return vm;
}

/* The CPUID the host's KVM supports (KVM_GET_SUPPORTED_CPUID), for KVM_SET_CPUID2. */
static struct kvm_cpuid2 *supported_cpuid(int kvm) {
    int ncpuid = 256;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + ncpuid * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid) die("calloc");
    cpuid->nent = ncpuid;
    xioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
    return cpuid;
}

#endif
