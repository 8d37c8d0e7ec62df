package dev.jvmm.devices.net;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Set;

/**
 * Plays a virtio-net device between two backends: what one delivers "to the guest" the other transmits "from the
 * guest", with BUSY answered by holding the frame and txReady answered by rxReady, as a device does.
 */
public final class FramePump implements AutoCloseable {
    private final NetBackend a, b;
    private volatile NetQueue qa, qb;

    public FramePump(NetBackend a, NetBackend b) {
        this.a = a;
        this.b = b;
        // Each side may send the other exactly what the other accepts from its guest.
        Set<NetOffload> toA =
                intersect(a.capabilities().toGuest(), b.capabilities().fromGuest());
        Set<NetOffload> toB =
                intersect(b.capabilities().toGuest(), a.capabilities().fromGuest());
        GuestPort portA = new GuestPort() {
            @Override
            public boolean deliver(MemorySegment frame) {
                NetQueue q = qb;
                return q == null
                        || q.transmit(frame)
                                != TxResult.BUSY; // before both sides run: dropped, like a link still coming up
            }

            @Override
            public void txReady() {
                NetQueue q = qb;
                if (q != null) q.rxReady();
            }

            @Override
            public void backendFailed(String where, Throwable cause) {
                System.err.println("backend failed in " + where + ": " + cause);
            }
        };
        GuestPort portB = new GuestPort() {
            @Override
            public boolean deliver(MemorySegment frame) {
                NetQueue q = qa;
                return q == null || q.transmit(frame) != TxResult.BUSY;
            }

            @Override
            public void txReady() {
                NetQueue q = qa;
                if (q != null) q.rxReady();
            }

            @Override
            public void backendFailed(String where, Throwable cause) {
                System.err.println("backend failed in " + where + ": " + cause);
            }
        };
        qa = a.activate(new NetLinkConfig(VirtioNetHeader.LENGTH_V1, toA), List.of(portA))
                .get(0);
        qb = b.activate(new NetLinkConfig(VirtioNetHeader.LENGTH_V1, toB), List.of(portB))
                .get(0);
    }

    private static Set<NetOffload> intersect(Set<NetOffload> x, Set<NetOffload> y) {
        java.util.EnumSet<NetOffload> r = java.util.EnumSet.noneOf(NetOffload.class);
        for (NetOffload o : x) if (y.contains(o)) r.add(o);
        return r;
    }

    @Override
    public void close() {
        a.deactivate();
        b.deactivate();
    }
}
