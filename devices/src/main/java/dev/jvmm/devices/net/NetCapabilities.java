package dev.jvmm.devices.net;

import java.util.Set;

/**
 * What a backend can honour, so the virtio-net device offers the guest only these.
 *
 * @param fromGuest     offloads the backend accepts in frames the guest transmits
 * @param toGuest       offloads the backend can use in frames for the guest, if the guest accepts them
 * @param maxQueuePairs how many rx/tx queue pairs the backend can serve (VIRTIO_NET_F_MQ when above 1)
 */
public record NetCapabilities(Set<NetOffload> fromGuest, Set<NetOffload> toGuest, int maxQueuePairs) {
    public NetCapabilities {
        fromGuest = Set.copyOf(fromGuest);
        toGuest = Set.copyOf(toGuest);
        if (maxQueuePairs < 1) throw new IllegalArgumentException("maxQueuePairs " + maxQueuePairs + " < 1");
    }
}
