package dev.jvmm.kvm;

/** The Linux ioctl request encoding (asm-generic/ioctl.h: dir:2 size:14 type:8 nr:8). */
public final class Ioctl {
    private static final int NONE = 0, WRITE = 1, READ = 2;

    private Ioctl() {}

    private static long ioc(int dir, int type, int nr, long size) {
        if (size < 0 || size >= (1 << 14))
            throw new IllegalArgumentException("ioctl argument size " + size + " does not fit 14 bits");
        return ((long) dir << 30) | (size << 16) | ((long) type << 8) | nr;
    }

    public static long io(int type, int nr) {
        return ioc(NONE, type, nr, 0);
    }

    public static long ior(int type, int nr, long size) {
        return ioc(READ, type, nr, size);
    }

    public static long iow(int type, int nr, long size) {
        return ioc(WRITE, type, nr, size);
    }

    public static long iowr(int type, int nr, long size) {
        return ioc(READ | WRITE, type, nr, size);
    }
}
