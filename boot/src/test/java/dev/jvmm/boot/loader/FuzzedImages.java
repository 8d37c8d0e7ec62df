package dev.jvmm.boot.loader;

import static dev.jvmm.boot.loader.LoaderFuzzing.ADDRESSES;
import static dev.jvmm.boot.loader.LoaderFuzzing.SIZES;
import static dev.jvmm.boot.loader.LoaderFuzzing.concat;
import static dev.jvmm.boot.loader.LoaderFuzzing.le;
import static dev.jvmm.boot.loader.LoaderFuzzing.pick;
import static dev.jvmm.boot.loader.LoaderFuzzing.pickInt;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.jvmm.boot.loader.LoaderFuzzing.Built;
import dev.jvmm.boot.loader.LoaderFuzzing.Field;
import io.airlift.compress.zstd.ZstdCompressor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.compressors.bzip2.BZip2CompressorOutputStream;
import org.apache.commons.compress.compressors.lz4.BlockLZ4CompressorOutputStream;
import org.tukaani.xz.LZMA2Options;
import org.tukaani.xz.LZMAOutputStream;
import org.tukaani.xz.XZOutputStream;

/**
 * Kernel images built from a fuzzer's input: each starts as a small valid image (what an exhausted input gives)
 * whose values the input may replace, one by one, with boundary values or any value. The fields each builder
 * returns are the header fields {@link LoaderFuzzing#mutate} may then set to values no builder writes.
 */
final class FuzzedImages {
    static final int PT_NULL = 0, PT_LOAD = 1, PT_NOTE = 4, PT_PHDR = 6, PT_GNU_STACK = 0x6474e551;
    static final int XEN_ELFNOTE_PHYS32_ENTRY = 18;

    private FuzzedImages() {}

