package dev.jvmm.boot;

import dev.jvmm.core.testing.Fuzzing;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every fuzz target of this module, fuzzed for a few seconds each (coverage-guided, by Jazzer's driver): a finding
 * fails the run. scripts/fuzz runs one of them for longer.
 */
@Tag("slow")
class FuzzTargetsTest {
    static Stream<String> targets() {
        return Fuzzing.selected(
                "dev.jvmm.boot.loader.LinuxLoaderFuzzTest#bzImagesLoadOrFailCleanly",
                "dev.jvmm.boot.loader.LinuxLoaderFuzzTest#payloadsDecompressWithinTheirClaim",
                "dev.jvmm.boot.loader.ElfFuzzTest#elfFilesParseOrFailCleanly",
                "dev.jvmm.boot.loader.ElfFuzzTest#vmlinuxKernelsLoadOrFailCleanly",
                "dev.jvmm.boot.loader.MultibootLoaderFuzzTest#multibootKernelsLoadOrFailCleanly");
    }

    @ParameterizedTest
    @MethodSource("targets")
    void fuzzesWithoutAFinding(String target) throws Exception {
        Fuzzing.fuzzWithoutFinding(target);
    }
}
