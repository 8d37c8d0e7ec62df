package dev.jvmm.devices.block.qcow2;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Random;

/**
 * The child process of {@link Qcow2CrashTest}: applies a deterministic sequence of operations to an image and
 * prints "ACK n" after each flush that returned (n = operations completed). The parent kills it at a random
 * moment and regenerates the same sequence to know what was acknowledged.
 */
public final class CrashWriter {
    static final int FLUSH_EVERY = 8;

    /** One operation: kind 0 = data write, 1 = write zeroes, 2 = discard; offsets and lengths in sectors. */
    record Op(int kind, long sector, int sectors) {}

    static Op op(Random r, long sizeSectors) {
        int kind = r.nextInt(10) < 7 ? 0 : 1 + r.nextInt(2);
        int sectors = 1 + (r.nextBoolean() ? r.nextInt(16) : r.nextInt(300));
        long sector = (long) (r.nextDouble() * (sizeSectors - sectors));
        return new Op(kind, sector, sectors);
    }

    /** The content op number i writes to a sector: identifiable by (i, sector). */
    static void fillSector(byte[] buf, int off, long opIndex, long sector) {
        ByteBuffer b = ByteBuffer.wrap(buf, off, 512);
        long x = opIndex * 0x9E3779B97F4A7C15L ^ sector * 0xC2B2AE3D27D4EB4FL;
        for (int i = 0; i < 64; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            b.putLong(off + i * 8, i == 0 ? opIndex : i == 1 ? sector : x);
        }
    }

    public static void main(String[] args) throws Exception {
        Path image = Path.of(args[0]);
        long seed = Long.parseLong(args[1]);
        Random r = new Random(seed);
        try (Qcow2Image q = Qcow2Image.open(image, false)) {
            long sizeSectors = q.size() / 512;
            byte[] buf = new byte[512 * 400];
            for (long i = 1; ; i++) {
                Op op = op(r, sizeSectors);
                switch (op.kind()) {
                    case 0 -> {
                        for (int s = 0; s < op.sectors(); s++) fillSector(buf, s * 512, i, op.sector() + s);
                        q.write(op.sector() * 512, MemorySegment.ofArray(buf).asSlice(0, op.sectors() * 512L));
                    }
                    case 1 -> q.writeZeroes(op.sector() * 512, op.sectors() * 512L, false);
                    default -> q.discard(op.sector() * 512, op.sectors() * 512L);
                }
                if (i % FLUSH_EVERY == 0) {
                    q.flush();
                    System.out.println("ACK " + i);
                    System.out.flush();
                }
            }
        }
    }
}
