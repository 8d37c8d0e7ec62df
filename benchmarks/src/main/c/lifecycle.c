/*
 * lifecycle: the C floor of a VM's whole life, for the in-process lifecycle benchmark (LifecycleBench). Each
 * iteration creates a VM shaped as jvmm's VirtualMachine makes one by default (in-kernel irqchip and PIT, RAM
 * mapped anonymous and unreserved, one vCPU with KVM's supported CPUID, flat 32-bit protected mode), runs it until
 * the guest's first exit to userspace and tears it all down again. The guest is three instructions at 1 MiB:
 * "mov al, 0; out 0xf4, al; hlt". The OUT is the end of the run, because with an in-kernel irqchip HLT does not
 * leave the kernel; the HLT is never reached.
 *
 * Usage: lifecycle ITERATIONS [--mem MiB]
 * Output: one line "lifecycle NS" per iteration (host time from KVM_CREATE_VM to the last munmap).
 * /dev/kvm is opened once and KVM_GET_SUPPORTED_CPUID asked once, before the first iteration: both are properties
 * of the host, which a VMM that starts many VMs asks once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "vmm_common.h"

#define LOAD_ADDR 0x100000
#define DEBUG_EXIT_PORT 0xf4

static const uint8_t GUEST[] = {0xb0, 0x00, 0xe6, DEBUG_EXIT_PORT, 0xf4};

static void one_life(int kvm, size_t mem_size, size_t run_size, struct kvm_cpuid2 *cpuid) {
    uint8_t *mem;
    int vm = create_vm(kvm, mem_size, &mem);
    memcpy(mem + LOAD_ADDR, GUEST, sizeof GUEST);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");
    xioctl(vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");

    struct kvm_sregs sregs;
    xioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    flat_segment(&sregs.cs, 0x10, 0xb);
    flat_segment(&sregs.ds, 0x18, 0x3);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.cr0 = 0x11; /* PE | ET */
    xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = LOAD_ADDR, .rflags = 2};
    xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("KVM_RUN");
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == DEBUG_EXIT_PORT) break;
        fprintf(stderr, "lifecycle: unexpected exit reason %u\n", run->exit_reason);
        exit(3);
    }

    munmap(run, run_size);
    close(vcpu);
    close(vm);
    munmap(mem, mem_size);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: lifecycle ITERATIONS [--mem MiB]\n");
        return 2;
    }
    long iterations = atol(argv[1]);
    size_t mem_size = 64ull << 20;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mem")) mem_size = (size_t)atol(argv[i + 1]) << 20;
        else { fprintf(stderr, "lifecycle: unknown option %s\n", argv[i]); return 2; }
    }
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0) die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_cpuid2 *cpuid = supported_cpuid(kvm);
    for (long i = 0; i < iterations; i++) {
        uint64_t t0 = now_ns();
        one_life(kvm, mem_size, (size_t)run_size, cpuid);
        printf("lifecycle %llu\n", (unsigned long long)(now_ns() - t0));
    }
    return 0;
}
