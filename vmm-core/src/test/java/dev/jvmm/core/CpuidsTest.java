package dev.jvmm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class CpuidsTest {
    private static final CpuidEntry LEAF1 = new CpuidEntry(1, 0, 0, 0x00a00f11, 0x00020800, 0x01202000, 0x078bfbff);

    @Test
    void guestSeesKvmSignatureAndHypervisorBit() {
        List<CpuidEntry> out = Cpuids.withKvmIdentity(List.of(LEAF1));
        CpuidEntry leaf1 = find(out, 1);
        assertNotEquals(0, leaf1.ecx() & (1 << 31), "hypervisor bit");
        assertEquals(LEAF1.ecx(), leaf1.ecx() & ~(1 << 31), "other leaf 1 bits untouched");
        CpuidEntry sig = find(out, 0x40000000);
        String vendor = new String(
                ByteBuffer.allocate(12)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .putInt(sig.ebx())
                        .putInt(sig.ecx())
                        .putInt(sig.edx())
                        .array(),
                StandardCharsets.US_ASCII);
        assertEquals("KVMKVMKVM\0\0\0", vendor);
        assertEquals(0x40000001, sig.eax(), "highest hypervisor leaf");
        assertEquals(
                new CpuidEntry(0x40000001, 0, 0, 0, 0, 0, 0),
                find(out, 0x40000001),
                "no PV features KVM did not report");
    }

    @Test
    void offersExactlyThePvFeaturesKvmReports() {
        CpuidEntry kvmFeatures = new CpuidEntry(0x40000001, 0, 0, 0x01007afb, 0, 0, 0);
        CpuidEntry kvmSignature = new CpuidEntry(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
        List<CpuidEntry> out = Cpuids.withKvmIdentity(List.of(LEAF1, kvmSignature, kvmFeatures));
        assertEquals(kvmFeatures, find(out, 0x40000001));
        assertEquals(1, out.stream().filter(e -> e.function() == 0x40000000).count(), "one signature leaf");
        assertEquals(3, out.size());
    }

    private static CpuidEntry find(List<CpuidEntry> entries, int function) {
        return entries.stream()
                .filter(e -> e.function() == function)
                .findFirst()
                .orElseThrow();
    }
}
