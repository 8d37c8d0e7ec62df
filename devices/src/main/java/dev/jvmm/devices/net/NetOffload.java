package dev.jvmm.devices.net;

/**
 * Offloads a frame may carry in its virtio_net_hdr. A backend lists those it can accept from the guest
 * (the device offers VIRTIO_NET_F_CSUM / HOST_TSO4 / HOST_TSO6 / HOST_ECN / HOST_USO for them) and those it
 * can produce for the guest (GUEST_CSUM / GUEST_TSO4 / ...), and is told which of the latter the guest took.
 */
public enum NetOffload {
    /** Partial checksums: VIRTIO_NET_HDR_F_NEEDS_CSUM with csum_start/csum_offset. */
    CSUM,
    /** TCP segmentation over IPv4 (gso_type TCPV4). Implies CSUM. */
    TSO4,
    /** TCP segmentation over IPv6 (gso_type TCPV6). Implies CSUM. */
    TSO6,
    /** TSO with the ECN bit (gso_type flag ECN). */
    TSO_ECN,
    /** UDP segmentation (gso_type UDP_L4). Implies CSUM. */
    USO
}
