package dev.jvmm.kvm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.nio.charset.StandardCharsets;

/**
 * The TUN/TAP and network-interface ioctls (linux/if_tun.h, linux/sockios.h) and struct ifreq,
 * written by hand: ifreq is a name and a 24-byte union of which jvmm uses the flags and the index.
 */
public final class Tun {
    public static final int IFNAMSIZ = 16;
    public static final int IFF_TUN = 0x0001,
            IFF_TAP = 0x0002,
            IFF_MULTI_QUEUE = 0x0100,
            IFF_NO_PI = 0x1000,
            IFF_VNET_HDR = 0x4000;
    /** Interface flags (net/if.h), in ifreq's flags for SIOCGIFFLAGS/SIOCSIFFLAGS. */
    public static final int IFF_UP = 0x1;

    public static final int TUN_F_CSUM = 0x01,
            TUN_F_TSO4 = 0x02,
            TUN_F_TSO6 = 0x04,
            TUN_F_TSO_ECN = 0x08,
            TUN_F_UFO = 0x10,
            TUN_F_USO4 = 0x20,
            TUN_F_USO6 = 0x40;

    public static final long TUNSETIFF = Ioctl.iow('T', 202, 4);
    public static final long TUNSETOFFLOAD = Ioctl.iow('T', 208, 4);
    public static final long TUNGETIFF = Ioctl.ior('T', 210, 4);
    public static final long TUNSETVNETHDRSZ = Ioctl.iow('T', 216, 4);
    public static final long SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, SIOCBRADDIF = 0x89a2;

    /** struct ifreq on x86-64: char ifr_name[16], then a 24-byte union. */
    public static final StructLayout IFREQ = MemoryLayout.structLayout(
                    MemoryLayout.sequenceLayout(IFNAMSIZ, JAVA_BYTE).withName("ifr_name"),
                    MemoryLayout.unionLayout(
                                    JAVA_SHORT.withName("ifr_flags"),
                                    JAVA_INT.withName("ifr_ifindex"),
                                    MemoryLayout.sequenceLayout(24, JAVA_BYTE).withName("ifr_pad"))
                            .withName("ifr_ifru"))
            .withName("ifreq");

    private static final long IFRU_OFFSET = IFNAMSIZ;

    private Tun() {}

    /** A zeroed ifreq naming {@code name}; throws if the name does not fit IFNAMSIZ with its NUL. */
    public static MemorySegment ifreq(Arena arena, String name) {
        byte[] bytes = name.getBytes(StandardCharsets.US_ASCII);
        if (bytes.length == 0 || bytes.length >= IFNAMSIZ) {
            throw new IllegalArgumentException(
                    "interface name '" + name + "' must be 1 to " + (IFNAMSIZ - 1) + " characters");
        }
        MemorySegment ifr = arena.allocate(IFREQ);
        MemorySegment.copy(bytes, 0, ifr, JAVA_BYTE, 0, bytes.length);
        return ifr;
    }

    public static String name(MemorySegment ifreq) {
        return ifreq.getString(0, StandardCharsets.US_ASCII);
    }

    public static short flags(MemorySegment ifreq) {
        return ifreq.get(JAVA_SHORT, IFRU_OFFSET);
    }

    public static void setFlags(MemorySegment ifreq, int flags) {
        ifreq.set(JAVA_SHORT, IFRU_OFFSET, (short) flags);
    }

    public static void setIndex(MemorySegment ifreq, int index) {
        ifreq.set(JAVA_INT, IFRU_OFFSET, index);
    }
}
