package dev.jvmm.devices.virtio.blk;

import static dev.jvmm.devices.virtio.blk.VirtioBlock.SECTOR;

import dev.jvmm.devices.block.BlockBackend;
import dev.jvmm.devices.block.SegmentList;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a parsed {@link BlockRequest} against the backend and writes its status byte. The request's checks are
 * done; what can still fail is the host (an IOException), which completes the request with S_IOERR and leaves
 * the device serving. A request completes only after its backend call returned; in write-through mode (the
 * driver did not accept VIRTIO_BLK_F_FLUSH) every change is flushed before completion.
 *
 * <p>Shared by every queue (the backend is thread-safe); holds nothing per request.
 */
public final class BlockRequestExecutor {
    private static final Logger LOG = LoggerFactory.getLogger(BlockRequestExecutor.class);

    private final BlockBackend backend;
    private final MemorySegment id;
    private final boolean writeThrough;
    private final BlockStats stats;

    /**
     * @param id            the get-id answer, NUL-padded to 20 bytes
     * @param writeThrough  flush after every write, discard and write-zeroes
     * @param stats         counts the requests, their bytes and those failed by the backend
     */
    public BlockRequestExecutor(BlockBackend backend, MemorySegment id, boolean writeThrough, BlockStats stats) {
        this.backend = backend;
        this.id = id;
        this.writeThrough = writeThrough;
        this.stats = stats;
    }

    /**
     * Serves the request and writes its status; returns the bytes written into the chain's device-writable part,
     * the status byte included (the used length).
     *
     * @throws IllegalArgumentException for a refused request that cannot be answered (the device must reset)
     */
    public int execute(BlockRequest request) {
        return execute(request, stats.now());
    }

    /** As {@link #execute(BlockRequest)}, for a request taken off its queue at {@code takenNanos} (stats' clock). */
    int execute(BlockRequest request, long takenNanos) {
        if (request instanceof BlockRequest.Refused refused && !refused.reason().answerable())
            throw new IllegalArgumentException(
                    "a request refused as " + refused.reason() + " has no status byte to answer with");
        long written = 0;
        int status = VirtioBlock.S_OK;
        long start = takenNanos;
        try {
            switch (request) {
                case BlockRequest.Read r -> {
                    backend.readv(r.sector() * SECTOR, r.data());
                    written = r.length();
                }
                case BlockRequest.Write w -> {
                    backend.writev(w.sector() * SECTOR, w.data());
                    if (writeThrough) backend.flush();
                }
                case BlockRequest.Flush f -> backend.flush();
                case BlockRequest.GetId g -> {
                    SegmentList dst = SegmentList.of(g.data());
                    written = Math.min(id.byteSize(), dst.byteSize());
                    dst.copyFrom(id, 0, 0, written);
                }
                case BlockRequest.Discard d -> {
                    for (BlockRequest.Range r : d.ranges())
                        if (r.sectors() > 0) backend.discard(r.sector() * SECTOR, r.sectors() * SECTOR);
                    if (writeThrough) backend.flush();
                }
                case BlockRequest.WriteZeroes z -> {
                    for (BlockRequest.Range r : z.ranges())
                        if (r.sectors() > 0) backend.writeZeroes(r.sector() * SECTOR, r.sectors() * SECTOR, r.unmap());
                    if (writeThrough) backend.flush();
                }
                case BlockRequest.Refused x -> status = x.reason().status();
            }
            stats.served(request, stats.now() - start);
        } catch (IOException e) {
            stats.failed(); // counted as an error, not as an operation of its kind
            LOG.warn("virtio-blk: {} failed: {}", describe(request), e.getMessage());
            status = VirtioBlock.S_IOERR;
            written = 0;
        }
        request.status().set(ValueLayout.JAVA_BYTE, 0, (byte) status);
        return (int) (written + 1); // a u32: the virtqueue refuses chains of more than 4 GiB
    }

    private static String describe(BlockRequest r) {
        return switch (r) {
            case BlockRequest.Read x -> "read of " + x.length() + " bytes at sector " + x.sector();
            case BlockRequest.Write x -> "write of " + x.length() + " bytes at sector " + x.sector();
            case BlockRequest.Flush x -> "flush";
            case BlockRequest.GetId x -> "get-id";
            case BlockRequest.Discard x -> "discard of " + x.ranges().size() + " ranges";
            case BlockRequest.WriteZeroes x -> "write-zeroes of " + x.ranges().size() + " ranges";
            case BlockRequest.Refused x -> "refused request (" + x.reason() + ")";
        };
    }
}
