package dev.jvmm.devices.virtio.blk;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.virtio.DescriptorChain;
import dev.jvmm.devices.virtio.VirtioDevice;
import dev.jvmm.devices.virtio.VirtioFeatures;
import dev.jvmm.devices.virtio.Virtqueue;
import dev.jvmm.devices.virtio.VirtqueueException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * virtio-blk (virtio 1.2, 5.2): read, write, flush, get-id, discard, write-zeroes, read-only disks and
 * several request queues, over a {@link BlockBackend}.
 *
 * <p>Every request is checked before the backend sees it: the header and status byte must be there, data
 * lengths must be whole sectors, sector ranges must lie within the capacity. A bad request completes with
 * VIRTIO_BLK_S_IOERR (or S_UNSUPP for what the device does not do); a request without a header or a status
 * byte cannot be answered and puts the device into DEVICE_NEEDS_RESET. A backend IOException completes the
 * request with S_IOERR and the device keeps serving. A request is completed only after the backend call
 * returned; without a negotiated VIRTIO_BLK_F_FLUSH every write is flushed before completion (the spec's
 * write-through case).
 */
public final class VirtioBlock implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlock.class);

    public static final int F_SIZE_MAX = 1, F_SEG_MAX = 2, F_GEOMETRY = 4, F_RO = 5, F_BLK_SIZE = 6, F_FLUSH = 9,
            F_TOPOLOGY = 10, F_CONFIG_WCE = 11, F_MQ = 12, F_DISCARD = 13, F_WRITE_ZEROES = 14;
    public static final int T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_GET_LIFETIME = 10, T_DISCARD = 11,
            T_WRITE_ZEROES = 13, T_SECURE_ERASE = 14;
    public static final int S_OK = 0, S_IOERR = 1, S_UNSUPP = 2;
    public static final int SECTOR = 512;
    public static final int ID_BYTES = 20;
    static final int HEADER = 16, SEGMENT = 16;
    /** Limits advertised for discard and write-zeroes. */
    static final int MAX_DISCARD_SECTORS = 1 << 21, MAX_DISCARD_SEG = 32;
    public static final int CONFIG_SIZE = BlockConfig.SIZE;

    /**
     * How the disk looks to the guest.
     *
     * @param readOnly   refuse writes (also implied by a read-only backend)
     * @param serial     the VIRTIO_BLK_T_GET_ID string, ASCII, at most 20 bytes (empty: none)
     * @param queues     number of request queues (VIRTIO_BLK_F_MQ when more than one)
     * @param queueSize  entries per queue, a power of two
     * @param blockSize  the logical block size advertised in blk_size
     */
    public record Options(boolean readOnly, String serial, int queues, int queueSize, int blockSize) {
        public static final Options DEFAULT = new Options(false, "", 1, 256, 512);

        public Options {
            if (serial == null) serial = "";
            if (serial.length() > ID_BYTES || !StandardCharsets.US_ASCII.newEncoder().canEncode(serial))
                throw new IllegalArgumentException("disk serial '" + serial + "' must be at most " + ID_BYTES + " ASCII characters");
            if (queues < 1 || queues > 64) throw new IllegalArgumentException("virtio-blk queues " + queues + " must be 1 to 64");
            if (queueSize < 4 || queueSize > Virtqueue.MAX_SIZE || Integer.bitCount(queueSize) != 1)
                throw new IllegalArgumentException("virtio-blk queue size " + queueSize + " must be a power of two from 4 to 32768");
            if (blockSize < SECTOR || blockSize > 65536 || Integer.bitCount(blockSize) != 1)
                throw new IllegalArgumentException("block size " + blockSize + " must be a power of two from 512 to 65536");
        }

        public Options withReadOnly(boolean ro) {
            return new Options(ro, serial, queues, queueSize, blockSize);
        }

        public Options withSerial(String s) {
            return new Options(readOnly, s, queues, queueSize, blockSize);
        }

        public Options withQueues(int n) {
            return new Options(readOnly, serial, n, queueSize, blockSize);
        }
    }

    private final BlockBackend backend;
    private final Options options;
    private final boolean readOnly;
    private final long capacitySectors;
    private final long features;
    private final MemorySegment config;
    private final MemorySegment id = MemorySegment.ofArray(new byte[ID_BYTES]);
    private final LongAdder ioErrors = new LongAdder();

    // Set by activate, read on the I/O thread.
    private volatile QueueState[] states;
    private volatile long negotiated;

    private static final class QueueState {
        final DescriptorChain chain;
        final MemorySegment scratch = MemorySegment.ofArray(new byte[16]);
        // Discard/write-zeroes segments, copied once so the guest cannot change them after the checks.
        final long[] segSector = new long[MAX_DISCARD_SEG];
        final long[] segCount = new long[MAX_DISCARD_SEG];
        final boolean[] segUnmap = new boolean[MAX_DISCARD_SEG];

        QueueState(int size) {
            chain = new DescriptorChain(size);
        }
    }

    public VirtioBlock(BlockBackend backend, Options options) {
        this.backend = backend;
        this.options = options;
        this.readOnly = options.readOnly() || backend.readOnly();
        this.capacitySectors = backend.size() / SECTOR;
        long f = VirtioFeatures.bit(VirtioFeatures.VERSION_1) | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX)
                | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC)
                | bit(F_SEG_MAX) | bit(F_BLK_SIZE) | bit(F_FLUSH);
        if (readOnly) f |= bit(F_RO);
        else f |= bit(F_DISCARD) | bit(F_WRITE_ZEROES);
        if (options.queues() > 1) f |= bit(F_MQ);
        this.features = f;

        int sectorsPerBlock = options.blockSize() / SECTOR;
        this.config = new BlockConfig(capacitySectors, 0,
                options.queueSize() - 2, // seg_max: the header and status take two descriptors
                options.blockSize(), Integer.numberOfTrailingZeros(sectorsPerBlock), options.queues(),
                MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, sectorsPerBlock, MAX_DISCARD_SECTORS, MAX_DISCARD_SEG,
                true).toSegment();
        byte[] serial = options.serial().getBytes(StandardCharsets.US_ASCII);
        MemorySegment.copy(serial, 0, id, ValueLayout.JAVA_BYTE, 0, serial.length);
    }

    private static long bit(int f) {
        return 1L << f;
    }

    public boolean readOnly() {
        return readOnly;
    }

    public long capacitySectors() {
        return capacitySectors;
    }

    /** Requests completed with S_IOERR because the backend failed. */
    public long backendErrors() {
        return ioErrors.sum();
    }

    @Override
    public int deviceType() {
        return TYPE_BLOCK;
    }

    @Override
    public long deviceFeatures() {
        return features;
    }

    @Override
    public int[] queueMaxSizes() {
        int[] sizes = new int[options.queues()];
        java.util.Arrays.fill(sizes, options.queueSize());
        return sizes;
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public long readConfig(int offset, int size) {
        long v = 0;
        for (int i = 0; i < size; i++) v |= (config.get(ValueLayout.JAVA_BYTE, offset + i) & 0xffL) << (8 * i);
        return v;
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // Nothing is writable: writeback needs VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    }

    @Override
    public void activate(GuestMemory memory, long negotiatedFeatures, List<Virtqueue> queues, Context context) {
        QueueState[] s = new QueueState[queues.size()];
        for (int i = 0; i < s.length; i++) s[i] = new QueueState(queues.get(i).maxSize());
        negotiated = negotiatedFeatures;
        states = s;
    }

    @Override
    public void reset() {
        states = null;
        negotiated = 0;
    }

    @Override
    public void processQueue(int index, Virtqueue queue) {
        QueueState st = states[index];
        DescriptorChain chain = st.chain;
        while (queue.pop(chain)) {
            int written = handle(chain, st);
            queue.addUsed(chain.head(), written);
        }
    }

    /** Serves one request and writes its status; returns the bytes written into the writable part. */
    private int handle(DescriptorChain c, QueueState st) {
        if (c.readableLength() < HEADER)
            throw new VirtqueueException("virtio-blk request " + c.head() + " has " + c.readableLength() + " header bytes, not 16");
        if (c.writableLength() < 1)
            throw new VirtqueueException("virtio-blk request " + c.head() + " has no status byte");
        int type = c.readInt(0, st.scratch);
        long sector = c.readLong(8, st.scratch);
        long statusOffset = c.writableLength() - 1;
        long written = 0;
        int status;
        try {
            switch (type) {
                case T_IN -> {
                    long len = c.writableLength() - 1;
                    status = checkRange(sector, len);
                    if (status == S_OK) {
                        transfer(c, sector * SECTOR, len, false);
                        written = len;
                    }
                }
                case T_OUT -> {
                    long len = c.readableLength() - HEADER;
                    status = readOnly ? S_IOERR : checkRange(sector, len);
                    if (status == S_OK) {
                        transfer(c, sector * SECTOR, len, true);
                        if (writeThrough()) backend.flush();
                    }
                }
                case T_FLUSH -> {
                    backend.flush();
                    status = S_OK;
                }
                case T_GET_ID -> {
                    long n = Math.min(ID_BYTES, c.writableLength() - 1);
                    c.writeTo(0, id, 0, n);
                    written = n;
                    status = S_OK;
                }
                case T_DISCARD -> status = discardOrZero(c, st, true, F_DISCARD);
                case T_WRITE_ZEROES -> status = discardOrZero(c, st, false, F_WRITE_ZEROES);
                default -> status = S_UNSUPP;
            }
        } catch (IOException e) {
            ioErrors.increment();
            LOG.warn("virtio-blk: request type {} at sector {} failed: {}", type, sector, e.getMessage());
            status = S_IOERR;
            written = 0;
        }
        c.writeByte(statusOffset, (byte) status);
        return (int) (written + 1);
    }

    private boolean writeThrough() {
        return (negotiated & bit(F_FLUSH)) == 0;
    }

    /** S_OK when {@code len} bytes from sector are whole sectors within the capacity. */
    private int checkRange(long sector, long len) {
        if (len % SECTOR != 0) return S_IOERR;
        if (sector < 0 || sector > capacitySectors) return S_IOERR; // sector is u64: negative means huge
        if (len / SECTOR > capacitySectors - sector) return S_IOERR;
        return S_OK;
    }

    /** Moves len bytes between the backend at offset and the chain's data buffers. */
    private void transfer(DescriptorChain c, long offset, long len, boolean toBackend) throws IOException {
        if (toBackend) {
            long skip = HEADER;
            for (int i = 0; i < c.readableCount() && len > 0; i++) {
                MemorySegment seg = c.readable(i);
                if (skip >= seg.byteSize()) {
                    skip -= seg.byteSize();
                    continue;
                }
                long n = Math.min(seg.byteSize() - skip, len);
                backend.write(offset, seg.asSlice(skip, n));
                offset += n;
                len -= n;
                skip = 0;
            }
        } else {
            for (int i = 0; i < c.writableCount() && len > 0; i++) {
                MemorySegment seg = c.writable(i);
                long n = Math.min(seg.byteSize(), len);
                backend.read(offset, n == seg.byteSize() ? seg : seg.asSlice(0, n));
                offset += n;
                len -= n;
            }
        }
    }

    private int discardOrZero(DescriptorChain c, QueueState st, boolean discard, int feature) throws IOException {
        if ((negotiated & bit(feature)) == 0) return S_UNSUPP;
        if (readOnly) return S_IOERR;
        long data = c.readableLength() - HEADER;
        if (data == 0 || data % SEGMENT != 0 || data / SEGMENT > MAX_DISCARD_SEG) return S_IOERR;
        int segments = (int) (data / SEGMENT);
        // Copy and check every segment before touching the disk, so a bad one changes nothing.
        for (int i = 0; i < segments; i++) {
            long off = HEADER + (long) i * SEGMENT;
            long sector = c.readLong(off, st.scratch);
            long count = c.readInt(off + 8, st.scratch) & 0xffffffffL;
            int flags = c.readInt(off + 12, st.scratch);
            if ((flags & ~1) != 0) return S_UNSUPP;
            if (discard && (flags & 1) != 0) return S_UNSUPP;
            if (count > MAX_DISCARD_SECTORS) return S_IOERR;
            if (checkRange(sector, count * SECTOR) != S_OK) return S_IOERR;
            st.segSector[i] = sector;
            st.segCount[i] = count;
            st.segUnmap[i] = (flags & 1) != 0;
        }
        for (int i = 0; i < segments; i++) {
            long count = st.segCount[i];
            if (count == 0) continue;
            if (discard) backend.discard(st.segSector[i] * SECTOR, count * SECTOR);
            else backend.writeZeroes(st.segSector[i] * SECTOR, count * SECTOR, st.segUnmap[i]);
        }
        if (writeThrough()) backend.flush();
        return S_OK;
    }
}
