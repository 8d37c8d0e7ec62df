package dev.jvmm.boot.loader;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Fuzzes the multiboot loader: the header's place in the first 8 KiB, its flags and checksum, the a.out kludge
 * addresses (header, load, load end, bss end, entry) or an ELF kernel's program headers, the command line and
 * the initrd module; an empty input is an a.out-kludge kernel at 1 MiB that loads. Now and then raw bytes follow
 * a valid header. The property is {@link LoaderFuzzing}'s. Jazzer replays the inputs under
 * src/test/resources/.../MultibootLoaderFuzzTestInputs in a normal test run.
 */
class MultibootLoaderFuzzTest {
    @FuzzTest(maxDuration = "30s")
    void multibootKernelsLoadOrFailCleanly(FuzzedDataProvider d) {
        byte[] image;
        if (d.consumeInt(0, 15) == 15) {
            int flags = d.consumeInt();
            image = FuzzedImages.raw(d, new byte[12]);
            LoaderFuzzing.le(image)
                    .putInt(0, MultibootLoader.HEADER_MAGIC)
                    .putInt(4, flags)
                    .putInt(8, -(MultibootLoader.HEADER_MAGIC + flags));
        } else {
            image = LoaderFuzzing.mutate(d, FuzzedImages.multiboot(d));
        }
        byte[] initrd = LoaderFuzzing.initrd(d);
        String cmdline = LoaderFuzzing.cmdline(d);
        KernelLoader.BootPath path = d.consumeInt(0, 7) == 7 ? LoaderFuzzing.bootPath(d) : KernelLoader.BootPath.AUTO;
        LoaderFuzzing.loadAndCheck(image, initrd, cmdline, path);
    }
}
