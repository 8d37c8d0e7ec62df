package dev.jvmm.devices.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.devices.FuzzInput;
import dev.jvmm.devices.FuzzInput.Writer;
import dev.jvmm.devices.virtio.FuzzGuest.Buf;
import dev.jvmm.devices.virtio.FuzzGuest.Chain;
import dev.jvmm.devices.virtio.FuzzGuest.Ring;
import dev.jvmm.devices.virtio.FuzzGuest.Walk;
import dev.jvmm.devices.virtio.VirtqueueException.Kind;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Fuzzes the device side of a split virtqueue with a hostile driver: the input lays out the rings (sizes and addresses
 * good and bad), writes descriptors and indirect tables (addresses inside, across the edges of and outside RAM, any
 * length and flags, next indices that loop), publishes heads and moves the available index; this test plays the
 * device, popping, writing, returning and giving back chains and deciding on notifications.
 *
 * <p>Checked: activation refuses exactly the layouts the spec forbids, with a layout {@link Kind}; every pop agrees
 * with an independent walk of the chain ({@link FuzzGuest#walk}): the same buffers in the same order, or a
 * {@link VirtqueueException} of a chain {@link Kind} where the walk finds a violation (a loop among them), after
 * which the queue is broken and yields nothing; nothing else is thrown; pop writes nothing to guest RAM; a chain's
 * reads and writes reach exactly its buffers; addUsed writes only its used element and the used index, and the
 * notification calls only the used ring's flags and avail_event; a notification the driver asked for (used_event,
 * or no NO_INTERRUPT flag) is never withheld.
 *
 * <p>Input: see {@link #chains}; {@link #main} writes the seed inputs.
 */
class VirtqueueFuzzTest {
    static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VERSION_1),
            INDIRECT = VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC),
            EVENT_IDX = VirtioFeatures.bit(VirtioFeatures.EVENT_IDX);
    static final Set<Kind> LAYOUT_KINDS =
            EnumSet.of(Kind.BAD_QUEUE_SIZE, Kind.RING_MISALIGNED, Kind.RING_OUTSIDE_MEMORY, Kind.RINGS_OVERLAP);
    static final Set<Kind> CHAIN_KINDS = EnumSet.complementOf(EnumSet.of(
            Kind.CHAIN_TOO_SHORT,
            Kind.BAD_QUEUE_SIZE,
            Kind.RING_MISALIGNED,
            Kind.RING_OUTSIDE_MEMORY,
            Kind.RINGS_OVERLAP));
    static final int MAX_OPS = 300;

    /** The operations, one input byte each (mod their number), followed by their operands. */
    static final int OP_DESC = 0,
            OP_DESC2 = 1,
            OP_INDIRECT_ENTRY = 2,
            OP_PUBLISH = 3,
            OP_AVAIL_IDX = 4,
            OP_POP = 5,
            OP_POP2 = 6,
            OP_USED = 7,
            OP_UNPOP = 8,
            OP_NOTIFY = 9,
            OP_CHAIN = 10,
            OP_RESET = 11,
            OPS = 12;

    private static final FuzzGuest guest = new FuzzGuest();

    private static final class Popped {
        final Chain chain;
        boolean used;

        Popped(Chain chain) {
            this.chain = chain;
        }
    }

    private Ring ring;
    private int maxSize;
    private boolean indirect, eventIdx;
    private Virtqueue q;
    private FuzzGuest.Driver driver;
    private DescriptorChain chain;
    private List<Popped> popped;
    private int usedCount, lastDecided;

    /**
     * Input: max size (u8: 2^(n%6)), layout (u8 mode: bits 0-2 size = max / any power of two / raw u16, bits 3-5
     * addresses = canonical / nudged / fuzzed, then their operands), features (u8: bit 0 INDIRECT_DESC, bit 1
     * EVENT_IDX), then operations (see OP_*) until the input ends.
     */
    @FuzzTest(maxDuration = "30s")
    void chains(byte[] input) {
        FuzzInput in = new FuzzInput(input);
        guest.reset(false);
        maxSize = 1 << in.below(6);
        ring = layout(in, maxSize);
        int f = in.u8();
        indirect = (f & 1) != 0;
        eventIdx = (f & 2) != 0;
        if (!activate()) return;
        for (int op = 0; op < MAX_OPS && in.more(); op++) {
            switch (in.u8() % OPS) {
                case OP_DESC, OP_DESC2 -> driver.fuzzDescriptor(in);
                case OP_INDIRECT_ENTRY -> guest.fuzzIndirectDescriptor(in);
                case OP_PUBLISH -> {
                    int k = in.u8();
                    driver.publish(k < 0xf0 ? k % ring.size() : in.u16());
                }
                case OP_AVAIL_IDX -> driver.fuzzAvailIdx(in);
                case OP_POP, OP_POP2 -> {
                    if (!pop(in)) return;
                }
                case OP_USED -> used(in);
                case OP_UNPOP -> unpop(in);
                case OP_NOTIFY -> notification(in);
                case OP_CHAIN -> {
                    int n = 1 + in.below(5), writableFrom = in.below(n + 1);
                    List<Buf> bufs = new ArrayList<>();
                    for (int i = 0; i < n; i++)
                        bufs.add(new Buf(guest.pickAddress(in), FuzzGuest.pickLength(in), i >= writableFrom));
                    driver.publish(driver.chain(bufs, indirect && in.bool()));
                }
                default -> {
                    // OP_RESET: the driver resets the queue and sets it up again.
                    q.reset();
                    if (guest.valid(ring.avail(), 6 + 2L * ring.size()))
                        guest.memory.fill(ring.avail(), 6 + 2L * ring.size(), (byte) 0);
                    if (guest.valid(ring.used(), ring.usedBytes()))
                        guest.memory.fill(ring.used(), ring.usedBytes(), (byte) 0);
                    if (!activate()) return;
                }
            }
        }
    }

    static Ring layout(FuzzInput in, int maxSize) {
        int mode = in.u8();
        int size = switch (mode & 7) {
            case 6 -> 1 << in.below(7);
            case 7 -> in.u16();
            default -> maxSize;
        };
        Ring canonical = FuzzGuest.ring(0, Math.max(1, Math.min(size, FuzzGuest.MAX_QUEUE)));
        return switch ((mode >>> 3) & 7) {
            case 6 ->
                new Ring(
                        size,
                        canonical.desc() + (byte) in.u8(),
                        canonical.avail() + (byte) in.u8(),
                        canonical.used() + (byte) in.u8());
            case 7 -> {
                FuzzGuest g = guest;
                yield new Ring(size, g.pickAddress(in), g.pickAddress(in), g.pickAddress(in));
            }
            default -> new Ring(size, canonical.desc(), canonical.avail(), canonical.used());
        };
    }

    /** Why the spec forbids the layout, or null. */
    static String layoutProblem(Ring r, int maxSize) {
        int size = r.size();
        if (size < 1 || size > maxSize || Integer.bitCount(size) != 1) return "size " + size;
        long descLen = 16L * size, availLen = 6 + 2L * size, usedLen = r.usedBytes();
        if ((r.desc() & 15) != 0 || (r.avail() & 1) != 0 || (r.used() & 3) != 0) return "misaligned";
        if (!guest.valid(r.desc(), descLen) || !guest.valid(r.avail(), availLen) || !guest.valid(r.used(), usedLen))
            return "outside RAM";
        if (apart(r.desc(), descLen, r.avail(), availLen)
                && apart(r.desc(), descLen, r.used(), usedLen)
                && apart(r.avail(), availLen, r.used(), usedLen)) return null;
        return "overlapping";
    }

    private static boolean apart(long a, long alen, long b, long blen) {
        return a + alen <= b || b + blen <= a;
    }

    /** Activates the queue: false when it is (rightly) refused. */
    private boolean activate() {
        q = FuzzGuest.queue(maxSize, ring);
        String problem = layoutProblem(ring, maxSize);
        guest.snapshot();
        try {
            q.activate(guest.memory, VERSION_1 | (indirect ? INDIRECT : 0) | (eventIdx ? EVENT_IDX : 0));
        } catch (VirtqueueException e) {
            if (problem == null) fail("a good layout " + ring + " refused: " + e.getMessage());
            assertTrue(LAYOUT_KINDS.contains(e.kind()), e.kind() + " at activation: " + e.getMessage());
            assertFalse(q.isActive());
            assertFalse(q.pop(new DescriptorChain(maxSize)), "an inactive queue yields nothing");
            return false;
        }
        if (problem != null) fail("activated although the layout " + ring + " is bad: " + problem);
        assertNoWrite("activation");
        driver = guest.new Driver(ring);
        chain = new DescriptorChain(maxSize);
        popped = new ArrayList<>();
        usedCount = lastDecided = 0;
        return true;
    }

    private void assertNoWrite(String what) {
        long at = guest.changedOutside(List.of());
        if (at >= 0) fail(what + " wrote guest RAM at 0x" + Long.toHexString(at));
    }

    private void assertWritesWithin(String what, List<long[]> allowed) {
        long at = guest.changedOutside(allowed);
        if (at >= 0) fail(what + " wrote guest RAM at 0x" + Long.toHexString(at) + ", outside what it may write");
    }

    /** One pop, checked against the reference walk; false once the queue is (rightly) broken. */
    private boolean pop(FuzzInput in) {
        Walk expected = guest.walk(ring, q.nextAvail(), maxSize, indirect);
        assertEquals(!expected.none(), q.hasAvailable(), "hasAvailable");
        guest.snapshot();
        boolean got;
        VirtqueueException refused = null;
        try {
            got = q.pop(chain);
        } catch (VirtqueueException e) {
            refused = e;
            got = false;
        }
        assertNoWrite("pop");
        if (expected.none()) {
            assertFalse(got || refused != null, "pop found a chain although none is available");
            return true;
        }
        if (expected.refusal() != null) {
            if (refused == null)
                fail("pop took a chain the driver broke the rules with (" + expected.refusal() + "): head "
                        + chain.head());
            assertTrue(CHAIN_KINDS.contains(refused.kind()), refused.kind() + ": " + refused.getMessage());
            assertTrue(q.isBroken(), "broken after " + refused.getMessage());
            assertFalse(q.pop(chain), "a broken queue yields nothing");
            assertFalse(q.hasAvailable());
            assertFalse(q.needsNotification());
            return false;
        }
        if (refused != null) fail("pop refused a good chain " + expected.chain() + ": " + refused.getMessage());
        assertTrue(got);
        Chain c = expected.chain();
        assertSame(c, chain);
        readAll(c);
        writeSome(in, c);
        popped.add(new Popped(c));
        return true;
    }

    /** The popped chain holds exactly the walked buffers. */
    private void assertSame(Chain c, DescriptorChain got) {
        assertEquals(c.head(), got.head(), "head");
        List<Buf> r = c.readable(), w = c.writable();
        assertEquals(r.size(), got.readableCount(), "readable buffers of " + c);
        assertEquals(w.size(), got.writableCount(), "writable buffers of " + c);
        for (int i = 0; i < r.size(); i++) {
            assertEquals(r.get(i).addr(), guest.gpaOf(got.readable(i)), "readable " + i + " of " + c);
            assertEquals(r.get(i).len(), got.readable(i).byteSize(), "readable " + i + " of " + c);
        }
        for (int i = 0; i < w.size(); i++) {
            assertEquals(w.get(i).addr(), guest.gpaOf(got.writable(i)), "writable " + i + " of " + c);
            assertEquals(w.get(i).len(), got.writable(i).byteSize(), "writable " + i + " of " + c);
        }
        assertEquals(c.readableLength(), got.readableLength());
        assertEquals(c.writableLength(), got.writableLength());
    }

    /** readFrom over the whole readable part gives the buffers' bytes back to back. */
    private void readAll(Chain c) {
        long n = c.readableLength();
        if (n > (1 << 20)) return;
        byte[] got = new byte[(int) n];
        chain.readFrom(0, MemorySegment.ofArray(got), 0, n);
        ByteArrayOutputStream want = new ByteArrayOutputStream();
        for (Buf b : c.readable()) want.writeBytes(guest.now(b.addr(), b.len()));
        assertArrayEquals(want.toByteArray(), got, "readable bytes of " + c);
    }

    /** writeTo a fuzzed range of the writable part: the bytes land there and nowhere else. */
    private void writeSome(FuzzInput in, Chain c) {
        long n = c.writableLength();
        if (n == 0 || n > (1 << 20)) return;
        long off = Integer.toUnsignedLong(in.u32()) % (n + 1);
        long len = Integer.toUnsignedLong(in.u32()) % (n - off + 1);
        byte[] src = FuzzGuest.patterned((int) len, usedCount * 977 + (int) off);
        List<long[]> ranges = new ArrayList<>();
        for (Buf b : c.writable()) if (b.len() > 0) ranges.add(new long[] {b.addr(), b.addr() + b.len()});
        ByteArrayOutputStream expect = new ByteArrayOutputStream();
        for (Buf b : c.writable()) expect.writeBytes(guest.now(b.addr(), b.len()));
        byte[] want = expect.toByteArray();
        System.arraycopy(src, 0, want, (int) off, src.length);
        guest.snapshot();
        chain.writeTo(off, MemorySegment.ofArray(src), 0, len);
        assertWritesWithin("writeTo", ranges);
        if (!FuzzGuest.overlapping(ranges)) {
            ByteArrayOutputStream now = new ByteArrayOutputStream();
            for (Buf b : c.writable()) now.writeBytes(guest.now(b.addr(), b.len()));
            assertArrayEquals(
                    want, now.toByteArray(), "writable bytes of " + c + " after writeTo(" + off + ", " + len + ")");
        }
    }

    /** addUsed of a popped, unused chain writes exactly its used element and the index. */
    private void used(FuzzInput in) {
        List<Popped> open = popped.stream().filter(p -> !p.used).toList();
        if (open.isEmpty()) return;
        Popped p = open.get(in.below(open.size()));
        int written = (int) (Integer.toUnsignedLong(in.u32()) % (p.chain.writableLength() + 1));
        long slot = ring.used() + 4 + 8L * (usedCount % ring.size());
        guest.snapshot();
        q.addUsed(p.chain.head(), written);
        assertWritesWithin("addUsed", List.of(new long[] {slot, slot + 8}, new long[] {ring.used() + 2, ring.used() + 4
        }));
        usedCount++;
        p.used = true;
        assertEquals(usedCount & 0xffff, driver.usedIdx(), "used index");
        int[] e = driver.used(usedCount - 1);
        assertEquals(p.chain.head(), e[0], "used id");
        assertEquals(written, e[1], "used len");
        if (popped.size() > 4 * FuzzGuest.MAX_QUEUE) popped.removeIf(x -> x.used);
    }

    /** Gives back some of the last chains popped, none of them used. */
    private void unpop(FuzzInput in) {
        int trailing = 0;
        while (trailing < popped.size() && !popped.get(popped.size() - 1 - trailing).used) trailing++;
        int n = in.below(Math.min(trailing, ring.size()) + 1);
        q.unpop(n);
        for (int i = 0; i < n; i++) popped.removeLast();
    }

    private void notification(FuzzInput in) {
        long flags = ring.used(), availEvent = ring.used() + 4 + 8L * ring.size();
        List<long[]> allowed = List.of(new long[] {flags, flags + 2}, new long[] {availEvent, availEvent + 2});
        switch (in.u8() % 5) {
            case 0 -> {
                boolean required;
                if (usedCount == lastDecided) required = false;
                else if (eventIdx) {
                    int usedEvent = guest.u16(ring.avail() + 4 + 2L * ring.size());
                    // vring_need_event(used_event, new, old)
                    required = ((usedCount - usedEvent - 1) & 0xffff) < ((usedCount - lastDecided) & 0xffff);
                } else required = (guest.u16(ring.avail()) & 1) == 0;
                guest.snapshot();
                boolean notify = q.needsNotification();
                assertNoWrite("needsNotification");
                if (required && !notify)
                    fail("no notification although the driver asked for one (used " + usedCount + ", last "
                            + lastDecided + ")");
                if (usedCount != lastDecided) lastDecided = usedCount;
            }
            case 1 -> {
                guest.snapshot();
                q.enableNotification();
                assertWritesWithin("enableNotification", allowed);
            }
            case 2 -> {
                guest.snapshot();
                q.disableNotification();
                assertWritesWithin("disableNotification", allowed);
            }
            case 3 -> guest.memory.writeShort(ring.avail() + 4 + 2L * ring.size(), (short) in.u16()); // used_event
            default -> guest.memory.writeShort(ring.avail(), (short) in.u8()); // avail flags
        }
    }

    // ---- seed inputs

    /** Writes {@link #seeds()} into the Inputs folder under the given src/test/resources (default: the cwd's). */
    public static void main(String[] args) throws IOException {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        FuzzInput.writeSeeds(resources, VirtqueueFuzzTest.class, "chains", seeds());
    }

    /** pickAddress: the buffer area at {@code offset}. */
    static Writer data(Writer w, long offset) {
        return w.u8(0).u32((int) offset);
    }

    /** pickLength: {@code v}. */
    static Writer len(Writer w, long v) {
        if (v == 0) return w.u8(0);
        if (v < 256) return w.u8(2).u8((int) v);
        if (v < 65536) return w.u8(6).u16((int) v);
        return w.u8(13).u32((int) v);
    }

    /** A queue of 2^{@code maxExp} entries laid out as the spec wants, with these features (bit 0 indirect). */
    static Writer queue(int maxExp, int features) {
        return new Writer().u8(maxExp).u8(0).u8(features);
    }

    static Map<String, byte[]> seeds() {
        Map<String, byte[]> s = new LinkedHashMap<>();
        // Chains of readable then writable buffers in both regions, direct and indirect: popped, written, used,
        // one given back and popped again; the notification calls.
        Writer w = queue(4, 3).u8(OP_CHAIN).u8(2).u8(1);
        len(data(w, 0x100), 100);
        len(data(w, 0x1000), 512);
        len(w.u8(6).u16(0x10), 64).u8(0);
        w.u8(OP_POP).u32(10).u32(500).u8(OP_USED).u32(300).u8(OP_NOTIFY).u8(0);
        w.u8(OP_CHAIN).u8(1).u8(1);
        len(data(w, 0x2000), 16);
        len(data(w, 0x3000), 1).u8(1);
        w.u8(OP_POP).u32(0).u32(1);
        w.u8(OP_CHAIN).u8(0).u8(0);
        len(data(w, 0x4000), 4096).u8(0);
        w.u8(OP_POP).u32(0).u32(4096).u8(OP_UNPOP).u8(1).u8(OP_POP).u32(0).u32(100);
        w.u8(OP_USED).u8(0).u32(1).u8(OP_USED).u32(4096);
        w.u8(OP_NOTIFY)
                .u8(3)
                .u16(1)
                .u8(OP_NOTIFY)
                .u8(0)
                .u8(OP_NOTIFY)
                .u8(1)
                .u8(OP_NOTIFY)
                .u8(2);
        s.put("chains-popped-written-used", w.bytes());

        // Two descriptors whose next fields point at each other: the pop must refuse the loop.
        w = queue(3, 0).u8(OP_DESC).u8(0);
        len(data(w, 0), 64).u8(Virtqueue.DESC_F_NEXT).u8(1).u8(OP_DESC).u8(1);
        len(data(w, 0x100), 64).u8(Virtqueue.DESC_F_NEXT).u8(0);
        s.put("descriptor-loop", w.u8(OP_PUBLISH).u8(0).u8(OP_POP).bytes());

        // An indirect table of two buffers, popped and used; then its second entry loops back to the first.
        w = queue(4, 1).u8(OP_INDIRECT_ENTRY).u8(0);
        len(data(w, 0x500), 32)
                .u8(Virtqueue.DESC_F_NEXT)
                .u8(1)
                .u8(OP_INDIRECT_ENTRY)
                .u8(1);
        len(data(w, 0x600), 32)
                .u8(Virtqueue.DESC_F_WRITE)
                .u8(0)
                .u8(OP_DESC)
                .u8(0)
                .u8(14)
                .u8(0);
        len(w, 32).u8(Virtqueue.DESC_F_INDIRECT).u8(0).u8(OP_PUBLISH).u8(0);
        w.u8(OP_POP).u32(0).u32(32).u8(OP_USED).u32(32).u8(OP_INDIRECT_ENTRY).u8(1);
        len(data(w, 0x600), 32)
                .u8(Virtqueue.DESC_F_WRITE | Virtqueue.DESC_F_NEXT)
                .u8(0);
        s.put("indirect-table-then-its-loop", w.u8(OP_PUBLISH).u8(0).u8(OP_POP).bytes());

        // A buffer that runs past the end of the first RAM region.
        w = queue(2, 0).u8(OP_CHAIN).u8(0).u8(0).u8(7).u8(10);
        s.put("buffer-past-the-end-of-ram", len(w, 512).u8(OP_POP).bytes());

        // The available index 65535 entries ahead of the device.
        s.put(
                "available-index-runs-ahead",
                queue(2, 0).u8(OP_AVAIL_IDX).u8(1).u16(0xffff).u8(OP_POP).bytes());

        // Layouts to refuse: a queue size that is no power of two; a descriptor table off its 16-byte alignment.
        s.put("queue-size-3", new Writer().u8(2).u8(7).u16(3).u8(0).bytes());
        s.put(
                "misaligned-descriptor-table",
                new Writer().u8(2).u8(6 << 3).u8(8).u8(0).u8(0).u8(0).bytes());
        return s;
    }
}
