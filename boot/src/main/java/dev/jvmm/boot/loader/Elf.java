package dev.jvmm.boot.loader;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The parts of an ELF file a kernel loader needs: class, machine, entry, loadable segments and notes.
 * Every offset and size is checked against the file, since a kernel file is user input.
 */
public final class Elf {
    public static final int PT_LOAD = 1, PT_NOTE = 4;

    public record Segment(int type, long offset, long vaddr, long paddr, long fileSize, long memSize) {}

    public record Note(String name, int type, byte[] desc) {}

    private final byte[] image;
    private final boolean is64;
    private final int machine;
    private final long entry;
    private final List<Segment> segments;

    private Elf(byte[] image, boolean is64, int machine, long entry, List<Segment> segments) {
        this.image = image;
        this.is64 = is64;
        this.machine = machine;
        this.entry = entry;
        this.segments = segments;
    }

    public static boolean isElf(byte[] b) {
        return b.length >= 52 && b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F';
    }

    public static Elf parse(byte[] image, String what) {
        if (!isElf(image)) throw new BootException(Kind.NOT_A_KERNEL, what + " is not an ELF file");
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        int cls = image[4];
        if (cls != 1 && cls != 2) throw new BootException(Kind.MALFORMED_KERNEL, what + ": unknown ELF class " + cls);
        if (image[5] != 1) throw new BootException(Kind.MALFORMED_KERNEL, what + ": not a little-endian ELF file");
        boolean is64 = cls == 2;
        if (is64 && image.length < 64) throw new BootException(Kind.TRUNCATED, what + ": truncated ELF header");
        int machine = b.getShort(18) & 0xffff;
        long entry = is64 ? b.getLong(24) : b.getInt(24) & 0xffffffffL;
        long phoff = is64 ? b.getLong(32) : b.getInt(28) & 0xffffffffL;
        int phentsize = b.getShort(is64 ? 54 : 42) & 0xffff;
        int phnum = b.getShort(is64 ? 56 : 44) & 0xffff;
        int minEntry = is64 ? 56 : 32;
        if (phnum == 0) throw new BootException(Kind.MALFORMED_KERNEL, what + ": ELF file has no program headers");
        // Compared as "phoff > room" so that a huge phoff cannot overflow the sum past the check.
        if (phentsize < minEntry || phoff < 0 || phoff > image.length - (long) phentsize * phnum)
            throw new BootException(Kind.TRUNCATED, what + ": ELF program headers lie outside the file");
        List<Segment> segs = new ArrayList<>();
        for (int i = 0; i < phnum; i++) {
            int p = (int) (phoff + (long) i * phentsize);
            Segment s = is64
                    ? new Segment(
                            b.getInt(p),
                            b.getLong(p + 8),
                            b.getLong(p + 16),
                            b.getLong(p + 24),
                            b.getLong(p + 32),
                            b.getLong(p + 40))
                    : new Segment(
                            b.getInt(p), u32(b, p + 4), u32(b, p + 8), u32(b, p + 12), u32(b, p + 16), u32(b, p + 20));
            if (s.type() == PT_LOAD || s.type() == PT_NOTE) {
                if (s.offset() < 0 || s.fileSize() < 0 || s.offset() > image.length - s.fileSize())
                    throw new BootException(Kind.TRUNCATED, what + ": ELF segment " + i + " lies outside the file");
                if (s.type() == PT_LOAD && (s.memSize() < s.fileSize() || s.memSize() > (1L << 40)))
                    throw new BootException(
                            Kind.MALFORMED_KERNEL, what + ": ELF segment " + i + " has a bad memory size");
            }
            segs.add(s);
        }
        // Nothing to load would leave the entry point in empty RAM and no end to place the initrd after.
        if (segs.stream().noneMatch(s -> s.type() == PT_LOAD && s.memSize() > 0))
            throw new BootException(
                    Kind.MALFORMED_KERNEL, what + ": ELF file has nothing to load (no PT_LOAD segment with a size)");
        return new Elf(image, is64, machine, entry, List.copyOf(segs));
    }

    private static long u32(ByteBuffer b, int at) {
        return b.getInt(at) & 0xffffffffL;
    }

    public boolean is64() {
        return is64;
    }

    /** e_machine: 3 = i386, 62 = x86-64. */
    public int machine() {
        return machine;
    }

    public long entry() {
        return entry;
    }

    public List<Segment> loadSegments() {
        return segments.stream().filter(s -> s.type() == PT_LOAD).toList();
    }

    public byte[] image() {
        return image;
    }

    /** The notes of every PT_NOTE segment. */
    public List<Note> notes() {
        List<Note> notes = new ArrayList<>();
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        for (Segment s : segments) {
            if (s.type() != PT_NOTE) continue;
            long p = s.offset(), end = s.offset() + s.fileSize();
            while (p + 12 <= end) {
                long nameSize = u32(b, (int) p), descSize = u32(b, (int) p + 4);
                int type = b.getInt((int) p + 8);
                long nameAt = p + 12, descAt = nameAt + align4(nameSize), next = descAt + align4(descSize);
                if (next > end || next <= p) break; // a malformed note ends the walk; the kernel is judged by the rest
                String name = new String(
                        image,
                        (int) nameAt,
                        (int) Math.max(0, nameSize - 1),
                        java.nio.charset.StandardCharsets.US_ASCII);
                byte[] desc = java.util.Arrays.copyOfRange(image, (int) descAt, (int) (descAt + descSize));
                notes.add(new Note(name, type, desc));
                p = next;
            }
        }
        return notes;
    }

    private static long align4(long v) {
        return (v + 3) & ~3L;
    }
}
