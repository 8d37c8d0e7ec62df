package dev.jvmm.devices.virtio.blk;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.devices.FuzzInput;
import dev.jvmm.devices.FuzzInput.Writer;
import dev.jvmm.devices.block.MemoryBackend;
import dev.jvmm.devices.virtio.FuzzGuest;
import dev.jvmm.devices.virtio.FuzzGuest.Buf;
import dev.jvmm.devices.virtio.FuzzGuest.Chain;
import dev.jvmm.devices.virtio.FuzzGuest.Pending;
import dev.jvmm.devices.virtio.FuzzGuest.Ring;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.VirtqueueException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fuzzes virtio-blk's request path (the queue, {@link BlockRequestParser}, {@link BlockRequestExecutor}) with a
 * hostile driver: requests of every type with fuzzed sectors, lengths, discard/write-zeroes segments, header and
 * status framing split over descriptors or sharing them, direct or indirect, buffers outside RAM or over the rings,
 * raw descriptors and available entries, backend failures; over a disk of a few sizes, read-only or not, with any
 * subset of the offered features. The device is driven as its transport would (processQueue, then notification
 * suppression), and each servicing waits for the requests it took to finish on the device's I/O threads.
 *
 * <p>Checked, always: nothing but a {@link VirtqueueException} leaves processQueue (the transport then sets
 * DEVICE_NEEDS_RESET; this test resets the device and goes on). In contained mode ({@link FuzzGuest}) also: the
 * device writes guest RAM only inside the device-writable buffers of the chains available to it and its used ring;
 * it completes exactly the chains made available, in any order, and refuses (with CHAIN_TOO_SHORT) exactly those
 * without a header or status byte, or with a queue-level kind where the chain breaks the ring's rules; each used
 * length is at least 1 and at most the chain's writable length. For a request laid out cleanly: the status is OK,
 * IOERR or UNSUPP; OK only for a request that is valid (sectors in range, whole sectors, features negotiated, writable
 * disk, well-formed segments), and always OK for a valid one while the backend does not fail; a read returns the disk's
 * bytes, a write, discard or write-zeroes changes the disk exactly there and nothing else changes it; get-id returns
 * the serial; the used length counts what was written.
 *
 * <p>{@link #main} writes the seed inputs.
 */
class VirtioBlockFuzzTest {
    static final String SERIAL = "jvmm-fuzz-serial-01";
    static final long[] DISK_SIZES = {64 << 10, 512, 0, (64 << 10) + 512};
    static final int MAX_OPS = 48;
    static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VERSION_1);

    private static final FuzzGuest guest = new FuzzGuest();

    private final VirtioDevice.Context context = new VirtioDevice.Context() {
        @Override
        public void signalUsed(int queueIndex) {}

        @Override
        public void configChanged() {}

        @Override
        public void fail(String reason) {}

        @Override
        public void broken(String where, Throwable cause) {
            throw new AssertionError("device broken: " + where, cause);
        }

        @Override
        public void kick() {}
    };

    private MemoryBackend disk;
    private VirtioBlock blk;
    private boolean readOnly;
    private long capacity, features;
    private int queueSize;
    private Ring ring;
    private Virtqueue q;
    private FuzzGuest.Driver driver;

    /**
     * Input: configuration (u8: bit 0 wild mode, bits 1-2 disk size, bits 3-4 both set: read-only option, bits 5-6
     * both set: read-only backend; u8: bits 0-1 queue size 4..32, bit 2 4 KiB blocks, bits 3-4 driver's queue size
     * shift; u32 accepted features), then operations (u8 mod 8: 0-3 a request, 4 a raw descriptor, 5 a raw indirect
     * entry, 6 a raw available entry or index, 7 backend failures) with their operands.
     */
    @FuzzTest(maxDuration = "30s")
    void requests(byte[] input) throws Exception {
        FuzzInput in = new FuzzInput(input);
        int cfg = in.u8(), cfg2 = in.u8();
        guest.reset((cfg & 1) == 0);
        long diskSize = DISK_SIZES[(cfg >>> 1) & 3];
        boolean roOption = (cfg & 0x18) == 0x18, roBackend = (cfg & 0x60) == 0x60;
        queueSize = 4 << (cfg2 & 3);
        int blockSize = (cfg2 & 4) != 0 ? 4096 : 512;
        disk = new MemoryBackend(diskSize, roBackend);
        try {
            MemorySegment.copy(
                    MemorySegment.ofArray(FuzzGuest.patterned((int) diskSize, 12345)), 0, disk.data, 0, diskSize);
            blk = new VirtioBlock(disk, new VirtioBlock.Options(roOption, SERIAL, 1, queueSize, blockSize));
            readOnly = blk.readOnly();
            capacity = blk.capacitySectors();
            features = blk.deviceFeatures() & (Integer.toUnsignedLong(in.u32()) | VERSION_1);
            ring = FuzzGuest.ring(0, Math.max(1, queueSize >> ((cfg2 >>> 3) & 3)));
            activate();
            for (int op = 0; op < MAX_OPS && in.more(); op++) {
                switch (in.u8() % 8) {
                    case 0, 1, 2, 3 -> request(in);
                    case 4 -> driver.fuzzDescriptor(in);
                    case 5 -> guest.fuzzIndirectDescriptor(in);
                    case 6 -> {
                        if (in.bool()) driver.fuzzAvailIdx(in);
                        else driver.publish(FuzzGuest.pickIndex(in, ring.size()));
                        service();
                    }
                    default -> {
                        int f = in.u8();
                        disk.failReads = (f & 1) != 0;
                        disk.failWrites = (f & 2) != 0;
                        disk.failFlush = (f & 4) != 0;
                    }
                }
            }
        } finally {
            disk.close();
        }
    }

    private boolean has(int feature) {
        return (features & (1L << feature)) != 0;
    }

    private void activate() {
        q = FuzzGuest.queue(queueSize, ring);
        q.activate(guest.memory, features);
        blk.activate(guest.memory, features, List.of(q), context);
        driver = guest.new Driver(ring);
    }

    /** After a refusal: the driver resets the device and sets the queue up again. */
    private void resetDevice() {
        blk.reset();
        q.reset();
        guest.memory.fill(ring.avail(), 6 + 2L * ring.size(), (byte) 0);
        guest.memory.fill(ring.used(), ring.usedBytes(), (byte) 0);
        activate();
    }

    /** What one servicing of the queue did. */
    private record Serviced(Pending pending, int completed, VirtqueueException refused, int usedFrom) {}

    /** Services the queue as the transport does and checks what it wrote; resets the device after a refusal. */
    private Serviced service() {
        boolean indirect = VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
        Pending pending = guest.contained() ? guest.pending(ring, q.nextAvail(), queueSize, indirect) : null;
        int usedFrom = q.nextUsed();
        guest.snapshot();
        VirtqueueException refused = null;
        try {
            int rounds = 0;
            boolean again;
            do {
                synchronized (q) {
                    q.disableNotification();
                    blk.processQueue(0, q);
                    q.needsNotification();
                }
                // Requests run on the device's I/O threads; the checks below look at them all finished.
                blk.awaitIdle();
                synchronized (q) {
                    again = ++rounds < 64 && blk.canProcess(0) && q.enableNotification();
                }
            } while (again);
        } catch (VirtqueueException e) {
            blk.awaitIdle();
            refused = e;
        }
        int completed = (q.nextUsed() - usedFrom) & 0xffff;
        if (pending != null) checkContained(pending, completed, refused, usedFrom);
        if (refused != null) resetDevice();
        return new Serviced(pending, completed, refused, usedFrom);
    }

    private static boolean answerable(Chain c) {
        return c.readableLength() >= VirtioBlock.HEADER && c.writableLength() >= 1;
    }

    private void checkContained(Pending pending, int completed, VirtqueueException refused, int usedFrom) {
        long at = guest.changedOutside(pending.writableRanges(ring));
        if (at >= 0)
            fail("virtio-blk wrote guest RAM at 0x" + Long.toHexString(at)
                    + ", outside the writable buffers of the available chains " + pending.chains());
        List<Chain> chains = pending.chains();
        assertTrue(completed <= chains.size(), completed + " completed of " + chains);
        for (int i = 0; i < completed; i++)
            assertTrue(answerable(chains.get(i)), "completed unanswerable " + chains.get(i));
        if (refused == null) {
            assertEquals(chains.size(), completed, "completed all of " + chains);
            assertTrue(!pending.refused(), "a chain breaking the ring's rules was not refused");
        } else if (refused.kind() == VirtqueueException.Kind.CHAIN_TOO_SHORT) {
            assertTrue(completed < chains.size() && !answerable(chains.get(completed)), refused.getMessage());
        } else {
            assertTrue(pending.refused() && completed == chains.size(), "refused: " + refused.getMessage());
        }
        boolean usedClobbered = false;
        for (Chain c : chains)
            for (Buf b : c.writable())
                if (b.addr() < ring.used() + ring.usedBytes() && ring.used() < b.addr() + b.len()) usedClobbered = true;
        if (usedClobbered) return;
        // Requests complete in any order: each used element answers one of the chains taken, each chain once.
        List<Chain> open = new ArrayList<>(chains.subList(0, completed));
        for (int i = 0; i < completed; i++) {
            int[] e = driver.used(usedFrom + i);
            Chain c = null;
            for (Chain o : open) if (o.head() == e[0]) c = o;
            assertTrue(c != null, "used id " + e[0] + " is none of the chains taken " + open);
            open.remove(c);
            long len = Integer.toUnsignedLong(e[1]);
            assertTrue(len >= 1 && len <= c.writableLength(), "used length " + len + " of " + c);
        }
    }

    // ---- structured requests

    private long pickSector(FuzzInput in) {
        return switch (in.u8() % 10) {
            case 0 -> 0;
            case 1 -> in.u8();
            case 2 -> capacity - 1;
            case 3 -> capacity;
            case 4 -> capacity - in.u8();
            case 5 -> -1;
            case 6 -> Long.MIN_VALUE;
            case 7 -> capacity + 1;
            case 8 -> in.u64();
            default -> (1L << 55) - 1 - in.u8(); // sector * 512 overflows
        };
    }

    private long pickDataLength(FuzzInput in) {
        return switch (in.u8() % 13) {
            case 0 -> 0;
            case 1 -> 512;
            case 2 -> 1024;
            case 3 -> 511;
            case 4 -> 20;
            case 5 -> 4096;
            case 6 -> 512L * (1 + in.u8() % 64);
            case 7 -> in.u16();
            case 8 -> 513;
            case 9 -> 21;
            case 10 -> 1;
            case 11 -> capacity * 512;
            default -> capacity * 512 + 512;
        };
    }

    private static int pickType(FuzzInput in) {
        return switch (in.u8() % 12) {
            case 0, 1 -> VirtioBlock.T_IN;
            case 2, 3 -> VirtioBlock.T_OUT;
            case 4 -> VirtioBlock.T_FLUSH;
            case 5 -> VirtioBlock.T_GET_ID;
            case 6, 7 -> VirtioBlock.T_DISCARD;
            case 8, 9 -> VirtioBlock.T_WRITE_ZEROES;
            case 10 -> in.u8();
            default -> in.u32();
        };
    }

    private record Segment(long sector, long count, int flags) {}

    /** A request built from the input, laid out over descriptors, published and serviced, then checked. */
    private void request(FuzzInput in) {
        int type = pickType(in);
        long sector = pickSector(in);
        int layout = in.u8(), extra = in.u8();
        boolean indirect = VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC) && (layout & 1) != 0;
        boolean segmented = type == VirtioBlock.T_DISCARD || type == VirtioBlock.T_WRITE_ZEROES;
        List<Segment> segments = new ArrayList<>();
        byte[] data;
        boolean dataWritable;
        if (segmented) {
            int n = in.u8() % 6;
            if (n == 5) n = 33;
            ByteBuffer b = ByteBuffer.allocate(16 * n + ((extra & 0x40) != 0 ? 1 + in.u8() % 15 : 0))
                    .order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) {
                long s = pickSector(in);
                long count = switch (in.u8() % 6) {
                    case 0 -> 0;
                    case 1 -> 1;
                    case 2 -> capacity;
                    case 3 -> VirtioBlock.MAX_DISCARD_SECTORS + 1;
                    case 4 -> in.u16();
                    default -> Integer.toUnsignedLong(in.u32());
                };
                int flags = switch (in.u8() % 4) {
                    case 0 -> 0;
                    case 1 -> 1;
                    case 2 -> 2;
                    default -> in.u32();
                };
                segments.add(new Segment(s, count, flags));
                b.putLong(16 * i, s).putInt(16 * i + 8, (int) count).putInt(16 * i + 12, flags);
            }
            data = b.array();
            dataWritable = false;
        } else {
            data = FuzzGuest.patterned((int) Math.min(pickDataLength(in), 66 << 10), type * 31 + (int) sector);
            dataWritable = switch (type) {
                case VirtioBlock.T_IN, VirtioBlock.T_GET_ID -> true;
                case VirtioBlock.T_OUT -> false;
                default -> (extra & 2) != 0;
            };
        }
        if ((extra & 7) == 1) dataWritable = !dataWritable; // the wrong direction
        int statusLength = switch (in.u8() % 8) {
            case 6 -> 0;
            case 7 -> 2 + in.u8() % 16;
            default -> 1;
        };
        ByteBuffer header = ByteBuffer.allocate(VirtioBlock.HEADER).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(0, type).putInt(4, (extra & 0x80) != 0 ? in.u32() : 0).putLong(8, sector);
        byte[] readable = concat(header.array(), dataWritable ? new byte[0] : data);
        byte[] writable = new byte[(dataWritable ? data.length : 0) + statusLength];

        // The descriptors: each part cut at fuzzed places; buffers mostly fresh, sometimes fuzzed or overlapping.
        List<Buf> bufs = new ArrayList<>();
        boolean clean = guest.contained();
        for (int part = 0; part < 2; part++) {
            byte[] bytes = part == 0 ? readable : writable;
            int cuts = (layout >>> (1 + 2 * part)) & 3;
            int[] at = new int[cuts + 2];
            at[cuts + 1] = bytes.length;
            for (int i = 1; i <= cuts; i++) at[i] = in.below(bytes.length + 1);
            Arrays.sort(at, 1, cuts + 1);
            for (int i = 0; i <= cuts; i++) {
                int len = at[i + 1] - at[i];
                if (len == 0 && cuts > 0 && (layout & 0x40) == 0) continue; // mostly no empty descriptors
                int mode = in.u8() % 16;
                long addr;
                if (mode < 14 || bufs.isEmpty()) {
                    addr = guest.alloc(len);
                    if (part == 0) guest.memory.write(addr, bytes, at[i], len);
                } else if (mode == 14) {
                    addr = guest.pickAddress(in);
                    clean = false;
                } else {
                    addr = bufs.get(in.below(bufs.size())).addr(); // overlapping an earlier buffer
                    if (part == 0 && guest.valid(addr, len)) guest.memory.write(addr, bytes, at[i], len);
                    clean = false;
                }
                bufs.add(new Buf(addr, len, part == 1));
            }
        }
        int head = driver.chain(bufs, indirect);
        driver.publish(head);
        boolean faults = disk.failReads || disk.failWrites || disk.failFlush;
        byte[] diskBefore = disk.data.toArray(ValueLayout.JAVA_BYTE);
        Serviced s = service();
        if (!clean || s.pending() == null) return;
        List<long[]> ranges = new ArrayList<>();
        for (Buf b : bufs) if (b.len() > 0) ranges.add(new long[] {b.addr(), b.addr() + b.len()});
        ranges.add(ring.usedRange());
        if (FuzzGuest.overlapping(ranges)) return;
        List<Chain> chains = s.pending().chains();
        if (chains.size() != 1 || !chains.getFirst().bufs().equals(bufs)) return; // not the chain as laid out
        Chain c = chains.getFirst();
        if (!answerable(c)) {
            assertTrue(
                    s.refused() != null && s.refused().kind() == VirtqueueException.Kind.CHAIN_TOO_SHORT,
                    "a request without header or status byte must be refused");
            return;
        }
        assertEquals(1, s.completed(), "the request completed");
        checkRequest(c, type, sector, readable, data, dataWritable, segments, faults, diskBefore, s.usedFrom());
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    /** Whether [sector, sector + bytes / 512) is whole sectors inside the disk (sector a u64). */
    private boolean inRange(long sector, long bytes) {
        if (bytes % VirtioBlock.SECTOR != 0) return false;
        if (Long.compareUnsigned(sector, capacity) > 0) return false;
        return bytes / VirtioBlock.SECTOR <= capacity - sector;
    }

    private boolean validSegments(List<Segment> segs, long dataBytes, boolean discard) {
        if (!has(discard ? VirtioBlock.F_DISCARD : VirtioBlock.F_WRITE_ZEROES) || readOnly) return false;
        if (dataBytes == 0 || dataBytes % 16 != 0 || dataBytes / 16 > VirtioBlock.MAX_DISCARD_SEG) return false;
        for (Segment g : segs) {
            if ((g.flags() & ~1) != 0 || (discard && g.flags() != 0)) return false;
            if (g.count() > VirtioBlock.MAX_DISCARD_SECTORS || !inRange(g.sector(), g.count() * 512)) return false;
        }
        return true;
    }

    private void checkRequest(
            Chain c,
            int type,
            long sector,
            byte[] readable,
            byte[] data,
            boolean dataWritable,
            List<Segment> segments,
            boolean faults,
            byte[] diskBefore,
            int usedFrom) {
        List<Buf> w = c.writable();
        Buf last = null;
        for (Buf b : w) if (b.len() > 0) last = b;
        int status = guest.memory.readByte(last.addr() + last.len() - 1) & 0xff;
        long usedLen = Integer.toUnsignedLong(driver.used(usedFrom)[1]);
        long writableData = c.writableLength() - 1;
        long readableData = c.readableLength() - VirtioBlock.HEADER;
        boolean valid = switch (type) {
            case VirtioBlock.T_IN -> inRange(sector, writableData);
            case VirtioBlock.T_OUT -> !readOnly && inRange(sector, readableData);
            case VirtioBlock.T_FLUSH, VirtioBlock.T_GET_ID -> true;
            case VirtioBlock.T_DISCARD -> validSegments(segments, readableData, true);
            case VirtioBlock.T_WRITE_ZEROES -> validSegments(segments, readableData, false);
            default -> false;
        };
        String what = "request type " + Integer.toUnsignedString(type) + " sector " + Long.toUnsignedString(sector)
                + " chain " + c + ": status " + status;
        assertTrue(status == VirtioBlock.S_OK || status == VirtioBlock.S_IOERR || status == VirtioBlock.S_UNSUPP, what);
        if (!valid) assertNotEquals(VirtioBlock.S_OK, status, what + " for an invalid request");
        if (valid && !faults) assertEquals(VirtioBlock.S_OK, status, what + " for a valid request");
        byte[] diskNow = disk.data.toArray(ValueLayout.JAVA_BYTE);
        // The disk as the request alone leaves it if it takes effect.
        byte[] changed = diskBefore.clone();
        if (valid) {
            switch (type) {
                case VirtioBlock.T_OUT ->
                    System.arraycopy(readable, VirtioBlock.HEADER, changed, (int) (sector * 512), (int) readableData);
                case VirtioBlock.T_DISCARD, VirtioBlock.T_WRITE_ZEROES -> {
                    for (Segment g : segments)
                        Arrays.fill(
                                changed, (int) (g.sector() * 512), (int) ((g.sector() + g.count()) * 512), (byte) 0);
                }
                default -> {}
            }
        }
        long expectUsed = 1;
        if (status == VirtioBlock.S_OK) {
            assertArrayEquals(changed, diskNow, what + ": the disk holds what the request (alone) changed");
            if (type == VirtioBlock.T_IN) {
                byte[] want = Arrays.copyOfRange(diskBefore, (int) (sector * 512), (int) (sector * 512 + writableData));
                assertArrayEquals(want, gather(w, writableData), what + ": read data");
                expectUsed = writableData + 1;
            } else if (type == VirtioBlock.T_GET_ID) {
                int n = (int) Math.min(VirtioBlock.ID_BYTES, writableData);
                byte[] id = Arrays.copyOf(SERIAL.getBytes(StandardCharsets.US_ASCII), n);
                assertArrayEquals(id, gather(w, n), what + ": serial");
                expectUsed = n + 1;
            }
        } else if (!faults || !Arrays.equals(changed, diskNow)) {
            // Refused, or failed by the backend before changing anything (a failed flush may follow a change).
            assertArrayEquals(diskBefore, diskNow, what + ": the disk is unchanged");
        }
        assertEquals(expectUsed, usedLen, what + ": used length");
    }

    /** The first {@code n} bytes of the buffers, back to back. */
    private static byte[] gather(List<Buf> bufs, long n) {
        byte[] got = new byte[(int) n];
        int pos = 0;
        for (Buf b : bufs) {
            int k = (int) Math.min(b.len(), n - pos);
            if (k > 0) guest.memory.read(b.addr(), got, pos, k);
            pos += k;
        }
        return got;
    }

    // ---- seed inputs

    /** Writes {@link #seeds()} into the Inputs folder under the given src/test/resources (default: the cwd's). */
    public static void main(String[] args) throws IOException {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        FuzzInput.writeSeeds(resources, VirtioBlockFuzzTest.class, "requests", seeds());
    }

    /** A 64 KiB disk, writable, a queue of 16, every offered feature; {@code cfg} bit 0 wild, bits 3-4 read-only. */
    static Writer disk(int cfg) {
        return new Writer().u8(cfg).u8(2).u32(-1);
    }

    /**
     * A request op: type and sector choices as pickType/pickSector read them, then layout and extra bytes, then
     * the rest (data length or segments, status length, descriptor placement) as given.
     */
    static Writer request(Writer w, int typeChoice, int... rest) {
        w.u8(0).u8(typeChoice);
        for (int b : rest) w.u8(b);
        return w;
    }

    static Map<String, byte[]> seeds() {
        Map<String, byte[]> s = new LinkedHashMap<>();
        // Write 1024 bytes at sector 8, read them back, flush, get the serial: all one buffer each.
        Writer w = disk(0);
        request(w, 2, 1, 8, 0, 0, 2, 0, 0, 0); // OUT, sector 8, 1024 bytes, status 1 byte, fresh buffers
        request(w, 0, 1, 8, 0, 0, 2, 0, 0, 0); // IN, the same
        request(w, 4, 0, 0, 0, 0, 0, 0, 0); // FLUSH
        request(w, 5, 0, 0, 0, 4, 0, 0, 0); // GET_ID into 20 bytes
        s.put("write-read-flush-get-id", w.bytes());

        // A read laid out over an indirect table: the header cut in two, data and status over three descriptors.
        w = disk(0);
        request(w, 0, 0, 1 | 1 << 1 | 2 << 3, 0, 2, 0, 8, 0, 0)
                .u16(512)
                .u16(1024)
                .u8(0)
                .u8(0)
                .u8(0);
        s.put("read-split-over-an-indirect-table", w.bytes());

        // Discard two ranges; write zeroes with unmap; discard with unmap (unsupported); write zeroes past the end.
        w = disk(0);
        request(w, 6, 0, 0, 0, 2, 1, 4, 1, 0, 1, 10, 4).u16(6).u8(0).u8(0).u8(0).u8(0);
        request(w, 8, 0, 0, 0, 1, 1, 20, 1, 1, 0, 0, 0);
        request(w, 6, 0, 0, 0, 1, 1, 20, 1, 1, 0, 0, 0);
        request(w, 8, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0);
        s.put("discard-and-write-zeroes", w.bytes());

        // Refused requests: a read at the capacity, a write of 511 bytes, an unknown type, sector 2^64 - 1.
        w = disk(0);
        request(w, 0, 3, 0, 0, 1, 0, 0, 0);
        request(w, 2, 0, 0, 0, 3, 0, 0, 0);
        request(w, 10, 99, 0, 0, 0, 1, 0, 0, 0);
        request(w, 0, 5, 0, 0, 1, 0, 0, 0);
        s.put("refused-requests", w.bytes());

        // A write to a read-only disk.
        s.put("read-only-disk", request(disk(0x18), 2, 0, 0, 0, 1, 0, 0, 0).bytes());

        // A read without a device-writable byte (the device needs a reset), then a good read after the reset.
        w = disk(0);
        request(w, 0, 0, 0, 0, 0, 6, 0, 0);
        request(w, 0, 0, 0, 0, 1, 0, 0, 0);
        s.put("no-status-byte-then-reset", w.bytes());

        // A backend whose reads, writes and flushes fail.
        w = disk(0).u8(7).u8(7);
        request(w, 0, 0, 0, 0, 1, 0, 0, 0);
        request(w, 2, 0, 0, 0, 1, 0, 0, 0);
        request(w, 4, 0, 0, 0, 0, 0, 0, 0);
        s.put("backend-failures", w.bytes());

        // Wild mode: a read whose data buffer lies over the available ring, so the device's write moves the index.
        w = disk(1);
        request(w, 0, 0, 1 << 3, 0, 1, 0, 0)
                .u16(512)
                .u8(14)
                .u8(13)
                .u8(0)
                .u16((int) FuzzGuest.AVAIL_AT)
                .u8(0);
        s.put("wild-read-over-the-available-ring", w.bytes());
        return s;
    }
}
