package dev.jvmm.devices.net;

import java.lang.foreign.MemorySegment;

/** The backend's side of one queue pair, which the device calls. */
public interface NetQueue {
    /**
     * A frame the guest sent: the vnet header (of the agreed length) then the Ethernet frame. The backend copies
     * what it keeps before returning, so the segment may be a view of guest memory. Called from one device
     * thread at a time per queue; never blocks.
     */
    TxResult transmit(MemorySegment frame);

    /** The guest posted receive buffers: the backend resumes {@link GuestPort#deliver}. Any thread; cheap. */
    void rxReady();
}
