package dev.jvmm.devices.block.qcow2;

import com.github.luben.zstd.Zstd;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/** Compressed clusters: raw deflate (QEMU's zlib type, 4 KiB window) and zstd. Instances are per thread. */
final class Compression {
    static final int ZLIB = 0, ZSTD = 1;
    /** QEMU inflates with a 4 KiB window (windowBits -12), so back-references must stay within 4 KiB. */
    private static final int ZLIB_WINDOW = 4096;

    private static final ThreadLocal<Inflater> INFLATERS = ThreadLocal.withInitial(() -> new Inflater(true));
    private static final ThreadLocal<Deflater> DEFLATERS = ThreadLocal.withInitial(() -> new Deflater(6, true));

    private Compression() {}

    /**
     * Decompresses one cluster: fills {@code out[0, clusterSize)} from {@code in[0, inLen)}. The input may
     * carry trailing bytes of the next compressed cluster; decompression stops when the cluster is full.
     */
    static void decompress(int type, byte[] in, int inLen, byte[] out, int clusterSize, String where)
            throws Qcow2Exception {
        if (type == ZLIB) {
            Inflater inf = INFLATERS.get();
            inf.reset();
            inf.setInput(in, 0, inLen);
            int n = 0;
            try {
                while (n < clusterSize) {
                    int r = inf.inflate(out, n, clusterSize - n);
                    if (r == 0) {
                        if (inf.finished() || inf.needsInput() || inf.needsDictionary()) break;
                    }
                    n += r;
                }
            } catch (DataFormatException e) {
                throw new Qcow2Exception(where + ": corrupt deflate data: " + e.getMessage());
            }
            if (n != clusterSize) {
                throw new Qcow2Exception(
                        where + ": compressed cluster inflates to " + n + " bytes, not " + clusterSize);
            }
        } else if (type == ZSTD) {
            long frame;
            long n;
            try {
                frame = Zstd.findFrameCompressedSize(in, 0, inLen);
                if (Zstd.isError(frame) || frame <= 0 || frame > inLen) {
                    throw new Qcow2Exception(where + ": corrupt zstd frame");
                }
                n = Zstd.decompressByteArray(out, 0, clusterSize, in, 0, (int) frame);
            } catch (RuntimeException e) {
                throw new Qcow2Exception(where + ": corrupt zstd data: " + e.getMessage());
            }
            if (Zstd.isError(n)) throw new Qcow2Exception(where + ": corrupt zstd data: " + Zstd.getErrorName(n));
            if (n != clusterSize) {
                throw new Qcow2Exception(
                        where + ": compressed cluster decompresses to " + n + " bytes, not " + clusterSize);
            }
        } else {
            throw new Qcow2Exception(where + ": unknown compression type " + type);
        }
    }

    /** Compresses in[0, len) into out; returns the compressed length, or -1 if it would not be smaller. */
    static int compress(int type, byte[] in, int len, byte[] out) {
        if (type == ZSTD) {
            long n = Zstd.compressByteArray(out, 0, out.length, in, 0, len, 3);
            if (Zstd.isError(n) || n >= len) return -1;
            return (int) n;
        }
        Deflater d = DEFLATERS.get();
        d.reset();
        int n = 0;
        // A full flush after every window's worth of input keeps back-references within QEMU's 4 KiB window.
        for (int pos = 0; pos < len; pos += ZLIB_WINDOW) {
            int chunk = Math.min(ZLIB_WINDOW, len - pos);
            d.setInput(in, pos, chunk);
            boolean last = pos + chunk >= len;
            if (last) d.finish();
            while (true) {
                if (n >= out.length) return -1;
                int r = d.deflate(out, n, out.length - n, last ? Deflater.NO_FLUSH : Deflater.FULL_FLUSH);
                n += r;
                if (last ? d.finished() : (d.needsInput() && r < out.length - (n - r))) break;
            }
        }
        return n < len ? n : -1;
    }
}
