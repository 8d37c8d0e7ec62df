package dev.jvmm.devices.block.qcow2;

import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/** A test with qemu-img and qemu-io as its oracles: a folder of its own, and the tools checked before each test. */
abstract class QemuOracleTestBase {
    @TempDir
    Path dir;

    @BeforeEach
    void requireQemuTools() {
        QemuTools.requireQemu();
    }
}
