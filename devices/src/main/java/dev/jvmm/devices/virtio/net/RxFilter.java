package dev.jvmm.devices.virtio.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * What the driver asked to receive through the control queue (VIRTIO_NET_CTRL_RX and CTRL_MAC_TABLE_SET): an
 * immutable value the control queue replaces and the receive path reads without a lock.
 *
 * @param unicast   extra unicast addresses accepted besides the device's own (at most {@link #TABLE_ENTRIES})
 * @param multicast multicast addresses accepted (at most {@link #TABLE_ENTRIES})
 * @param unicastOverflow   the driver gave more unicast addresses than fit: accept every unicast frame
 * @param multicastOverflow the same for multicast
 */
record RxFilter(
        boolean promiscuous,
        boolean allMulticast,
        boolean allUnicast,
        boolean noMulticast,
        boolean noUnicast,
        boolean noBroadcast,
        long[] unicast,
        long[] multicast,
        boolean unicastOverflow,
        boolean multicastOverflow) {
    static final int TABLE_ENTRIES = 64;
    static final long BROADCAST = 0xffff_ffff_ffffL;

    /** After reset: promiscuous, as drivers that never send CTRL_RX expect (and as QEMU does). */
    static final RxFilter DEFAULT =
            new RxFilter(true, false, false, false, false, false, new long[0], new long[0], false, false);

    RxFilter withRxMode(int command, boolean on) {
        boolean promisc = promiscuous, allMulti = allMulticast, allUni = allUnicast;
        boolean noMulti = noMulticast, noUni = noUnicast, noBcast = noBroadcast;
        switch (command) {
            case VirtioNet.CTRL_RX_PROMISC -> promisc = on;
            case VirtioNet.CTRL_RX_ALLMULTI -> allMulti = on;
            case VirtioNet.CTRL_RX_ALLUNI -> allUni = on;
            case VirtioNet.CTRL_RX_NOMULTI -> noMulti = on;
            case VirtioNet.CTRL_RX_NOUNI -> noUni = on;
            case VirtioNet.CTRL_RX_NOBCAST -> noBcast = on;
            default -> throw new IllegalArgumentException("rx mode command " + command);
        }
        return new RxFilter(
                promisc,
                allMulti,
                allUni,
                noMulti,
                noUni,
                noBcast,
                unicast,
                multicast,
                unicastOverflow,
                multicastOverflow);
    }

    RxFilter withTables(long[] uni, boolean uniOverflow, long[] multi, boolean multiOverflow) {
        return new RxFilter(
                promiscuous,
                allMulticast,
                allUnicast,
                noMulticast,
                noUnicast,
                noBroadcast,
                uni,
                multi,
                uniOverflow,
                multiOverflow);
    }

    /** The destination address of the Ethernet frame at {@code offset} of {@code frame}. */
    static long destination(MemorySegment frame, long offset) {
        long v = 0;
        for (int i = 0; i < 6; i++) v = (v << 8) | (frame.get(ValueLayout.JAVA_BYTE, offset + i) & 0xff);
        return v;
    }

    /** Whether a frame for {@code destination} reaches a device whose own address is {@code own}. */
    boolean accepts(long destination, long own) {
        if (promiscuous) return true;
        if (destination == BROADCAST) return !noBroadcast;
        if (((destination >>> 40) & 1) != 0) { // multicast: the group bit of the first octet
            if (noMulticast) return false;
            return allMulticast || multicastOverflow || contains(multicast, destination);
        }
        if (noUnicast) return false;
        return allUnicast || unicastOverflow || destination == own || contains(unicast, destination);
    }

    private static boolean contains(long[] table, long mac) {
        for (long m : table) if (m == mac) return true;
        return false;
    }
}
