package dev.jvmm.devices.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * struct virtio_net_hdr(_v1), little-endian: flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16,
 * csum_offset u16, then (v1 / mergeable rx buffers) num_buffers u16.
 */
public final class VirtioNetHeader {
    public static final int LENGTH = 10, LENGTH_V1 = 12;
    public static final int F_NEEDS_CSUM = 1, F_DATA_VALID = 2;
    public static final int GSO_NONE = 0, GSO_TCPV4 = 1, GSO_UDP = 3, GSO_TCPV6 = 4, GSO_UDP_L4 = 5, GSO_ECN = 0x80;
    public static final int OFF_FLAGS = 0,
            OFF_GSO_TYPE = 1,
            OFF_HDR_LEN = 2,
            OFF_GSO_SIZE = 4,
            OFF_CSUM_START = 6,
            OFF_CSUM_OFFSET = 8,
            OFF_NUM_BUFFERS = 10;
    private static final ValueLayout.OfShort LE_SHORT =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    private VirtioNetHeader() {}

    public static int flags(MemorySegment s) {
        return s.get(ValueLayout.JAVA_BYTE, OFF_FLAGS) & 0xff;
    }

    public static int gsoType(MemorySegment s) {
        return s.get(ValueLayout.JAVA_BYTE, OFF_GSO_TYPE) & 0xff;
    }

    public static int u16(MemorySegment s, long offset) {
        return s.get(LE_SHORT, offset) & 0xffff;
    }

    public static void setU16(MemorySegment s, long offset, int value) {
        s.set(LE_SHORT, offset, (short) value);
    }

    /** Writes a header saying "nothing special" (no csum, no GSO, num_buffers 0 if present). */
    public static void writeEmpty(MemorySegment s, int length) {
        s.asSlice(0, length).fill((byte) 0);
    }
}
