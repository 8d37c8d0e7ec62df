package dev.jvmm.devices.block.qcow2;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes header and table parsing: a small valid image (snapshot, compressed and zero clusters, 512-byte
 * clusters so every table is small) gets byte patches chosen by the input; opening, reading everything,
 * checking and writing must end normally or with an IOException, never another exception, hang or OOM.
 * In a normal test run Jazzer replays the inputs under src/test/resources/.../Qcow2FuzzTestInputs; with
 * JAZZER_FUZZ=1 it fuzzes. {@link #randomPatches()} adds 150 seeded random inputs to every run.
 */
class Qcow2FuzzTest {
    private static byte[] template;

    private static synchronized byte[] template() throws IOException {
        if (template != null) return template;
        Path dir = Files.createTempDirectory("qcow2fuzz");
        Path p = dir.resolve("t.qcow2");
        Qcow2Creator.create(
                p, Qcow2Creator.Options.of(64 * 1024).withClusterSize(512).withRefcountBits(8));
        try (Qcow2Image q = Qcow2Image.open(p, false)) {
            byte[] text = new byte[512];
            for (int i = 0; i < text.length; i++) text[i] = (byte) ('a' + i % 3);
            q.writeCompressed(0, text, 512);
            byte[] data = new byte[4096];
            new Random(1).nextBytes(data);
            q.write(8192, MemorySegment.ofArray(data));
            q.writeZeroes(4096, 1024, false);
        }
        template = Files.readAllBytes(p);
        Files.delete(p);
        Files.delete(dir);
        return template;
    }

    /** Input: repeated (offset u16, length u8 (1..16), bytes) patches over the template image. */
    @FuzzTest(maxDuration = "30s")
    void patchedImagesFailCleanly(byte[] input) throws Exception {
        byte[] img = template().clone();
        ByteBuffer in = ByteBuffer.wrap(input);
        while (in.remaining() >= 4) {
            int off = (in.getShort() & 0xffff) % img.length;
            int len = 1 + (in.get() & 15);
            for (int i = 0; i < len && in.hasRemaining(); i++) {
                if (off + i < img.length) img[off + i] = in.get();
            }
        }
        exercise(img);
    }

    @Test
    void randomPatches() throws Exception {
        Random r = new Random(Long.getLong("qcow2.fuzz.seed", 42));
        int rounds = Integer.getInteger("qcow2.fuzz.rounds", 150);
        for (int round = 0; round < rounds; round++) {
            byte[] input = new byte[4 + r.nextInt(60)];
            r.nextBytes(input);
            // Bias patches towards the header and the first tables, where parsing happens.
            ByteBuffer.wrap(input).putShort(0, (short) r.nextInt(r.nextBoolean() ? 128 : 4096));
            long t0 = System.nanoTime();
            patchedImagesFailCleanly(input);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            if (ms > 2000)
                System.out.println("slow input (" + ms + " ms): "
                        + java.util.HexFormat.of().formatHex(input));
        }
    }

    static void exercise(byte[] img) throws Exception {
        Path p = Files.createTempFile("fuzz", ".qcow2");
        try {
            Files.write(p, img);
            try (Qcow2Image q = Qcow2Image.open(p, true)) {
                byte[] buf = new byte[(int) Math.min(q.size(), 1 << 20)];
                try {
                    q.read(0, MemorySegment.ofArray(buf));
                } catch (IOException expected) {
                    // a corrupt table found while reading
                }
                try {
                    new Qcow2Checker(q).run(Qcow2Checker.Repair.NONE);
                } catch (IOException expected) {
                    // too large or unreadable
                }
            } catch (IOException expected) {
                // refused at open
            }
            try (Qcow2Image q = Qcow2Image.open(p, false)) {
                long n = Math.min(q.size(), 16384);
                q.write(0, MemorySegment.ofArray(new byte[(int) n]));
                q.writeZeroes(0, Math.min(n, 1024), true);
                q.flush();
            } catch (IOException expected) {
                // refused or corrupt
            }
        } finally {
            Files.deleteIfExists(p);
        }
    }
}
