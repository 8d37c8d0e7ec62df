package dev.jvmm.boot.loader;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.boot.BootException;
import dev.jvmm.boot.loader.FuzzedImages.Compression;
import dev.jvmm.boot.loader.LoaderFuzzing.Built;
import dev.jvmm.boot.loader.LoaderFuzzing.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Fuzzes the bzImage loader: setup header fields, the payload's place, format, stream header and size trailer,
 * the vmlinux inside it, the command line, the initrd and the boot path, each the valid default or a chosen value
 * (an empty input is a bzImage that boots), and now and then raw bytes behind the header magic; see
 * {@link LoaderFuzzing} for the property. {@link #payloadsDecompressWithinTheirClaim} fuzzes the host-side
 * decompression alone, faster. In a normal test run Jazzer replays the inputs under
 * src/test/resources/.../LinuxLoaderFuzzTestInputs; FuzzTargetsTest and scripts/fuzz fuzz them.
 */
class LinuxLoaderFuzzTest {
    @FuzzTest(maxDuration = "30s")
    void bzImagesLoadOrFailCleanly(FuzzedDataProvider d) {
        byte[] image;
        if (d.consumeInt(0, 15) == 15) {
            image = FuzzedImages.raw(d, new byte[0]);
            if (image.length < 0x264) image = Arrays.copyOf(image, 0x264);
            LoaderFuzzing.le(image).putShort(0x1fe, (short) 0xaa55).putInt(0x202, 0x53726448);
        } else {
            image = LoaderFuzzing.mutate(
                    d, FuzzedImages.bzImage(d, LoaderFuzzing.memory().size()));
        }
        byte[] initrd = LoaderFuzzing.initrd(d);
        String cmdline = LoaderFuzzing.cmdline(d);
        LoaderFuzzing.loadAndCheck(image, initrd, cmdline, LoaderFuzzing.bootPath(d));
    }

    private static final Map<String, byte[]> STREAMS = new HashMap<>();
    private static final int[] ZERO_RUNS = {0, 1, 4096, 1 << 20, 4 << 20};

    /** A stream of {@code data}, compressed once per JVM when it is a run of zeroes (a bomb, cheaply). */
    private static byte[] stream(Compression c, byte[] data, boolean zeroes) {
        if (!zeroes) return FuzzedImages.compress(c, data);
        synchronized (STREAMS) {
            return STREAMS.computeIfAbsent(c + "/" + data.length, k -> FuzzedImages.compress(c, data));
        }
    }

    /**
     * A payload in any format Linux builds (data from the input or a run of zeroes), its stream header and trailer
     * set to chosen values, decompressed for a guest of a chosen size: the result is exactly the trailer's size,
     * which fits the guest and the 1 GiB limit (and is the data when nothing was changed), or a BootException;
     * and decompressing allocates no more than about three times that size plus a fixed allowance (64 MiB for an
     * xz dictionary, some for the decoders' tables), whatever the stream's header claims (dictionary, window).
     */
    @FuzzTest(maxDuration = "30s")
    void payloadsDecompressWithinTheirClaim(FuzzedDataProvider d) {
        Compression c = Compression.values()[LoaderFuzzing.pickInt(d, 0, 0, Compression.values().length - 1)];
        // Data from the input, or a run of zeroes (a bomb) of a listed size, compressed once per JVM.
        int run = d.consumeBoolean() ? d.consumeInt(0, ZERO_RUNS.length - 1) : -1;
        boolean zeroes = run >= 0;
        byte[] data = zeroes ? new byte[ZERO_RUNS[run]] : d.consumeBytes(4096);
        byte[] stream = stream(c, data, zeroes).clone();
        FuzzedImages.tweakStreamHeader(d, c, stream, data.length);
        long claim = LoaderFuzzing.pick(
                d, data.length, data.length - 1L, data.length + 1L, 0, 1 << 20, PayloadDecompressor.MAX_OUTPUT + 1);
        byte[] payload = Arrays.copyOf(stream, stream.length + 4);
        LoaderFuzzing.le(payload).putInt(stream.length, (int) claim);
        List<Field> fields = new ArrayList<>();
        for (int i = 0; i < Math.min(16, stream.length); i++) fields.add(new Field("byte " + i, i, 1));
        fields.add(new Field("u32 at 1", 1, 4));
        fields.add(new Field("u32 at 4", 4, 4));
        fields.add(new Field("u64 at 5", 5, 8));
        fields.add(new Field("trailer", stream.length, 4));
        byte[] mutated = LoaderFuzzing.mutate(d, new Built(payload.clone(), fields));
        byte[] untouched = Arrays.copyOf(stream(c, data, zeroes), stream.length + 4);
        LoaderFuzzing.le(untouched).putInt(stream.length, (int) claim);
        long guest = LoaderFuzzing.pick(d, 64 << 20, 0, 1, 4096, 1 << 20, 8 << 20, PayloadDecompressor.MAX_OUTPUT);

        long claimed = mutated.length >= 4 ? LoaderFuzzing.le(mutated).getInt(mutated.length - 4) & 0xffffffffL : 0;
        long before = allocatedBytes();
        byte[] out = null;
        String refusal = null;
        try {
            out = PayloadDecompressor.decompress(mutated, guest);
        } catch (BootException e) {
            refusal = e.kind() + ": " + e.getMessage();
            String msg = e.getMessage();
            assertTrue(msg != null && !msg.isBlank() && !msg.contains("\n"), "not one clear line: " + msg);
        }
        long allocated = allocatedBytes() - before;
        long bound = claimed <= Math.min(guest, PayloadDecompressor.MAX_OUTPUT) ? claimed : 0;
        assertTrue(
                allocated <= 3 * bound + (80 << 20),
                c + ": decompressing a payload that claims " + claimed + " bytes allocated " + allocated);
        if (out != null) {
            assertEquals(claimed, out.length, c + ": decompressed to other than its trailer's size");
            assertTrue(out.length <= guest && out.length <= PayloadDecompressor.MAX_OUTPUT, c + ": too large");
            if (Arrays.equals(mutated, untouched)) assertArrayEquals(data, out, c + ": round trip");
        } else {
            assertFalse(
                    Arrays.equals(mutated, untouched)
                            && claim == data.length
                            && data.length <= guest
                            && c != Compression.LZO,
                    c + ": a valid payload was refused: " + refusal);
        }
    }

    private static long allocatedBytes() {
        return ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean())
                .getCurrentThreadAllocatedBytes();
    }
}
