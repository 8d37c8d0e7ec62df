package dev.jvmm.core.snapshot;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The bytes of one kernel struct as KVM gave them (kvm_regs, kvm_lapic_state, kvm_xsave, ...), immutable. Snapshots
 * keep these structs whole rather than field by field: they are the kernel's ABI, stable across kernels, and a field
 * a later kernel adds in a reserved slot survives a save and restore that jvmm does not know about.
 */
public final class StructBytes {
    private final byte[] bytes;

    private StructBytes(byte[] bytes) {
        this.bytes = bytes;
    }

    public static StructBytes copyOf(MemorySegment segment) {
        return new StructBytes(segment.toArray(ValueLayout.JAVA_BYTE));
    }

    public static StructBytes of(byte[] bytes) {
        return new StructBytes(bytes.clone());
    }

    public int size() {
        return bytes.length;
    }

    public byte[] toArray() {
        return bytes.clone();
    }

    /** A native, 8-byte aligned copy for an ioctl or a generated struct accessor, at least {@code minSize} bytes. */
    public MemorySegment toSegment(Arena arena, long minSize) {
        MemorySegment s = arena.allocate(Math.max(minSize, bytes.length), 8);
        MemorySegment.copy(bytes, 0, s, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return s;
    }

    public MemorySegment toSegment(Arena arena) {
        return toSegment(arena, bytes.length);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof StructBytes other && Arrays.equals(bytes, other.bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return bytes.length + " bytes: " + HexFormat.of().formatHex(bytes, 0, Math.min(bytes.length, 32))
                + (bytes.length > 32 ? "..." : "");
    }
}
