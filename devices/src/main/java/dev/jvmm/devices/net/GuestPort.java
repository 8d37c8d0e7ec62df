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

    /** After {@link NetQueue#transmit} answered {@link TxResult#BUSY}: the backend has room again. */
    void txReady();
}
