package dev.jvmm.devices.block;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

class SegmentListTest {
    static MemorySegment bytes(int from, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) (from + i);
        return MemorySegment.ofArray(b);
    }

    // 0..2 | (empty) | 3..9 | 10
    final SegmentList list = SegmentList.of(List.of(bytes(0, 3), bytes(0, 0), bytes(3, 7), bytes(10, 1)));

    static byte[] flat(SegmentList l) {
        byte[] b = new byte[(int) l.byteSize()];
        l.copyTo(0, MemorySegment.ofArray(b), 0, b.length);
        return b;
    }

    @Test
    void slicesAreViewsAcrossBufferEdges() {
        assertEquals(11, list.byteSize());
        SegmentList s = list.slice(2, 7);
        assertArrayEquals(new byte[] {2, 3, 4, 5, 6, 7, 8}, flat(s));
        assertEquals(2, s.segments().size(), "the empty buffer is left out");
        assertEquals(1, list.slice(3, 7).segments().size(), "exactly one buffer");
        assertArrayEquals(new byte[] {10}, flat(list.slice(10)));
        assertEquals(0, list.slice(11).byteSize());
        s.segments().get(0).set(ValueLayout.JAVA_BYTE, 0, (byte) 99);
        assertEquals(99, flat(list)[2], "a slice writes through to the buffers");
    }

    @Test
    void copiesAndFillsCrossBufferEdges() {
        list.copyFrom(MemorySegment.ofArray(new byte[] {-1, -2, -3, -4}), 0, 1, 4);
        assertArrayEquals(new byte[] {0, -1, -2, -3, -4, 5, 6, 7, 8, 9, 10}, flat(list));
        list.slice(9).fill((byte) 0);
        assertArrayEquals(new byte[] {0, -1, -2, -3, -4, 5, 6, 7, 8, 0, 0}, flat(list));
    }

    @Test
    void rangesOutsideTheListThrow() {
        assertThrows(IndexOutOfBoundsException.class, () -> list.slice(5, 7));
        assertThrows(IndexOutOfBoundsException.class, () -> list.slice(-1, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> list.copyTo(10, MemorySegment.ofArray(new byte[4]), 0, 2));
    }
}
