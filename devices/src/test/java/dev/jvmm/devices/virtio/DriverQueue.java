package dev.jvmm.devices.virtio;

import dev.jvmm.core.memory.GuestMemory;

/**
 * The driver's side of a split virtqueue, built in guest memory the way a guest driver would: a descriptor
 * table, an available ring and a used ring. Tests use it to offer well-formed and malformed chains.
 */
public final class DriverQueue {
    public record Buf(long addr, int len, boolean writable) {
        public static Buf in(long addr, int len) { // device-readable ("out" from the driver's view)
            return new Buf(addr, len, false);
        }

        public static Buf out(long addr, int len) { // device-writable
            return new Buf(addr, len, true);
        }
    }

    public final GuestMemory mem;
    public final int size;
    public final long desc, avail, used;
    private int nextDesc;
    private int availIdx;
    private int lastUsed;

    public DriverQueue(GuestRam ram, int size) {
        this.mem = ram.memory;
        this.size = size;
        this.desc = ram.alloc(16L * size, 16);
        this.avail = ram.alloc(6 + 2L * size, 2);
        this.used = ram.alloc(6 + 8L * size, 4);
    }

    public DriverQueue(GuestMemory mem, int size, long desc, long avail, long used) {
        this.mem = mem;
        this.size = size;
        this.desc = desc;
        this.avail = avail;
        this.used = used;
    }

    public void setDesc(int i, long addr, long len, int flags, int next) {
        long d = desc + 16L * i;
        mem.writeLong(d, addr);
        mem.writeInt(d + 8, (int) len);
        mem.writeShort(d + 12, (short) flags);
        mem.writeShort(d + 14, (short) next);
    }

    /** Writes a descriptor at gpa (an indirect table entry). */
    public void setDescAt(long gpa, long addr, long len, int flags, int next) {
        mem.writeLong(gpa, addr);
        mem.writeInt(gpa + 8, (int) len);
        mem.writeShort(gpa + 12, (short) flags);
        mem.writeShort(gpa + 14, (short) next);
    }

    /** Lays the buffers out as a chain in free descriptors; returns the head without publishing it. */
    public int chain(Buf... bufs) {
        int head = nextDesc;
        for (int i = 0; i < bufs.length; i++) {
            int idx = (head + i) % size;
            int nxt = (head + i + 1) % size;
            Buf b = bufs[i];
            int flags = (b.writable() ? Virtqueue.DESC_F_WRITE : 0) | (i + 1 < bufs.length ? Virtqueue.DESC_F_NEXT : 0);
            setDesc(idx, b.addr(), b.len(), flags, nxt);
        }
        nextDesc = (head + bufs.length) % size;
        return head;
    }

    /** Puts the chain in an indirect table at tableGpa and one descriptor pointing at it; returns the head. */
    public int indirectChain(long tableGpa, Buf... bufs) {
        for (int i = 0; i < bufs.length; i++) {
            Buf b = bufs[i];
            int flags = (b.writable() ? Virtqueue.DESC_F_WRITE : 0) | (i + 1 < bufs.length ? Virtqueue.DESC_F_NEXT : 0);
            setDescAt(tableGpa + 16L * i, b.addr(), b.len(), flags, i + 1);
        }
        int head = nextDesc;
        setDesc(head, tableGpa, 16L * bufs.length, Virtqueue.DESC_F_INDIRECT, 0);
        nextDesc = (head + 1) % size;
        return head;
    }

    /** Publishes a head in the available ring and bumps the index. */
    public void publish(int head) {
        mem.writeShort(avail + 4 + 2L * (availIdx % size), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        mem.writeShort(avail + 2, (short) availIdx);
    }

    public int add(Buf... bufs) {
        int head = chain(bufs);
        publish(head);
        return head;
    }

    public void setAvailIdx(int idx) {
        availIdx = idx & 0xffff;
        mem.writeShort(avail + 2, (short) availIdx);
    }

    public void setAvailEntry(int slot, int head) {
        mem.writeShort(avail + 4 + 2L * slot, (short) head);
    }

    public void setAvailFlags(int flags) {
        mem.writeShort(avail, (short) flags);
    }

    public void setUsedEvent(int idx) {
        mem.writeShort(avail + 4 + 2L * size, (short) idx);
    }

    public int availEvent() {
        return mem.readShort(used + 4 + 8L * size) & 0xffff;
    }

    public int usedFlags() {
        return mem.readShort(used) & 0xffff;
    }

    public int usedIdx() {
        return mem.readShort(used + 2) & 0xffff;
    }

    public int usedId(int i) {
        return mem.readInt(used + 4 + 8L * (i % size));
    }

    public int usedLen(int i) {
        return mem.readInt(used + 8 + 8L * (i % size));
    }

    /** Used entries not yet consumed by this driver. */
    public int pendingUsed() {
        return (usedIdx() - lastUsed) & 0xffff;
    }

    /** Consumes one used element: {id, len}. */
    public int[] takeUsed() {
        if (pendingUsed() == 0) throw new IllegalStateException("no used element");
        int[] e = {usedId(lastUsed), usedLen(lastUsed)};
        lastUsed = (lastUsed + 1) & 0xffff;
        return e;
    }
}
