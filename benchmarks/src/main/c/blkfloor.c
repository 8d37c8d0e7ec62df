/*
 * The floor for the block benchmark: one thread, one request at a time, pread(2) or pwrite(2) of BLOCK bytes at
 * offsets (i * STEP) mod SIZE, as qemu-img bench -S STEP and jvmm's driver visit them.
 * Usage: blkfloor FILE read|write BLOCK STEP SIZE COUNT
 * Prints the nanoseconds the COUNT requests took (the file opened and the buffer touched beforehand).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: blkfloor FILE read|write BLOCK STEP SIZE COUNT\n");
        return 2;
    }
    int write_mode = strcmp(argv[2], "write") == 0;
    long long block = atoll(argv[3]), step = atoll(argv[4]), size = atoll(argv[5]), count = atoll(argv[6]);
    if (block <= 0 || step <= 0 || size < block || count <= 0) {
        fprintf(stderr, "blkfloor: bad sizes\n");
        return 2;
    }
    int fd = open(argv[1], write_mode ? O_RDWR : O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    char *buf;
    if (posix_memalign((void **)&buf, 4096, block)) return 1;
    memset(buf, 0xa5, block);
    long long offset = 0, t0 = now_ns();
    for (long long i = 0; i < count; i++) {
        ssize_t n = write_mode ? pwrite(fd, buf, block, offset) : pread(fd, buf, block, offset);
        if (n != block) {
            perror(write_mode ? "pwrite" : "pread");
            return 1;
        }
        offset = (offset + step) % size;
        if (offset + block > size) offset = 0;
    }
    printf("%lld\n", now_ns() - t0);
    close(fd);
    return 0;
}
