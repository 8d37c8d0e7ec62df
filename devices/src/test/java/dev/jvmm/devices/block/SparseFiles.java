package dev.jvmm.devices.block;

import dev.jvmm.kvm.Libc;
import java.nio.file.Path;

/** What the block tests ask of a sparse file's layout on disk. */
public final class SparseFiles {
    private SparseFiles() {}

    /** True when [offset, offset+len) of the file is a hole (SEEK_DATA finds no data before its end). */
    public static boolean isHole(Path p, long offset, long len) {
        int fd = Libc.open(p.toString(), Libc.O_RDONLY, 0);
        try {
            long data = Libc.lseekRaw(fd, offset, Libc.SEEK_DATA);
            return data < 0 || data >= offset + len;
        } finally {
            Libc.close(fd);
        }
    }
}
