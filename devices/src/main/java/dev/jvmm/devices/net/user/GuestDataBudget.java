package dev.jvmm.devices.net.user;

import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.GenericFutureListener;

/**
 * The memory the stack holds for host sockets on the guest's behalf, against one limit per network: TCP segments
 * and UDP datagrams written to host channels that have not passed them to the kernel yet. Netty's own watermarks
 * are per channel and count a buffer's readable bytes; this counts what a queued write keeps alive (the copy or the
 * frame a slice pins) plus {@link #ENTRY_COST} for its bookkeeping, across every flow. Over the limit the TCP
 * windows offered to the guest close and datagrams are dropped, as on a host whose buffers are full. Used on the
 * stack's thread only.
 */
final class GuestDataBudget {
    /** What one queued write costs besides its bytes: Netty's entry (it counts 96 bytes) and our listener. */
    static final int ENTRY_COST = 128;

    private final long limit;
    private long used;

    GuestDataBudget(long limit) {
        if (limit <= 0) throw new IllegalArgumentException("budget " + limit);
        this.limit = limit;
    }

    long limit() {
        return limit;
    }

    long used() {
        return used;
    }

    /** Bytes that may still be taken. */
    long room() {
        return Math.max(0, limit - used);
    }

    /** Takes {@code cost} if it fits; false (nothing taken) if it does not. */
    boolean tryTake(int cost) {
        if (cost > limit - used) return false;
        used += cost;
        return true;
    }

    void release(int cost) {
        used -= cost;
    }

    /** A listener for the write that took {@code cost}: gives it back once the channel wrote (or dropped) it. */
    GenericFutureListener<Future<? super Void>> releaseWhenDone(int cost) {
        return f -> release(cost);
    }
}
