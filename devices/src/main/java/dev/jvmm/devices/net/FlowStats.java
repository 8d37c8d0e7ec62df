package dev.jvmm.devices.net;

/**
 * The connection counters of a backend that terminates the guest's flows itself (user-mode networking), since it
 * started: what a NAT's connection tracking would show. TCP connections are counted once both ends are connected
 * (the guest's handshake done and the host's socket connected); a refused one never was (the NAT policy said no,
 * the host's connect failed, the table was full, or the guest refused a forwarded one). UDP flows are the guest's
 * (address, port) pairs with a host socket. Bytes are payload: what the guest's connections and datagrams carried
 * to hosts ({@code tx}) and from them ({@code rx}).
 *
 * @param natRefused guest flows (TCP, UDP, ICMP echo) the NAT policy refused: the host itself, metadata services,
 *                   restrict=on
 */
public record FlowStats(
        long tcpOpened,
        long tcpClosed,
        long tcpRefused,
        long udpFlowsOpened,
        long udpFlowsClosed,
        long natRefused,
        long tcpTxBytes,
        long tcpRxBytes,
        long udpTxBytes,
        long udpRxBytes) {
    /** TCP connections open now. */
    public long tcpCurrent() {
        return tcpOpened - tcpClosed;
    }

    /** UDP flows open now. */
    public long udpFlowsCurrent() {
        return udpFlowsOpened - udpFlowsClosed;
    }
}
