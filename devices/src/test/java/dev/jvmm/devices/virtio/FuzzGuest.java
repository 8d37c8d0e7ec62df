package dev.jvmm.devices.virtio;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.memory.MemoryRegion;
import dev.jvmm.devices.FuzzInput;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Guest RAM and a guest driver for the virtio fuzz targets: two RAM regions with a gap between them, filled with a
 * known pattern, a fixed place for each queue's rings, an area for indirect tables and one for buffers; decoding of
 * fuzzed addresses, lengths and flags; a reference walk of descriptor chains (what the spec says a device pops); and
 * a before/after comparison of RAM that names the first byte written outside the ranges a device may write.
 *
 * <p>Layout: region A at {@link #A} holds, per queue, the descriptor table (+0), the available ring (+0x200) and the
 * used ring (+0x300) in a 4 KiB slot, then the indirect tables, then buffers; region B is more buffer space.
 *
 * <p>In <em>contained</em> mode the driver never hands the device a device-writable buffer over the descriptor
 * tables, available rings or indirect tables (a fuzzed one is moved into the buffer area), and never points an
 * indirect descriptor outside the indirect area. What the device reads as a chain then cannot change while it works,
 * so the chains it will pop are known beforehand ({@link #pending}) and every byte it writes can be checked against
 * their device-writable buffers. A used ring may be written over by a buffer: the device never reads it. In
 * <em>wild</em> mode anything goes, and the targets check what needs no such knowledge.
 */
public final class FuzzGuest {
    public static final long A = 0x10000, A_SIZE = 0x20000, B = 0x40000, B_SIZE = 0x2000;
    public static final int QUEUES = 5, MAX_QUEUE = 32;
    public static final long SLOT = 0x1000, AVAIL_AT = 0x200, USED_AT = 0x300;
    public static final long INDIRECT = A + QUEUES * SLOT, INDIRECT_END = A + 0x8000;
    public static final long DATA = INDIRECT_END, DATA_END = A + A_SIZE;

    private static final ValueLayout.OfShort U16 =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final long[] HUGE = {
        -1L, Long.MIN_VALUE, Long.MAX_VALUE, 0xffff_ffffL, 1L << 32, -16L, -4096L, (1L << 52) - 16, A_SIZE, B - 1
    };

    private static final byte[] PATTERN = new byte[1 << 16];

    static {
        new Random(0xf00d).nextBytes(PATTERN);
    }

    /**
     * {@code len} bytes of a fixed pseudo-random pattern, starting at a place {@code seed} picks: content for frames
     * and disk writes, made without a loop per byte (which instrumentation would make slow).
     */
    public static byte[] patterned(int len, int seed) {
        byte[] b = new byte[len];
        int from = (seed & 0x7fff_ffff) % PATTERN.length;
        for (int pos = 0; pos < len; ) {
            int n = Math.min(len - pos, PATTERN.length - from);
            System.arraycopy(PATTERN, from, b, pos, n);
            pos += n;
            from = 0;
        }
        return b;
    }

    private final Arena arena = Arena.ofShared();
    private final MemorySegment ra = arena.allocate(A_SIZE, 4096), rb = arena.allocate(B_SIZE, 4096);
    private final MemorySegment snapA = MemorySegment.ofArray(new byte[(int) A_SIZE]),
            snapB = MemorySegment.ofArray(new byte[(int) B_SIZE]);
    private final MemorySegment patternA = MemorySegment.ofArray(new byte[(int) A_SIZE]),
            patternB = MemorySegment.ofArray(new byte[(int) B_SIZE]);
    public final GuestMemory memory = GuestMemory.wrap(List.of(new MemoryRegion(A, ra), new MemoryRegion(B, rb)));
    private boolean contained;
    private long nextData, nextIndirect;

    public FuzzGuest() {
        Random r = new Random(0x5eed);
        byte[] a = new byte[(int) A_SIZE], b = new byte[(int) B_SIZE];
        r.nextBytes(a);
        r.nextBytes(b);
        MemorySegment.copy(MemorySegment.ofArray(a), 0, patternA, 0, A_SIZE);
        MemorySegment.copy(MemorySegment.ofArray(b), 0, patternB, 0, B_SIZE);
    }

    /** Back to the pattern, rings zeroed (and the indirect area too when contained). */
    public void reset(boolean contained) {
        this.contained = contained;
        MemorySegment.copy(patternA, 0, ra, 0, A_SIZE);
        MemorySegment.copy(patternB, 0, rb, 0, B_SIZE);
        ra.asSlice(0, (contained ? INDIRECT_END : INDIRECT) - A).fill((byte) 0);
        nextData = DATA;
        nextIndirect = INDIRECT;
    }

    public boolean contained() {
        return contained;
    }

    // ---- the driver's layout

    /** Where the driver put one queue: {@code size} entries and the three areas. */
    public record Ring(int size, long desc, long avail, long used) {
        public long usedBytes() {
            return 6 + 8L * size;
        }

        /** The used ring as an allowed range. */
        public long[] usedRange() {
            return new long[] {used, used + usedBytes()};
        }
    }

    /** Queue {@code index}'s rings in their slot, for a queue of {@code size} entries (at most {@link #MAX_QUEUE}). */
    public static Ring ring(int index, int size) {
        long base = A + index * SLOT;
        return new Ring(size, base, base + AVAIL_AT, base + USED_AT);
    }

    /** A queue of the device's {@code maxSize} the driver configured as {@code ring}, ready and not yet active. */
    public static Virtqueue queue(int maxSize, Ring ring) {
        Virtqueue q = new Virtqueue(maxSize);
        q.setSize(ring.size());
        q.setDescAddress(ring.desc());
        q.setDriverAddress(ring.avail());
        q.setDeviceAddress(ring.used());
        q.setReady(true);
        return q;
    }

    // ---- fuzzed values

    /** A buffer address: mostly in the buffer areas, else at edges of RAM, outside it, at rings, or raw. */
    public long pickAddress(FuzzInput in) {
        int k = in.u8() % 16;
        return switch (k) {
            case 0, 1, 2, 3, 4, 5 -> DATA + Integer.toUnsignedLong(in.u32()) % (DATA_END - DATA);
            case 6 -> B + in.u16() % B_SIZE;
            case 7 -> DATA_END - 1 - in.u8();
            case 8 -> B + B_SIZE - 1 - in.u8();
            case 9 -> DATA_END + in.u16(); // the gap between the regions
            case 10 -> in.u16(); // below RAM
            case 11 -> HUGE[in.u8() % HUGE.length];
            case 12 -> A + in.u8() % QUEUES * SLOT + USED_AT + in.u8();
            case 13 -> A + in.u8() % QUEUES * SLOT + in.u16() % USED_AT;
            case 14 -> INDIRECT + 16L * in.below(64); // the slots the fuzz targets write raw entries to
            default -> in.u64();
        };
    }

    /** A descriptor length (u32). */
    public static long pickLength(FuzzInput in) {
        int k = in.u8() % 14;
        return switch (k) {
            case 0 -> 0;
            case 1 -> 1;
            case 2 -> in.u8();
            case 3 -> 16L * (1 + in.u8() % 8);
            case 4 -> 512;
            case 5 -> 512L * (1 + in.u8() % 16);
            case 6 -> in.u16();
            case 7 -> 0xffff_ffffL;
            case 8 -> 0x8000_0000L;
            case 9 -> 12;
            case 10 -> 511;
            case 11 -> 513;
            case 12 -> 14 + in.u8();
            default -> Integer.toUnsignedLong(in.u32());
        };
    }

    /** Descriptor flags: mostly NEXT, WRITE and INDIRECT in any combination, sometimes any u16. */
    public static int pickFlags(FuzzInput in) {
        int f = in.u8();
        return (f & 0xf8) == 0xf8 ? in.u16() : f & 7;
    }

    /** A descriptor index: mostly within the queue, sometimes any u16. */
    public static int pickIndex(FuzzInput in, int size) {
        int k = in.u8();
        return k < 0xf0 ? k % Math.max(1, size) : in.u16();
    }

    // ---- the driver's writes

    /** {@code len} bytes of buffer space (wrapping around the buffer area), 16-byte aligned. */
    public long alloc(long len) {
        len = Math.min(Math.max(len, 1), DATA_END - DATA);
        long at = (nextData + 15) & ~15L;
        if (at + len > DATA_END) at = DATA;
        nextData = at + len;
        return at;
    }

    /** Room for an indirect table of {@code entries} descriptors (wrapping around the indirect area). */
    public long allocIndirect(int entries) {
        long len = Math.min(16L * Math.max(entries, 1), INDIRECT_END - INDIRECT);
        if (nextIndirect + len > INDIRECT_END) nextIndirect = INDIRECT;
        long at = nextIndirect;
        nextIndirect += len;
        return at;
    }

    /** Whether [addr, addr + len) lies in RAM (in one region). */
    public boolean valid(long addr, long len) {
        return memory.isValid(addr, len);
    }

    /**
     * Writes a descriptor at {@code gpa} (a table slot) the way the driver means it; in contained mode a
     * device-writable buffer over the driver's structures moves into the buffer area and an indirect table outside
     * the indirect area moves into it (ranges outside RAM stay: the device refuses them).
     */
    public void putDescriptor(long gpa, long addr, long len, int flags, int next) {
        len &= 0xffff_ffffL;
        if (contained && len > 0 && valid(addr, len)) {
            if ((flags & Virtqueue.DESC_F_INDIRECT) != 0) {
                if (addr < INDIRECT || addr + len > INDIRECT_END) {
                    addr = INDIRECT + (Long.remainderUnsigned(addr, INDIRECT_END - INDIRECT) & ~15L);
                    len = Math.min(len, INDIRECT_END - addr);
                }
            } else if ((flags & Virtqueue.DESC_F_WRITE) != 0 && touchesDriverStructures(addr, len)) {
                addr = DATA + Long.remainderUnsigned(addr, DATA_END - DATA);
                len = Math.min(len, DATA_END - addr);
            }
        }
        if (!valid(gpa, 16)) return;
        memory.writeLong(gpa, addr);
        memory.writeInt(gpa + 8, (int) len);
        memory.writeShort(gpa + 12, (short) flags);
        memory.writeShort(gpa + 14, (short) next);
    }

    /** Whether [addr, addr + len) touches a descriptor table, an available ring or the indirect area. */
    public static boolean touchesDriverStructures(long addr, long len) {
        long end = addr + len;
        if (end <= A || addr >= INDIRECT_END) return false;
        if (end > INDIRECT) return true;
        for (int q = 0; q < QUEUES; q++) {
            long base = A + q * SLOT;
            if (addr < base + USED_AT && end > base) return true;
        }
        return false;
    }

    /** A buffer of a chain as the driver describes it. */
    public record Buf(long addr, long len, boolean writable) {}

    /** The driver's side of one queue: lays out chains, publishes heads. */
    public final class Driver {
        public final Ring ring;
        private int nextDesc, availIdx;

        public Driver(Ring ring) {
            this.ring = ring;
        }

        public int availIdx() {
            return availIdx;
        }

        public void setDescriptor(int index, long addr, long len, int flags, int next) {
            putDescriptor(ring.desc() + 16L * index, addr, len, flags, next);
        }

        /**
         * Writes the buffers as a chain in the next free descriptors (or in an indirect table the head descriptor
         * names), NEXT flags linking them; returns the head without publishing it.
         */
        public int chain(List<Buf> bufs, boolean indirect) {
            int size = Math.max(1, ring.size());
            int head = nextDesc % size;
            if (indirect) {
                long table = allocIndirect(bufs.size());
                for (int i = 0; i < bufs.size(); i++) {
                    Buf b = bufs.get(i);
                    int flags = (b.writable() ? Virtqueue.DESC_F_WRITE : 0)
                            | (i + 1 < bufs.size() ? Virtqueue.DESC_F_NEXT : 0);
                    putDescriptor(table + 16L * i, b.addr(), b.len(), flags, i + 1);
                }
                setDescriptor(head, table, 16L * bufs.size(), Virtqueue.DESC_F_INDIRECT, 0);
                nextDesc = head + 1;
                return head;
            }
            for (int i = 0; i < bufs.size(); i++) {
                Buf b = bufs.get(i);
                int flags =
                        (b.writable() ? Virtqueue.DESC_F_WRITE : 0) | (i + 1 < bufs.size() ? Virtqueue.DESC_F_NEXT : 0);
                setDescriptor((head + i) % size, b.addr(), b.len(), flags, (head + i + 1) % size);
            }
            nextDesc = head + bufs.size();
            return head;
        }

        /** Puts a head in the next available entry and bumps the index. */
        public void publish(int head) {
            int size = Math.max(1, ring.size());
            long slot = ring.avail() + 4 + 2L * (availIdx % size);
            if (valid(slot, 2)) memory.writeShort(slot, (short) head);
            setAvailIdx(availIdx + 1);
        }

        /** A hostile driver's raw write: a descriptor of the ring's table, every field fuzzed. */
        public void fuzzDescriptor(FuzzInput in) {
            setDescriptor(
                    in.below(ring.size()), pickAddress(in), pickLength(in), pickFlags(in), pickIndex(in, ring.size()));
        }

        /** A hostile driver's raw write: the available index set anywhere, or moved by a signed byte. */
        public void fuzzAvailIdx(FuzzInput in) {
            setAvailIdx(in.bool() ? in.u16() : availIdx() + (byte) in.u8());
        }

        public void setAvailIdx(int idx) {
            availIdx = idx & 0xffff;
            if (valid(ring.avail() + 2, 2)) memory.writeShort(ring.avail() + 2, (short) availIdx);
        }

        /** The used element {@code i} (mod size): {id, len}. */
        public int[] used(int i) {
            long slot = ring.used() + 4 + 8L * (i % ring.size());
            return new int[] {memory.readInt(slot), memory.readInt(slot + 4)};
        }

        public int usedIdx() {
            return memory.readShort(ring.used() + 2) & 0xffff;
        }
    }

    // ---- the reference walk

    /** A chain as the reference walk finds it: its head and buffers in order. */
    public record Chain(int head, List<Buf> bufs) {
        public long writableLength() {
            long n = 0;
            for (Buf b : bufs) if (b.writable()) n += b.len();
            return n;
        }

        public long readableLength() {
            long n = 0;
            for (Buf b : bufs) if (!b.writable()) n += b.len();
            return n;
        }

        public List<Buf> writable() {
            return bufs.stream().filter(Buf::writable).toList();
        }

        public List<Buf> readable() {
            return bufs.stream().filter(b -> !b.writable()).toList();
        }
    }

    /** What {@link #walk} finds: nothing available, a chain, or a violation the device must refuse. */
    public record Walk(Chain chain, String refusal) {
        public static final Walk NONE = new Walk(null, null);

        public boolean none() {
            return chain == null && refusal == null;
        }
    }

    private static Walk refuse(String why) {
        return new Walk(null, why);
    }

    /**
     * What a device whose queue holds at most {@code maxSize} entries pops next from {@code ring}, with
     * {@code nextAvail} its next available index, read from RAM as it is now: virtio 1.2, 2.7.5 and 2.7.13, with the
     * bounds a device needs to stay safe (a chain visits no descriptor twice, holds at most the queue size of
     * buffers, and totals at most 4 GiB; an indirect table holds at most the maximum queue size of descriptors, and
     * only the last descriptor of a chain may be indirect). An independent statement of those rules, for comparing.
     */
    /** A hostile driver's raw write: an entry of the indirect table at {@link #INDIRECT}, every field fuzzed. */
    public void fuzzIndirectDescriptor(FuzzInput in) {
        putDescriptor(INDIRECT + 16L * in.below(64), pickAddress(in), pickLength(in), pickFlags(in), pickIndex(in, 64));
    }

    public Walk walk(Ring ring, int nextAvail, int maxSize, boolean indirectNegotiated) {
        int size = ring.size();
        int availIdx = memory.readShort(ring.avail() + 2) & 0xffff;
        int pending = (availIdx - nextAvail) & 0xffff;
        if (pending == 0) return Walk.NONE;
        if (pending > size) return refuse("available index " + availIdx + " runs " + pending + " ahead");
        int head = memory.readShort(ring.avail() + 4 + 2L * (nextAvail % size)) & 0xffff;
        if (head >= size) return refuse("head " + head + " beyond the queue");
        List<Buf> bufs = new ArrayList<>();
        long table = ring.desc();
        int tableSize = size, index = head;
        boolean inIndirect = false, seenWritable = false;
        boolean[] visited = new boolean[tableSize];
        long total = 0;
        while (true) {
            if (index >= tableSize) return refuse("next " + index + " beyond its table");
            if (visited[index]) return refuse("loop at " + index);
            visited[index] = true;
            long d = table + 16L * index;
            long addr = memory.readLong(d);
            long len = memory.readInt(d + 8) & 0xffff_ffffL;
            int flags = memory.readShort(d + 12) & 0xffff;
            int next = memory.readShort(d + 14) & 0xffff;
            if ((flags & Virtqueue.DESC_F_INDIRECT) != 0) {
                if (!indirectNegotiated) return refuse("indirect without the feature");
                if (inIndirect) return refuse("nested indirect");
                if ((flags & Virtqueue.DESC_F_NEXT) != 0) return refuse("indirect with next");
                if (len == 0 || len % 16 != 0 || len / 16 > maxSize) return refuse("indirect length " + len);
                if (!valid(addr, len)) return refuse("indirect table outside RAM");
                table = addr;
                tableSize = (int) (len / 16);
                visited = new boolean[tableSize];
                inIndirect = true;
                index = 0;
                continue;
            }
            boolean w = (flags & Virtqueue.DESC_F_WRITE) != 0;
            if (!w && seenWritable) return refuse("readable after writable");
            if (bufs.size() + 1 > maxSize) return refuse("more buffers than the queue");
            total += len;
            if (total > 0xffff_ffffL) return refuse("more than 4 GiB");
            if (!valid(addr, len)) return refuse("buffer outside RAM");
            bufs.add(new Buf(addr, len, w));
            seenWritable |= w;
            if ((flags & Virtqueue.DESC_F_NEXT) == 0) return new Walk(new Chain(head, List.copyOf(bufs)), null);
            index = next;
        }
    }

    /** The chains available from {@code nextAvail} on, in order, up to the first refusal (then {@code refused}). */
    public record Pending(List<Chain> chains, boolean refused) {
        /** Every chain's device-writable buffers, and the used ring, as allowed ranges. */
        public List<long[]> writableRanges(Ring ring) {
            List<long[]> r = new ArrayList<>();
            r.add(ring.usedRange());
            for (Chain c : chains)
                for (Buf b : c.writable()) if (b.len() > 0) r.add(new long[] {b.addr(), b.addr() + b.len()});
            return r;
        }
    }

    public Pending pending(Ring ring, int nextAvail, int maxSize, boolean indirect) {
        List<Chain> chains = new ArrayList<>();
        for (int i = 0; i <= ring.size(); i++) {
            Walk w = walk(ring, (nextAvail + i) & 0xffff, maxSize, indirect);
            if (w.none()) return new Pending(chains, false);
            if (w.chain() == null) return new Pending(chains, true);
            chains.add(w.chain());
        }
        return new Pending(chains, false);
    }

    // ---- before and after

    /** Remembers RAM as it is now, for {@link #changedOutside}. */
    public void snapshot() {
        MemorySegment.copy(ra, 0, snapA, 0, A_SIZE);
        MemorySegment.copy(rb, 0, snapB, 0, B_SIZE);
    }

    /** The byte at {@code gpa} when {@link #snapshot} was taken. */
    public byte before(long gpa) {
        return gpa >= B ? snapB.get(ValueLayout.JAVA_BYTE, gpa - B) : snapA.get(ValueLayout.JAVA_BYTE, gpa - A);
    }

    public byte[] before(long gpa, long len) {
        MemorySegment snap = gpa >= B ? snapB : snapA;
        return snap.asSlice(gpa - (gpa >= B ? B : A), len).toArray(ValueLayout.JAVA_BYTE);
    }

    public byte[] now(long gpa, long len) {
        byte[] b = new byte[(int) len];
        memory.read(gpa, b, 0, (int) len);
        return b;
    }

    public int u16(long gpa) {
        return memory.readShort(gpa) & 0xffff;
    }

    /**
     * The first guest address whose byte differs from the {@link #snapshot} and lies outside every allowed range
     * ({start, end} pairs), or -1 when there is none.
     */
    public long changedOutside(List<long[]> allowed) {
        long a = changedOutside(ra, snapA, A, allowed);
        return a >= 0 ? a : changedOutside(rb, snapB, B, allowed);
    }

    private static long changedOutside(MemorySegment now, MemorySegment then, long base, List<long[]> allowed) {
        long size = now.byteSize(), off = 0;
        while (off < size) {
            long m = MemorySegment.mismatch(now, off, size, then, off, size);
            if (m < 0) return -1;
            long gpa = base + off + m;
            long end = -1;
            for (long[] r : allowed) if (gpa >= r[0] && gpa < r[1]) end = Math.max(end, r[1]);
            if (end < 0) return gpa;
            off = Math.min(size, end - base);
        }
        return -1;
    }

    /** The guest address a segment from this RAM starts at. */
    public long gpaOf(MemorySegment s) {
        long a = s.address();
        if (a >= ra.address() && a <= ra.address() + A_SIZE) return A + (a - ra.address());
        if (a >= rb.address() && a <= rb.address() + B_SIZE) return B + (a - rb.address());
        throw new AssertionError("a segment outside guest RAM: 0x" + Long.toHexString(a));
    }

    /** Little-endian u16 from a segment. */
    public static int u16(MemorySegment s, long offset) {
        return s.get(U16, offset) & 0xffff;
    }

    /** Whether any two of the ranges overlap. */
    public static boolean overlapping(List<long[]> ranges) {
        for (int i = 0; i < ranges.size(); i++)
            for (int j = i + 1; j < ranges.size(); j++) {
                long[] x = ranges.get(i), y = ranges.get(j);
                if (x[0] < y[1] && y[0] < x[1]) return true;
            }
        return false;
    }
}