    /** Segment bytes: never zero, so that where they land shows in guest RAM. */
    static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) b[i] = (byte) (0x80 | ((i * 7 + seed * 13) & 0x7f));
        return b;
    }

    /**
     * An ELF kernel: up to six program headers (by default one PT_LOAD of 0x100 bytes and 0x1000 of bss at
     * {@code load}), an optional Xen PVH entry note, the entry point near a segment or anywhere. {@code reserve}
     * bytes of zeroes after the program headers are left for a caller's header (multiboot); {@link #reserved}
     * gives their offset.
     */
    static Built elf(FuzzedDataProvider d, boolean is64, int machine, long load, boolean pvh, int reserve) {
        is64 = d.consumeBoolean() != is64;
        machine = (int) pick(d, machine, 3, 62, 0, 0xffff);
        boolean linux = load >= 0x1000000;
        int nseg = pickInt(d, 1, 0, 6);
        boolean note = d.consumeBoolean() != pvh;
        int ehSize = is64 ? 64 : 52, phSize = is64 ? 56 : 32;
        int phnum = nseg + (note ? 1 : 0);
        int dataStart = align(ehSize + phnum * phSize + reserve, 16);

        long[] type = new long[phnum],
                paddr = new long[phnum],
                vaddr = new long[phnum],
                filesz = new long[phnum],
                memsz = new long[phnum],
                offset = new long[phnum];
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        int at = dataStart;
        for (int i = 0; i < nseg; i++) {
            type[i] = pick(d, PT_LOAD, PT_LOAD, PT_NULL, PT_NOTE, PT_PHDR, PT_GNU_STACK);
            paddr[i] = pick(d, load + 0x10000L * i, ADDRESSES);
            vaddr[i] = pick(d, linux ? 0xffffffff80000000L + paddr[i] : paddr[i], concat(ADDRESSES, paddr[i]));
            int fileLength = (int) Math.floorMod(pick(d, 0x100, 0, 1, 0xfff, 0x1000, 0x3000), 0x4000);
            filesz[i] = fileLength;
            memsz[i] = pick(d, fileLength + 0x1000L, concat(SIZES, fileLength, fileLength + 1L, fileLength - 1L));
            offset[i] = at;
            byte[] bytes = pattern(fileLength, i);
            data.writeBytes(bytes);
            int pad = align(fileLength, 16) - fileLength;
            data.writeBytes(new byte[pad]);
            at += fileLength + pad;
        }
        if (note) {
            int n = nseg;
            long entry = pick(d, nseg > 0 ? paddr[0] + 0x80 : load, concat(ADDRESSES, load));
            int descLength = (int) Math.floorMod(pick(d, 4, 8, 0, 2, 12), 17);
            int noteType = (int) pick(d, XEN_ELFNOTE_PHYS32_ENTRY, 0, 17, 19);
            ByteBuffer b = le(new byte[12 + 4 + align(Math.max(0, descLength), 4)]);
            b.putInt(0, 4).putInt(4, descLength).putInt(8, noteType);
            b.put(12, new byte[] {'X', 'e', 'n', 0});
            if (descLength >= 8) b.putLong(16, entry);
            else if (descLength >= 4) b.putInt(16, (int) entry);
            type[n] = PT_NOTE;
            offset[n] = at;
            filesz[n] = b.capacity();
            memsz[n] = filesz[n];
            data.writeBytes(b.array());
            at += b.capacity();
        }
        long entry = nseg > 0
                ? pick(
                        d,
                        paddr[0] + 0x40,
                        paddr[0],
                        paddr[0] + filesz[0] - 1,
                        paddr[0] + memsz[0] - 1,
                        paddr[0] + memsz[0],
                        vaddr[0] + 0x40,
                        paddr[nseg - 1] + 0x10,
                        0,
                        -1,
                        0xffffffffL,
                        1L << 32)
                : pick(d, load, ADDRESSES);

        byte[] image = new byte[at];
        ByteBuffer b = le(image);
        List<Field> fields = new ArrayList<>();
        b.put(0, new byte[] {0x7f, 'E', 'L', 'F', (byte) (is64 ? 2 : 1), 1, 1});
        fields.add(new Field("EI_CLASS", 4, 1));
        fields.add(new Field("EI_DATA", 5, 1));
        b.putShort(16, (short) 2).putShort(18, (short) machine).putInt(20, 1);
        fields.add(new Field("e_machine", 18, 2));
        if (is64) {
            b.putLong(24, entry).putLong(32, ehSize);
            b.putShort(52, (short) ehSize).putShort(54, (short) phSize).putShort(56, (short) phnum);
            fields.add(new Field("e_entry", 24, 8));
            fields.add(new Field("e_phoff", 32, 8));
            fields.add(new Field("e_phentsize", 54, 2));
            fields.add(new Field("e_phnum", 56, 2));
        } else {
            b.putInt(24, (int) entry).putInt(28, ehSize);
            b.putShort(40, (short) ehSize).putShort(42, (short) phSize).putShort(44, (short) phnum);
            fields.add(new Field("e_entry", 24, 4));
            fields.add(new Field("e_phoff", 28, 4));
            fields.add(new Field("e_phentsize", 42, 2));
            fields.add(new Field("e_phnum", 44, 2));
        }
        for (int i = 0; i < phnum; i++) {
            int p = ehSize + i * phSize;
            if (is64) {
                b.putInt(p, (int) type[i]).putInt(p + 4, 7);
                b.putLong(p + 8, offset[i]).putLong(p + 16, vaddr[i]).putLong(p + 24, paddr[i]);
                b.putLong(p + 32, filesz[i]).putLong(p + 40, memsz[i]).putLong(p + 48, 0x1000);
                fields.add(new Field("p_type " + i, p, 4));
                fields.add(new Field("p_offset " + i, p + 8, 8));
                fields.add(new Field("p_paddr " + i, p + 24, 8));
                fields.add(new Field("p_filesz " + i, p + 32, 8));
                fields.add(new Field("p_memsz " + i, p + 40, 8));
            } else {
                b.putInt(p, (int) type[i]).putInt(p + 4, (int) offset[i]);
                b.putInt(p + 8, (int) vaddr[i]).putInt(p + 12, (int) paddr[i]);
                b.putInt(p + 16, (int) filesz[i]).putInt(p + 20, (int) memsz[i]);
                b.putInt(p + 24, 7).putInt(p + 28, 0x1000);
                fields.add(new Field("p_type " + i, p, 4));
                fields.add(new Field("p_offset " + i, p + 4, 4));
                fields.add(new Field("p_paddr " + i, p + 12, 4));
                fields.add(new Field("p_filesz " + i, p + 16, 4));
                fields.add(new Field("p_memsz " + i, p + 20, 4));
            }
        }
        byte[] bytes = data.toByteArray();
        System.arraycopy(bytes, 0, image, dataStart, bytes.length);
        if (note) {
            int n = (int) offset[phnum - 1];
            fields.add(new Field("note namesz", n, 4));
            fields.add(new Field("note descsz", n + 4, 4));
            fields.add(new Field("note desc", n + 16, 8));
        }
        return new Built(image, fields);
    }

    /** Where {@link #elf}'s reserved bytes start. */
    static int reserved(byte[] image) {
        boolean is64 = image[4] == 2;
        int phnum = le(image).getShort(is64 ? 56 : 44) & 0xffff;
        return (is64 ? 64 : 52) + phnum * (is64 ? 56 : 32);
    }

    static int align(int v, int a) {
        return (v + a - 1) / a * a;
    }

    /** An image of raw bytes from the input, after {@code prefix}. */
    static byte[] raw(FuzzedDataProvider d, byte[] prefix) {
        byte[] rest = d.consumeBytes(8192);
        byte[] image = Arrays.copyOf(prefix, prefix.length + rest.length);
        System.arraycopy(rest, 0, image, prefix.length, rest.length);
        return image;
    }

    // ---- bzImage

    /** Payload formats by Linux's names; LZO is one jvmm cannot decompress. */
    enum Compression {
        GZIP,
        BZIP2,
        LZMA,
        XZ,
        LZ4,
        ZSTD,
        LZO
    }

    /** {@code data} compressed as Linux's arch/x86/boot/compressed does, with no size trailer. */
    static byte[] compress(Compression c, byte[] data) {
        try {
            ByteArrayOutputStream bos = new ByteArrayOutputStream();
            switch (c) {
                case GZIP -> write(new GZIPOutputStream(bos), data);
                case BZIP2 -> write(new BZip2CompressorOutputStream(bos, 1), data);
                case LZMA -> write(new LZMAOutputStream(bos, small(), -1), data);
                case XZ -> write(new XZOutputStream(bos, small()), data);
                case LZ4 -> {
                    bos.writeBytes(new byte[] {0x02, 0x21, 0x4c, 0x18});
                    ByteArrayOutputStream block = new ByteArrayOutputStream();
                    try {
                        write(new BlockLZ4CompressorOutputStream(block), data);
                    } catch (RuntimeException e) {
                        // commons-compress fails on some short runs (IndexOutOfBounds in rewriteLastPairs)
                        block.reset();
                        literalLz4Block(block, data);
                    }
                    bos.writeBytes(le(new byte[4]).putInt(0, block.size()).array());
                    bos.writeBytes(block.toByteArray());
                }
                case ZSTD -> {
                    ZstdCompressor z = new ZstdCompressor();
                    byte[] out = new byte[z.maxCompressedLength(data.length)];
                    bos.write(out, 0, z.compress(data, 0, data.length, out, 0, out.length));
                }
                case LZO -> {
                    bos.writeBytes(new byte[] {(byte) 0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a, 0x1a, 0x0a});
                    bos.writeBytes(data);
                }
            }
            return bos.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Sets the stream header's size fields, as the format lays them out, to chosen values: the lzma dictionary and
     * uncompressed sizes, the xz block's LZMA2 dictionary (its header CRC made right again so the value is read),
     * the lz4 block size. What a decoder allocates by.
     */
    static void tweakStreamHeader(FuzzedDataProvider d, Compression c, byte[] stream, int dataLength) {
        ByteBuffer b = le(stream);
        switch (c) {
            case LZMA -> {
                if (stream.length < 13) return;
                b.putInt(1, (int) pick(d, b.getInt(1), 1 << 26, 1 << 28, 1 << 30, 0xffff0000L, 0));
                b.putLong(5, pick(d, b.getLong(5), 0, dataLength, dataLength + 1L, dataLength - 1L, Long.MAX_VALUE));
            }
            case XZ -> {
                // stream header (12 bytes), then the block header: size, flags, filter 0x21, props size 1, dict
                if (stream.length < 24 || stream[14] != 0x21 || stream[15] != 1) return;
                int size = ((stream[12] & 0xff) + 1) * 4;
                if (12 + size > stream.length) return;
                stream[16] = (byte) pick(d, stream[16], 0x16, 0x18, 0x1c, 0x22, 0x24, 39, 40, 41);
                java.util.zip.CRC32 crc = new java.util.zip.CRC32();
                crc.update(stream, 12, size - 4);
                b.putInt(12 + size - 4, (int) crc.getValue());
            }
            case LZ4 -> {
                if (stream.length < 8) return;
                b.putInt(4, (int) pick(d, b.getInt(4), 0, 0x7fffffff, 0x800000, stream.length, stream.length - 7));
            }
            default -> {}
        }
    }

    /** An lz4 block of literals only: a token, the length beyond 15 in bytes of 255, the data. */
    private static void literalLz4Block(ByteArrayOutputStream out, byte[] data) {
        out.write(Math.min(data.length, 15) << 4);
        if (data.length >= 15) {
            int rest = data.length - 15;
            for (; rest >= 255; rest -= 255) out.write(255);
            out.write(rest);
        }
        out.writeBytes(data);
    }

    private static LZMA2Options small() throws IOException {
        LZMA2Options o = new LZMA2Options(0);
        o.setDictSize(1 << 16); // small and fast, and a size whose second byte is 0, as detect() expects of lzma
        return o;
    }

    private static void write(OutputStream o, byte[] data) throws IOException {
        try (o) {
            o.write(data);
        }
    }

    /**
     * A bzImage: setup sectors and a setup header as Linux 2.15 writes them, protected-mode code, and a payload
     * that holds a vmlinux built by {@link #elf} (its own fields chosen and mutated), compressed in a chosen
     * format, followed by the size trailer (by default the true size).
     */
    static Built bzImage(FuzzedDataProvider d, long ramSize) {
        Built vm = elf(d, true, 62, 0x1000000, false, 0);
        byte[] vmlinux = LoaderFuzzing.mutate(d, vm);
        Compression c = Compression.values()[pickInt(d, 0, 0, Compression.values().length - 1)];
        byte[] stream = compress(c, vmlinux);
        tweakStreamHeader(d, c, stream, vmlinux.length);
        long claim = pick(
                d,
                vmlinux.length,
                vmlinux.length - 1L,
                vmlinux.length + 1L,
                0,
                ramSize,
                ramSize + 1,
                PayloadDecompressor.MAX_OUTPUT,
                PayloadDecompressor.MAX_OUTPUT + 1,
                0xffffffffL);
        byte[] payload = Arrays.copyOf(stream, stream.length + 4);
        le(payload).putInt(stream.length, (int) claim);

        int setupSects = pickInt(d, 4, 0, 8);
        int pmOffset = ((setupSects == 0 ? 4 : setupSects) + 1) * 512;
        int pmCode = pickInt(d, 0x300, 0, 0x800);
        int tail = pickInt(d, 0, 0, 64);
        byte[] image = new byte[pmOffset + pmCode + payload.length + tail];
        System.arraycopy(pattern(pmCode, 3), 0, image, pmOffset, pmCode);
        System.arraycopy(payload, 0, image, pmOffset + pmCode, payload.length);
        ByteBuffer b = le(image);
        b.put(0x1f1, (byte) setupSects);
        b.putShort(0x1fe, (short) 0xaa55);
        b.put(0x200, (byte) 0xeb).put(0x201, (byte) 0x66); // jump: the header runs to 0x268
        b.putInt(0x202, 0x53726448);
        b.putShort(0x206, (short) pick(d, 0x020f, 0x0206, 0x0207, 0x0208, 0x0205, 0xffff));
        b.put(0x211, (byte) pick(d, 1, 0, 0x81, 0xff));
        b.putInt(0x22c, (int) pick(d, 0x7fffffff, 0, 0x37ffffff, 0xffffffffL, 0x100000, 0x1000000, 0x1ffffff));
        b.putInt(0x230, 0x200000);
        b.putShort(0x236, (short) pick(d, 1, 0, 3, 0x1f));
        b.putInt(0x238, (int) pick(d, 2048, 0, 1, 255, 0xffff, 0x10000, 0x7fffffff, -1));
        b.putInt(0x248, pmCode);
        b.putInt(0x24c, payload.length);
        b.putLong(0x258, 0x1000000);
        b.putInt(0x260, (int) pick(d, 0x800000, 0, 0x100, 0x1000000, 0x1f00000, 0xffffffffL));
        List<Field> fields = new ArrayList<>(List.of(
                new Field("setup_sects", 0x1f1, 1),
                new Field("boot_flag", 0x1fe, 2),
                new Field("jump", 0x201, 1),
                new Field("header", 0x202, 4),
                new Field("version", 0x206, 2),
                new Field("loadflags", 0x211, 1),
                new Field("initrd_addr_max", 0x22c, 4),
                new Field("xloadflags", 0x236, 2),
                new Field("cmdline_size", 0x238, 4),
                new Field("payload_offset", 0x248, 4),
                new Field("payload_length", 0x24c, 4),
                new Field("init_size", 0x260, 4),
                // The boot loader's own fields, which a kernel image leaves zero:
                new Field("ramdisk_image", 0x218, 4),
                new Field("ramdisk_size", 0x21c, 4),
                new Field("setup_data", 0x250, 8)));
        int p = pmOffset + pmCode;
        // The compressed stream's header: magic, flags, dictionary and window sizes, first block sizes.
        for (int i = 0; i < 16; i++) fields.add(new Field("payload byte " + i, p + i, 1));
        fields.add(new Field("payload u32 at 1", p + 1, 4));
        fields.add(new Field("payload u32 at 4", p + 4, 4));
        fields.add(new Field("payload u64 at 5", p + 5, 8));
        fields.add(new Field("payload trailer", p + payload.length - 4, 4));
        return new Built(image, fields);
    }

    // ---- multiboot

    /**
     * A multiboot kernel: by default the a.out kludge (header at 64, loaded at 1 MiB, the file's first 0x1000
     * bytes then bss to +0x3000, entry at +0x100), or an ELF kernel with a header after its program headers;
     * the header's position, flags, checksum and every address chosen by the input.
     */
    static Built multiboot(FuzzedDataProvider d) {
        boolean kludge = !d.consumeBoolean();
        byte[] image;
        int off;
        List<Field> fields = new ArrayList<>();
        if (kludge) {
            int length = pickInt(d, 0x2000, 32, 0x4000);
            off = Math.min(pickInt(d, 64, 0, 8192) & ~3, length - 32);
            image = pattern(length, 5);
        } else {
            Built elf = elf(d, false, 3, 0x100000, false, 48);
            image = elf.image();
            fields.addAll(elf.fields());
            off = reserved(image);
            off = align(off, 4);
            Arrays.fill(image, off, Math.min(image.length, off + 32), (byte) 0);
        }
        int flags = (int) pick(d, kludge ? 0x10003 : 0x3, 0x10000, 0x10007, 0x1000b, 0x10003 | 0x8000, 0, 4, 0x10);
        int checksum = (int) pick(d, -(MultibootLoader.HEADER_MAGIC + flags), 0, 1);
        ByteBuffer b = le(image);
        b.putInt(off, MultibootLoader.HEADER_MAGIC).putInt(off + 4, flags).putInt(off + 8, checksum);
        fields.add(new Field("mb flags", off + 4, 4));
        fields.add(new Field("mb checksum", off + 8, 4));
        if (kludge) {
            long loadAddr = pick(d, 0x100000, ADDRESSES);
            long headerAddr = pick(d, loadAddr + off, loadAddr, loadAddr + off + 1, loadAddr + off - 1, 0);
            long loadEnd =
                    pick(d, loadAddr + 0x1000, 0, loadAddr, loadAddr + image.length - off, loadAddr + image.length);
            long bssEnd = pick(
                    d,
                    loadAddr + 0x3000,
                    concat(ADDRESSES, 0, loadEnd, loadEnd - 1, loadAddr + image.length, loadAddr + (32 << 20)));
            long entry = pick(d, loadAddr + 0x100, concat(ADDRESSES, loadAddr, loadEnd - 1, loadEnd, bssEnd));
            b.putInt(off + 12, (int) headerAddr)
                    .putInt(off + 16, (int) loadAddr)
                    .putInt(off + 20, (int) loadEnd)
                    .putInt(off + 24, (int) bssEnd)
                    .putInt(off + 28, (int) entry);
            fields.add(new Field("header_addr", off + 12, 4));
            fields.add(new Field("load_addr", off + 16, 4));
            fields.add(new Field("load_end_addr", off + 20, 4));
            fields.add(new Field("bss_end_addr", off + 24, 4));
            fields.add(new Field("entry_addr", off + 28, 4));
        }
        return new Built(image, fields);
    }
}
