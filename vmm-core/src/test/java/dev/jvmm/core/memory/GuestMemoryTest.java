package dev.jvmm.core.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.List;
import org.junit.jupiter.api.Test;

class GuestMemoryTest {
    private static GuestMemory twoRegions() {
        // [0, 64 KiB) and [1 MiB, 1 MiB + 64 KiB) with a hole between them
        return GuestMemory.allocate(
                List.of(new GuestMemory.Layout(0x100000, 0x10000), new GuestMemory.Layout(0, 0x10000)),
                GuestMemory.Options.DEFAULT);
    }

    @Test
    void readsBackWhatWasWrittenLittleEndian() {
        try (GuestMemory m = twoRegions()) {
            m.writeLong(0x100, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, m.readLong(0x100));
            assertEquals(0x55667788, m.readInt(0x100));
            assertEquals((short) 0x7788, m.readShort(0x100));
            assertEquals((byte) 0x88, m.readByte(0x100));
            m.writeInt(0x10fff0, 0xdeadbeef);
            assertEquals(0xdeadbeef, m.readInt(0x10fff0));
            byte[] b = {1, 2, 3};
            m.write(0x100000, b);
            byte[] back = new byte[3];
            m.read(0x100000, back, 0, 3);
            assertArrayEquals(b, back);
            assertEquals(0x20000, m.size());
        }
    }

    @Test
    void accessesOutsideRamOrAcrossAHoleAreRefused() {
        try (GuestMemory m = twoRegions()) {
            assertThrows(GuestMemoryException.class, () -> m.readByte(0x10000)); // first byte of the hole
            assertThrows(GuestMemoryException.class, () -> m.readInt(0xfffe)); // straddles the end of region 0
            assertThrows(GuestMemoryException.class, () -> m.readLong(0x10fffc)); // straddles the end of RAM
            assertThrows(GuestMemoryException.class, () -> m.readByte(-1));
            assertThrows(GuestMemoryException.class, () -> m.slice(0, 0x10001));
            assertThrows(GuestMemoryException.class, () -> m.slice(0x100000, Long.MAX_VALUE)); // overflow
            assertThrows(GuestMemoryException.class, () -> m.slice(Long.MAX_VALUE, 2));
            assertThrows(GuestMemoryException.class, () -> m.write(0xffff, new byte[2]));
            assertTrue(m.isValid(0xfffc, 4));
            assertFalse(m.isValid(0xfffd, 4));
            GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> m.readInt(0x200000));
            assertEquals("guest address 0x200000 (+4 bytes) is outside guest RAM", e.getMessage());
        }
    }

    @Test
    void slicesAreBoundedViews() {
        try (GuestMemory m = twoRegions()) {
            var s = m.slice(0x100010, 16);
            assertEquals(16, s.byteSize());
            s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 7);
            assertEquals(7, m.readByte(0x100010));
            assertThrows(IndexOutOfBoundsException.class, () -> s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 16));
        }
    }

    @Test
    void overlappingOrUnalignedRegionsAreRefused() {
        assertThrows(
                IllegalArgumentException.class,
                () -> GuestMemory.allocate(
                        List.of(new GuestMemory.Layout(0, 0x2000), new GuestMemory.Layout(0x1000, 0x1000)),
                        GuestMemory.Options.DEFAULT));
        assertThrows(
                IllegalArgumentException.class,
                () -> GuestMemory.allocate(List.of(new GuestMemory.Layout(0x10, 0x1000)), GuestMemory.Options.DEFAULT));
        assertThrows(
                IllegalArgumentException.class,
                () -> GuestMemory.allocate(List.of(new GuestMemory.Layout(0, 0)), GuestMemory.Options.DEFAULT));
    }

    @Test
    void memoryIsCommittedOnlyWhenTouched() throws Throwable {
        try (GuestMemory m = GuestMemory.allocate(
                List.of(new GuestMemory.Layout(0, 1L << 30)), new GuestMemory.Options(true, true))) {
            // The mapping's own resident pages (mincore), not the process's RSS, which other threads move
            MemorySegment ram = m.regions().getFirst().host();
            assertTrue(residentKiB(ram) < 64 * 1024, "1 GiB mapped is " + residentKiB(ram) + " KiB resident");
            m.fill(0, 16 << 20, (byte) 1);
            long touched = residentKiB(ram);
            assertTrue(
                    touched >= 16 * 1024 && touched < 80 * 1024, "touching 16 MiB made " + touched + " KiB resident");
        }
    }

    private static final MethodHandle MINCORE = Linker.nativeLinker()
            .downcallHandle(
                    Linker.nativeLinker().defaultLookup().find("mincore").orElseThrow(),
                    FunctionDescriptor.of(
                            ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS));

    private static long residentKiB(MemorySegment mapping) throws Throwable {
        try (Arena a = Arena.ofConfined()) {
            long pages = mapping.byteSize() / 4096;
            MemorySegment vec = a.allocate(pages);
            assertEquals(0, (int) MINCORE.invokeExact(mapping, mapping.byteSize(), vec), "mincore");
            long resident = 0;
            for (long i = 0; i < pages; i++) resident += vec.get(ValueLayout.JAVA_BYTE, i) & 1;
            return resident * 4;
        }
    }
}
