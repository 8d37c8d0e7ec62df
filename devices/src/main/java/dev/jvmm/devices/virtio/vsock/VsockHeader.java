package dev.jvmm.devices.virtio.vsock;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * struct virtio_vsock_hdr (virtio 1.2, 5.10.6), 44 bytes, little-endian, in front of every packet's payload either
 * way. The 32-bit fields are unsigned on the wire and kept here as Java ints (compare and widen with the
 * {@code Integer} unsigned helpers); nothing is checked here: {@link TxPacket#decode} decides what a header means.
 */
public record VsockHeader(
        long srcCid,
        long dstCid,
        int srcPort,
        int dstPort,
        int len,
        int type,
        int op,
        int flags,
        int bufAlloc,
        int fwdCnt) {
    public static final int SIZE = 44;
    public static final int TYPE_STREAM = 1, TYPE_SEQPACKET = 2;
    /** SHUTDOWN's flags: the sender will receive no more, send no more. */
    public static final int SHUTDOWN_RCV = 1, SHUTDOWN_SEND = 2;

    static final int OFF_SRC_CID = 0,
            OFF_DST_CID = 8,
            OFF_SRC_PORT = 16,
            OFF_DST_PORT = 20,
            OFF_LEN = 24,
            OFF_TYPE = 28,
            OFF_OP = 30,
            OFF_FLAGS = 32,
            OFF_BUF_ALLOC = 36,
            OFF_FWD_CNT = 40;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The header at the start of {@code s} (at least {@link #SIZE} bytes). */
    public static VsockHeader read(MemorySegment s) {
        return new VsockHeader(
                s.get(U64, OFF_SRC_CID),
                s.get(U64, OFF_DST_CID),
                s.get(U32, OFF_SRC_PORT),
                s.get(U32, OFF_DST_PORT),
                s.get(U32, OFF_LEN),
                s.get(U16, OFF_TYPE) & 0xffff,
                s.get(U16, OFF_OP) & 0xffff,
                s.get(U32, OFF_FLAGS),
                s.get(U32, OFF_BUF_ALLOC),
                s.get(U32, OFF_FWD_CNT));
    }

    /** Writes this header at the start of {@code s}. */
    public void write(MemorySegment s) {
        write(s, srcCid, dstCid, srcPort, dstPort, len, type, op, flags, bufAlloc, fwdCnt);
    }

    /** Writes a header from its fields, for the device's packets to the guest without a record per packet. */
    static void write(
            MemorySegment s,
            long srcCid,
            long dstCid,
            int srcPort,
            int dstPort,
            int len,
            int type,
            int op,
            int flags,
            int bufAlloc,
            int fwdCnt) {
        s.set(U64, OFF_SRC_CID, srcCid);
        s.set(U64, OFF_DST_CID, dstCid);
        s.set(U32, OFF_SRC_PORT, srcPort);
        s.set(U32, OFF_DST_PORT, dstPort);
        s.set(U32, OFF_LEN, len);
        s.set(U16, OFF_TYPE, (short) type);
        s.set(U16, OFF_OP, (short) op);
        s.set(U32, OFF_FLAGS, flags);
        s.set(U32, OFF_BUF_ALLOC, bufAlloc);
        s.set(U32, OFF_FWD_CNT, fwdCnt);
    }

    /** The same header with another op field. */
    public VsockHeader withOp(int op) {
        return new VsockHeader(srcCid, dstCid, srcPort, dstPort, len, type, op, flags, bufAlloc, fwdCnt);
    }

    /** The named op, or null for an invalid or unknown one. */
    public VsockOp knownOp() {
        return VsockOp.of(op);
    }

    @Override
    public String toString() {
        VsockOp o = knownOp();
        return (o != null ? o.name() : "op " + op) + " " + srcCid + ":" + Integer.toUnsignedString(srcPort) + " -> "
                + dstCid + ":" + Integer.toUnsignedString(dstPort) + " type " + type + " len "
                + Integer.toUnsignedString(len) + " flags 0x" + Integer.toHexString(flags) + " buf_alloc "
                + Integer.toUnsignedString(bufAlloc) + " fwd_cnt " + Integer.toUnsignedString(fwdCnt);
    }
}
