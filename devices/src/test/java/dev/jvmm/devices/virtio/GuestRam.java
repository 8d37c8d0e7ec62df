package dev.jvmm.devices.virtio;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import java.lang.foreign.Arena;
import java.util.List;

/** Guest RAM for tests: one region over a shared Arena, with a bump allocator for the mock driver. */
public final class GuestRam implements AutoCloseable {
    public final Arena arena = Arena.ofShared();
    public final long base;
    public final long size;
    public final GuestMemory memory;
    private long next;

    public GuestRam(long base, long size) {
        this.base = base;
        this.size = size;
        this.memory = GuestMemory.wrap(List.of(new MemoryRegion(base, arena.allocate(size, 4096))));
        this.next = base;
    }

    public GuestRam() {
        this(0x10000, 4 << 20);
    }

    /** Zeroed guest memory of len bytes at the given alignment. */
    public long alloc(long len, long alignment) {
        long gpa = (next + alignment - 1) & -alignment;
        if (gpa + len > base + size) throw new IllegalStateException("test guest RAM exhausted");
        next = gpa + len;
        memory.fill(gpa, len, (byte) 0);
        return gpa;
    }

    public long end() {
        return base + size;
    }

    @Override
    public void close() {
        arena.close();
    }
}
