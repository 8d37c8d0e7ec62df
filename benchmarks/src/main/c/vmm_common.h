/*
 * What the C reference VMMs (refvmm.c, lifecycle.c) share: dying with the failed call named, an ioctl that dies on
 * failure, the monotonic clock, and a flat 32-bit segment. Messages start with the program's name
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

#endif
