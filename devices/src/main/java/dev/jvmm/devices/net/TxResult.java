package dev.jvmm.devices.net;

/** The outcome of {@link NetQueue#transmit}. */
public enum TxResult {
    /** Taken (or, for a frame the backend rightly ignores, consumed). The device completes the descriptor. */
    SENT,
    /** Malformed, oversized or refused: the device completes the descriptor and counts the drop. */
    DROPPED,
    /** Not taken: the backend is full. The device keeps the frame and retries after {@link GuestPort#txReady()}. */
    BUSY
}
