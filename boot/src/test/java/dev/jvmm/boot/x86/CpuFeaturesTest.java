package dev.jvmm.boot.x86;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.core.CpuidEntry;
import java.util.List;
import org.junit.jupiter.api.Test;

class CpuFeaturesTest {
    // Leaf 1 with only sse2 (EDX bit 26) offered; no leaf 7 at all.
    private static final List<CpuidEntry> HOST = List.of(new CpuidEntry(1, 0, 0, 0, 0, 0, 1 << 26));

    @Test
    void editsApplyToTheNamedBit() {
        List<CpuidEntry> out = CpuFeatures.apply(HOST, CpuFeatures.parse("-sse2"));
        assertFalse(CpuFeatures.has(out, "sse2"));
        assertTrue(CpuFeatures.has(CpuFeatures.apply(HOST, CpuFeatures.parse("+sse2")), "sse2"));
    }

    @Test
    void anUnknownNameIsTheUsersMistake() {
        BootException e = assertThrows(BootException.class, () -> CpuFeatures.parse("-avx,-nosuchfeature"));
        assertEquals(Kind.BAD_OPTION, e.kind(), e.getMessage());
    }

    @Test
    void enablingWhatTheHostLacksIsRefused() {
        BootException bit = assertThrows(BootException.class, () -> CpuFeatures.apply(HOST, CpuFeatures.parse("+avx")));
        assertEquals(Kind.CPU_FEATURE_UNAVAILABLE, bit.kind(), bit.getMessage());
        BootException leaf =
                assertThrows(BootException.class, () -> CpuFeatures.apply(HOST, CpuFeatures.parse("+avx2")));
        assertEquals(Kind.CPU_FEATURE_UNAVAILABLE, leaf.kind(), leaf.getMessage());
        assertDoesNotThrow(
                () -> CpuFeatures.apply(HOST, CpuFeatures.parse("-avx2")), "disabling what is absent is fine");
    }
}
