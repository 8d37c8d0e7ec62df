package dev.jvmm.boot.loader;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jvmm.boot.BootException;

/**
 * Fuzzes the ELF reader and the vmlinux loader: program headers (count, size, offset), each segment's type,
 * offsets, addresses and sizes (boundaries and overflowing sums), the entry point, a Xen PVH note, ELF64 and
 * ELF32; an empty input is a small vmlinux that loads. {@link #elfFilesParseOrFailCleanly} checks what
 * {@link Elf} reports; {@link #vmlinuxKernelsLoadOrFailCleanly} loads through {@link KernelLoader} on every boot
 * path and holds the load to {@link LoaderFuzzing}'s property. Jazzer replays the inputs under
 * src/test/resources/.../ElfFuzzTestInputs in a normal test run.
 */
class ElfFuzzTest {
    private static byte[] image(FuzzedDataProvider d) {
        if (d.consumeInt(0, 15) == 15) return FuzzedImages.raw(d, new byte[] {0x7f, 'E', 'L', 'F'});
        return LoaderFuzzing.mutate(d, FuzzedImages.elf(d, true, 62, 0x1000000, false, 0));
    }

    /**
     * Parsing ends with a BootException or an Elf whose PT_LOAD and PT_NOTE segments lie inside the file, whose
     * PT_LOAD memory sizes hold their file sizes and stay below 1 TiB, and whose notes can be read.
     */
    @FuzzTest(maxDuration = "30s")
    void elfFilesParseOrFailCleanly(FuzzedDataProvider d) {
        byte[] image = image(d);
        Elf elf;
        try {
            elf = Elf.parse(image, "kernel");
        } catch (BootException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().contains("\n"), e.getMessage());
            return;
        }
        for (Elf.Segment s : elf.loadSegments()) {
            assertTrue(s.offset() >= 0 && s.fileSize() >= 0 && s.offset() + s.fileSize() <= image.length, "" + s);
            assertTrue(s.memSize() >= s.fileSize() && s.memSize() <= 1L << 40, "" + s);
        }
        for (Elf.Note n : elf.notes()) assertTrue(n.desc().length <= image.length, "" + n);
    }

    @FuzzTest(maxDuration = "30s")
    void vmlinuxKernelsLoadOrFailCleanly(FuzzedDataProvider d) {
        byte[] image = image(d);
        byte[] initrd = LoaderFuzzing.initrd(d);
        String cmdline = LoaderFuzzing.cmdline(d);
        LoaderFuzzing.loadAndCheck(image, initrd, cmdline, LoaderFuzzing.bootPath(d));
    }
}
