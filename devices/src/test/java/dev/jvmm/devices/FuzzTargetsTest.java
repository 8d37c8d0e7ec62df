package dev.jvmm.devices;

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
                "dev.jvmm.devices.block.qcow2.Qcow2FuzzTest#patchedImagesFailCleanly",
                "dev.jvmm.devices.net.user.UserNetFuzzTest#guestFrames",
                "dev.jvmm.devices.net.user.DhcpServerFuzzTest#requests",
                "dev.jvmm.devices.block.qcow2.Qcow2StructureFuzzTest#mutatedFields",
                "dev.jvmm.devices.virtio.VirtqueueFuzzTest#chains",
                "dev.jvmm.devices.virtio.blk.VirtioBlockFuzzTest#requests",
                "dev.jvmm.devices.virtio.net.VirtioNetFuzzTest#transmit",
                "dev.jvmm.devices.virtio.net.VirtioNetFuzzTest#receive",
                "dev.jvmm.devices.virtio.vsock.VirtioVsockFuzzTest#packets");
    }

    @ParameterizedTest
    @MethodSource("targets")
    void fuzzesWithoutAFinding(String target) throws Exception {
        Fuzzing.fuzzWithoutFinding(target);
    }
}
