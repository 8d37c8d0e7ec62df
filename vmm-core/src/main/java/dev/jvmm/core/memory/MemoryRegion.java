package dev.jvmm.core.memory;

import java.lang.foreign.MemorySegment;

/** One contiguous range of guest-physical RAM and the host mapping behind it. */
public record MemoryRegion(long guestBase, MemorySegment host) {
    public long size() {
        return host.byteSize();
    }

    public long guestEnd() {
        return guestBase + host.byteSize();
    }

    /** True when [gpa, gpa+len) lies inside this region (overflow-safe). */
    boolean contains(long gpa, long len) {
        long off = gpa - guestBase;
        return off >= 0 && len >= 0 && off < host.byteSize() && len <= host.byteSize() - off;
    }
}
