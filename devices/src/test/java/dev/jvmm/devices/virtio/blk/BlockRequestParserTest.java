package dev.jvmm.devices.virtio.blk;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.virtio.DescriptorChain;
import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.DriverQueue.Buf;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The parser on real descriptor chains popped from a ring in memory: what each chain decodes to, or why not. */
class BlockRequestParserTest {
    static final long CAPACITY = 2048; // sectors: a 1 MiB disk
    static final long ALL =
            (1L << VirtioBlock.F_DISCARD) | (1L << VirtioBlock.F_WRITE_ZEROES) | (1L << VirtioBlock.F_FLUSH);

    final GuestRam ram = new GuestRam();

    @AfterEach
    void tearDown() {
        ram.close();
    }

    /** Pops the chain the driver built from bufs and parses it against a disk with these limits. */
    BlockRequest parse(BlockRequestParser.Limits limits, Buf... bufs) {
        return parse(ram.memory, new DriverQueue(ram, 16), limits, bufs);
    }

    BlockRequest parse(Buf... bufs) {
        return parse(new BlockRequestParser.Limits(CAPACITY, false, ALL), bufs);
    }

    static BlockRequest parse(GuestMemory memory, DriverQueue dq, BlockRequestParser.Limits limits, Buf... bufs) {
        if (bufs.length > 0) dq.add(bufs);
        Virtqueue q = new Virtqueue(dq.size);
        q.setSize(dq.size);
        q.setDescAddress(dq.desc);
        q.setDriverAddress(dq.avail);
        q.setDeviceAddress(dq.used);
        q.setReady(true);
        q.activate(
                memory,
                VirtioFeatures.bit(VirtioFeatures.VERSION_1) | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC));
        DescriptorChain chain = new DescriptorChain(dq.size);
        assertTrue(q.pop(chain));
        return new BlockRequestParser(limits).parse(chain);
    }

    long header(int type, long sector) {
        long h = ram.alloc(16, 8);
        ram.memory.writeInt(h, type);
        ram.memory.writeLong(h + 8, sector);
        return h;
    }

    long status() {
        return ram.alloc(1, 1);
    }

    /** Discard/write-zeroes segments {sector, sectors, flags}. */
    long segments(long[]... segs) {
        long data = ram.alloc(16L * segs.length, 8);
        for (int i = 0; i < segs.length; i++) {
            ram.memory.writeLong(data + 16L * i, segs[i][0]);
            ram.memory.writeInt(data + 16L * i + 8, (int) segs[i][1]);
            ram.memory.writeInt(data + 16L * i + 12, (int) segs[i][2]);
        }
        return data;
    }

    static Rejection rejection(BlockRequest r) {
        return assertInstanceOf(BlockRequest.Refused.class, r).reason();
    }

    long gpaOf(MemorySegment s) {
        return s.address() - ram.memory.slice(ram.base, 1).address() + ram.base;
    }

    // ---------------------------------------------------------------- requests that parse

    @Test
    void readDataIsTheWritablePartUpToTheStatusByteWhereverItSits() {
        long d1 = ram.alloc(1024, 8), d2 = ram.alloc(512 + 1, 8); // the status shares d2's descriptor
        var r = assertInstanceOf(
                BlockRequest.Read.class, parse(in(header(VirtioBlock.T_IN, 7), 16), out(d1, 1024), out(d2, 513)));
        assertEquals(7, r.sector());
        assertEquals(1536, r.length());
        assertEquals(2, r.data().size());
        assertEquals(d2 + 512, gpaOf(r.status()));
        assertEquals(1, r.status().byteSize());
    }

    @Test
    void writeDataIsTheReadablePartAfterTheHeaderEvenInTheSameDescriptor() {
        long buf = ram.alloc(16 + 1024, 8);
        ram.memory.writeInt(buf, VirtioBlock.T_OUT);
        ram.memory.writeLong(buf + 8, 3);
        long s = status();
        var w = assertInstanceOf(BlockRequest.Write.class, parse(in(buf, 100), in(buf + 100, 940), out(s, 1)));
        assertEquals(3, w.sector());
        assertEquals(1024, w.length());
        assertEquals(buf + 16, gpaOf(w.data().get(0)));
        assertEquals(84, w.data().get(0).byteSize());
        assertEquals(s, gpaOf(w.status()));
    }

    @Test
    void flushGetIdDiscardAndWriteZeroes() {
        assertInstanceOf(BlockRequest.Flush.class, parse(in(header(VirtioBlock.T_FLUSH, 0), 16), out(status(), 1)));
        var id = assertInstanceOf(
                BlockRequest.GetId.class,
                parse(in(header(VirtioBlock.T_GET_ID, 0), 16), out(ram.alloc(20, 8), 20), out(status(), 1)));
        assertEquals(20, id.data().getFirst().byteSize());
        var d = assertInstanceOf(
                BlockRequest.Discard.class,
                parse(
                        in(header(VirtioBlock.T_DISCARD, 0), 16),
                        in(segments(new long[] {10, 2, 0}, new long[] {CAPACITY - 1, 1, 0}), 32),
                        out(status(), 1)));
        assertEquals(
                List.of(new BlockRequest.Range(10, 2, false), new BlockRequest.Range(CAPACITY - 1, 1, false)),
                d.ranges());
        var z = assertInstanceOf(
                BlockRequest.WriteZeroes.class,
                parse(
                        in(header(VirtioBlock.T_WRITE_ZEROES, 0), 16),
                        in(segments(new long[] {5, 0, 1}), 16),
                        out(status(), 1)));
        assertEquals(List.of(new BlockRequest.Range(5, 0, true)), z.ranges());
    }

    @Test
    void segmentsAreCopiedSoTheGuestCannotChangeThemAfterTheCheck() {
        long segs = segments(new long[] {10, 2, 0});
        var d = assertInstanceOf(
                BlockRequest.Discard.class,
                parse(in(header(VirtioBlock.T_DISCARD, 0), 16), in(segs, 16), out(status(), 1)));
        ram.memory.writeLong(segs, -1L);
        assertEquals(10, d.ranges().getFirst().sector());
    }

    // ---------------------------------------------------------------- every rejection

    @Test
    void noHeader() {
        var r = assertInstanceOf(
                BlockRequest.Refused.class, parse(in(header(VirtioBlock.T_IN, 0), 8), out(status(), 1)));
        assertEquals(Rejection.NO_HEADER, r.reason());
        assertFalse(r.reason().answerable());
        assertNull(r.status());
        assertEquals(Rejection.NO_HEADER, rejection(parse(out(status(), 1))), "nothing device-readable at all");
    }

    @Test
    void noStatus() {
        var r = assertInstanceOf(
                BlockRequest.Refused.class, parse(in(header(VirtioBlock.T_IN, 0), 16), in(ram.alloc(512, 8), 512)));
        assertEquals(Rejection.NO_STATUS, r.reason());
        assertFalse(r.reason().answerable());
        assertThrows(IllegalStateException.class, () -> r.reason().status());
    }

    @Test
    void unsupportedType() {
        for (int type : new int[] {VirtioBlock.T_GET_LIFETIME, VirtioBlock.T_SECURE_ERASE, 2, 99, -1}) {
            var r = assertInstanceOf(
                    BlockRequest.Refused.class,
                    parse(in(header(type, 0), 16), out(ram.alloc(16, 8), 16), out(status(), 1)));
            assertEquals(Rejection.UNSUPPORTED_TYPE, r.reason(), "type " + type);
            assertEquals(VirtioBlock.S_UNSUPP, r.reason().status());
            assertNotNull(r.status());
        }
    }

    @Test
    void featureNotNegotiated() {
        var noDiscard = new BlockRequestParser.Limits(CAPACITY, false, 1L << VirtioBlock.F_WRITE_ZEROES);
        assertEquals(
                Rejection.FEATURE_NOT_NEGOTIATED,
                rejection(parse(
                        noDiscard,
                        in(header(VirtioBlock.T_DISCARD, 0), 16),
                        in(segments(new long[] {1, 1, 0}), 16),
                        out(status(), 1))));
        var noZeroes = new BlockRequestParser.Limits(CAPACITY, false, 1L << VirtioBlock.F_DISCARD);
        assertEquals(
                Rejection.FEATURE_NOT_NEGOTIATED,
                rejection(parse(
                        noZeroes,
                        in(header(VirtioBlock.T_WRITE_ZEROES, 0), 16),
                        in(segments(new long[] {1, 1, 0}), 16),
                        out(status(), 1))));
    }

    @Test
    void unknownFlagsAndUnmapOnDiscard() {
        assertEquals(
                Rejection.UNKNOWN_FLAGS,
                rejection(parse(
                        in(header(VirtioBlock.T_WRITE_ZEROES, 0), 16),
                        in(segments(new long[] {1, 1, 2}), 16),
                        out(status(), 1))));
        assertEquals(
                Rejection.UNMAP_ON_DISCARD,
                rejection(parse(
                        in(header(VirtioBlock.T_DISCARD, 0), 16),
                        in(segments(new long[] {1, 1, 1}), 16),
                        out(status(), 1))));
    }

    @Test
    void readOnly() {
        var ro = new BlockRequestParser.Limits(CAPACITY, true, ALL);
        assertEquals(
                Rejection.READ_ONLY,
                rejection(
                        parse(ro, in(header(VirtioBlock.T_OUT, 0), 16), in(ram.alloc(512, 8), 512), out(status(), 1))));
        assertEquals(
                Rejection.READ_ONLY,
                rejection(parse(
                        ro, in(header(VirtioBlock.T_OUT, CAPACITY), 16), in(ram.alloc(100, 8), 100), out(status(), 1))),
                "read-only is checked before the range");
        assertEquals(
                Rejection.READ_ONLY,
                rejection(parse(
                        ro,
                        in(header(VirtioBlock.T_WRITE_ZEROES, 0), 16),
                        in(segments(new long[] {1, 1, 0}), 16),
                        out(status(), 1))));
        assertInstanceOf(
                BlockRequest.Read.class,
                parse(ro, in(header(VirtioBlock.T_IN, 0), 16), out(ram.alloc(512, 8), 512), out(status(), 1)));
    }

    @Test
    void notWholeSectors() {
        assertEquals(
                Rejection.NOT_WHOLE_SECTORS,
                rejection(parse(in(header(VirtioBlock.T_IN, 0), 16), out(ram.alloc(100, 8), 100), out(status(), 1))));
        assertEquals(
                Rejection.NOT_WHOLE_SECTORS,
                rejection(parse(in(header(VirtioBlock.T_OUT, 0), 16), in(ram.alloc(513, 8), 513), out(status(), 1))));
    }

    @Test
    void outOfRange() {
        long buf = ram.alloc(1024, 512);
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(in(header(VirtioBlock.T_IN, CAPACITY), 16), out(buf, 512), out(status(), 1))),
                "at capacity");
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(in(header(VirtioBlock.T_IN, CAPACITY - 1), 16), out(buf, 1024), out(status(), 1))),
                "across the end");
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(in(header(VirtioBlock.T_OUT, CAPACITY - 1), 16), in(buf, 1024), out(status(), 1))),
                "write across the end");
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(in(header(VirtioBlock.T_IN, -1L), 16), out(buf, 512), out(status(), 1))),
                "sector 2^64-1");
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(
                        in(header(VirtioBlock.T_IN, Long.MAX_VALUE / 256), 16), out(buf, 512), out(status(), 1))),
                "sector*512 overflows");
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(
                        in(header(VirtioBlock.T_DISCARD, 0), 16),
                        in(segments(new long[] {1, 1, 0}, new long[] {CAPACITY - 1, 2, 0}), 32),
                        out(status(), 1))),
                "a discard segment across the end");
        assertInstanceOf(
                BlockRequest.Read.class,
                parse(in(header(VirtioBlock.T_IN, CAPACITY - 1), 16), out(buf, 512), out(status(), 1)),
                "the last sector");
    }

    @Test
    void malformedAndTooManySegments() {
        assertEquals(
                Rejection.MALFORMED_SEGMENTS,
                rejection(parse(in(header(VirtioBlock.T_DISCARD, 0), 16), in(ram.alloc(8, 8), 8), out(status(), 1))),
                "a partial segment");
        assertEquals(
                Rejection.MALFORMED_SEGMENTS,
                rejection(parse(in(header(VirtioBlock.T_DISCARD, 0), 16), out(status(), 1))),
                "no segment");
        long[][] tooMany = new long[VirtioBlock.MAX_DISCARD_SEG + 1][];
        java.util.Arrays.fill(tooMany, new long[] {0, 1, 0});
        assertEquals(
                Rejection.TOO_MANY_SEGMENTS,
                rejection(parse(
                        in(header(VirtioBlock.T_DISCARD, 0), 16),
                        in(segments(tooMany), 16 * tooMany.length),
                        out(status(), 1))));
        assertEquals(
                Rejection.SEGMENT_TOO_LARGE,
                rejection(parse(
                        in(header(VirtioBlock.T_WRITE_ZEROES, 0), 16),
                        in(segments(new long[] {0, VirtioBlock.MAX_DISCARD_SECTORS + 1L, 0}), 16),
                        out(status(), 1))));
    }

    @Test
    void theFirstBadSegmentDecides() {
        // An out-of-range segment before one with unknown flags: IOERR, as the segments are checked in order.
        assertEquals(
                Rejection.OUT_OF_RANGE,
                rejection(parse(
                        in(header(VirtioBlock.T_WRITE_ZEROES, 0), 16),
                        in(segments(new long[] {CAPACITY, 1, 0}, new long[] {0, 1, 2}), 32),
                        out(status(), 1))));
    }

    @Test
    void statusesFollowTheSpec() {
        for (Rejection r : Rejection.values()) {
            if (!r.answerable()) continue;
            assertTrue(r.status() == VirtioBlock.S_IOERR || r.status() == VirtioBlock.S_UNSUPP, r.name());
        }
        assertEquals(VirtioBlock.S_UNSUPP, Rejection.UNSUPPORTED_TYPE.status());
        assertEquals(VirtioBlock.S_IOERR, Rejection.OUT_OF_RANGE.status());
    }
}
