package dev.jvmm.devices.virtio.blk;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.block.MemoryBackend;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The executor on hand-made requests: no ring, no parser, only the backend and the status byte. */
class BlockRequestExecutorTest {
    final MemoryBackend disk = new MemoryBackend(1 << 20, false);
    final BlockStats stats = new BlockStats();
    final MemorySegment status = MemorySegment.ofArray(new byte[] {0x7f});
    final MemorySegment id =
            MemorySegment.ofArray(java.util.Arrays.copyOf("serial-1".getBytes(StandardCharsets.US_ASCII), 20));

    @AfterEach
    void tearDown() {
        disk.close();
    }

    BlockRequestExecutor executor(boolean writeThrough) {
        return new BlockRequestExecutor(disk, id, writeThrough, stats);
    }

    static MemorySegment bytes(int n, int value) {
        return MemorySegment.ofArray(new byte[n]).fill((byte) value);
    }

    @Test
    void readsScatterIntoTheBuffersAndCountTheirBytes() {
        disk.data.asSlice(512, 1024).fill((byte) 3);
        MemorySegment a = bytes(512, 0), b = bytes(512, 0);
        assertEquals(1025, executor(false).execute(new BlockRequest.Read(1, List.of(a, b), status)));
        assertEquals(VirtioBlock.S_OK, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(3, b.get(ValueLayout.JAVA_BYTE, 511));
    }

    @Test
    void writeThroughFlushesEveryChange() {
        BlockRequestExecutor ex = executor(true);
        assertEquals(1, ex.execute(new BlockRequest.Write(0, List.of(bytes(512, 1)), status)));
        ex.execute(new BlockRequest.WriteZeroes(List.of(new BlockRequest.Range(0, 1, false)), status));
        ex.execute(new BlockRequest.Discard(List.of(new BlockRequest.Range(2, 0, false)), status));
        assertEquals(3, disk.flushes.get());
        assertEquals(0, disk.discards.get(), "an empty range reaches no backend");
        executor(false).execute(new BlockRequest.Write(0, List.of(bytes(512, 1)), status));
        assertEquals(3, disk.flushes.get());
    }

    @Test
    void getIdFillsWhatFits() {
        MemorySegment small = bytes(6, 0x55);
        assertEquals(7, executor(false).execute(new BlockRequest.GetId(List.of(small), status)));
        assertEquals("serial", new String(small.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII));
    }

    @Test
    void refusedRequestsOnlyAnswer() {
        assertEquals(1, executor(false).execute(new BlockRequest.Refused(Rejection.UNSUPPORTED_TYPE, status)));
        assertEquals(VirtioBlock.S_UNSUPP, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(1, executor(false).execute(new BlockRequest.Refused(Rejection.OUT_OF_RANGE, status)));
        assertEquals(VirtioBlock.S_IOERR, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(0, disk.writes.get());
        assertThrows(
                IllegalArgumentException.class,
                () -> executor(false).execute(new BlockRequest.Refused(Rejection.NO_STATUS, null)));
        assertThrows(IllegalArgumentException.class, () -> new BlockRequest.Refused(Rejection.OUT_OF_RANGE, null));
    }

    @Test
    void backendFailuresAreIoErrWithNothingWritten() {
        disk.failReads = true;
        assertEquals(1, executor(false).execute(new BlockRequest.Read(0, List.of(bytes(512, 0)), status)));
        assertEquals(VirtioBlock.S_IOERR, status.get(ValueLayout.JAVA_BYTE, 0));
        disk.failFlush = true;
        executor(false).execute(new BlockRequest.Flush(status));
        assertEquals(VirtioBlock.S_IOERR, status.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(2, stats.errors());
        assertEquals(
                new BlockStats.Snapshot(0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
                stats.snapshot(),
                "failures count only as errors");
    }

    @Test
    void requestsAndTheirBytesAreCountedByKind() {
        BlockRequestExecutor ex = executor(false);
        ex.execute(new BlockRequest.Read(0, List.of(bytes(512, 0), bytes(1024, 0)), status));
        ex.execute(new BlockRequest.Write(2, List.of(bytes(4096, 1)), status));
        ex.execute(new BlockRequest.Write(10, List.of(bytes(512, 1)), status));
        ex.execute(new BlockRequest.Flush(status));
        ex.execute(new BlockRequest.GetId(List.of(bytes(20, 0)), status));
        ex.execute(new BlockRequest.Refused(Rejection.UNSUPPORTED_TYPE, status));
        BlockStats.Snapshot s = stats.snapshot();
        assertEquals(new BlockStats.Snapshot(1, 1536, 2, 4608, 1, 0, 0, 1, 1, 0), s);
        assertEquals(6, s.requests());
    }
}
