package dev.jvmm.devices.net;

import java.lang.foreign.MemorySegment;

/**
 * The device's side of one queue pair, which a backend calls. Both methods are called on the backend's own
 * thread and must not block.
 */
public interface GuestPort {
    /**
     * A frame for the guest: the vnet header (of the agreed length, if any) then the Ethernet frame. The segment
     * is valid only during the call. Returns false if the guest has no receive buffer for it now; the backend then
     * keeps that frame, sends nothing more until {@link NetQueue#rxReady()}, and stops taking input from its side
     * as far as it can (TCP windows, a TAP fd left unread), so a slow guest never makes it buffer without bound.
     */
    boolean deliver(MemorySegment frame);

    /**
     * As {@link #deliver(MemorySegment)}, for a frame given in pieces laid end to end ({@code parts[0..count)}):
     * a stack's headers built apart from payload it holds elsewhere reach the guest's buffers in one copy. The
     * first part holds at least the vnet and Ethernet headers. This default joins them first; a device overrides it.
     */
    default boolean deliver(MemorySegment[] parts, int count) {
        long len = 0;
        for (int i = 0; i < count; i++) len += parts[i].byteSize();
        MemorySegment joined = MemorySegment.ofArray(new byte[Math.toIntExact(len)]);
        long at = 0;
        for (int i = 0; i < count; i++) {
            MemorySegment.copy(parts[i], 0, joined, at, parts[i].byteSize());
            at += parts[i].byteSize();
        }
        return deliver(joined);
    }

    /**
     * As {@link #deliver(MemorySegment[], int)}, but the guest need not hear of this frame yet: the backend has more
     * to deliver at once and calls {@link #interruptGuest()} after the last of them, so that the guest's driver wakes
     * once per burst rather than once per frame (a NIC's interrupt moderation). A frame refused (false) sends the
     * interrupt held so far, as the guest must take what it has before it can post more buffers.
     */
    default boolean deliverHeld(MemorySegment[] parts, int count) {
        return deliver(parts, count);
    }

    /** Sends the interrupt that frames delivered by {@link #deliverHeld} held back, if any. */
    default void interruptGuest() {}

    /** After {@link NetQueue#transmit} answered {@link TxResult#BUSY}: the backend has room again. */
    void txReady();

    /**
     * The backend failed in a way the guest did not cause (a bug, an OutOfMemoryError on its own thread) and may
     * have lost frames or state: the device marks itself broken (DEVICE_NEEDS_RESET) and the VM hears of it; a
     * reset of the device deactivates and activates the backend afresh. {@code where} names the backend's part
     * that failed. Any thread; must not block.
     */
    void backendFailed(String where, Throwable cause);
}
