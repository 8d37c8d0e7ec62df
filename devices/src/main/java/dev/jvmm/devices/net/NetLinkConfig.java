package dev.jvmm.devices.net;

import java.util.EnumSet;
import java.util.Set;

/**
 * What the device and the guest driver agreed, handed to {@link NetBackend#activate}.
 *
 * @param vnetHeaderLength 0 (frames carry no header; no offloads), 10 (struct virtio_net_hdr) or 12
 *                         (virtio_net_hdr_v1 / with num_buffers: VIRTIO_F_VERSION_1 or MRG_RXBUF). A backend
 *                         writes num_buffers as 0; the device fills it in when it merges rx buffers.
 * @param toGuest          the offloads the guest accepted, a subset of {@link NetCapabilities#toGuest()}
 */
public record NetLinkConfig(int vnetHeaderLength, Set<NetOffload> toGuest) {
    public NetLinkConfig {
        if (vnetHeaderLength != 0
                && vnetHeaderLength != VirtioNetHeader.LENGTH
                && vnetHeaderLength != VirtioNetHeader.LENGTH_V1) {
            throw new IllegalArgumentException("vnet header length " + vnetHeaderLength + " is not 0, 10 or 12");
        }
        toGuest = toGuest.isEmpty() ? Set.of() : Set.copyOf(EnumSet.copyOf(toGuest));
        if (vnetHeaderLength == 0 && !toGuest.isEmpty()) {
            throw new IllegalArgumentException("offloads " + toGuest + " need a vnet header");
        }
    }

    public static NetLinkConfig plain() {
        return new NetLinkConfig(0, Set.of());
    }
}
