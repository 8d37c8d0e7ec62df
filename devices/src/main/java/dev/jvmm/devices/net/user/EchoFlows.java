package dev.jvmm.devices.net.user;

import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Forwarded ICMP echo "flows": one host socket per guest (address, echo identifier), the destinations the guest
 * pinged through it (replies from anyone else are dropped, as a NAT does), idle expiry, and at most
 * {@code maxFlows} sockets: a new identifier past that evicts the least recently used one.
 */
final class EchoFlows {
    static final class Flow {
        final int guestIp, guestId;
        final long socket;
        long lastUsed;
        private final int[] peers;
        private int peerCount;

        Flow(int guestIp, int guestId, long socket, int maxPeers, long now) {
            this.guestIp = guestIp;
            this.guestId = guestId;
            this.socket = socket;
            this.peers = new int[maxPeers];
            this.lastUsed = now;
        }

        boolean hasPeer(int ip) {
            for (int i = 0; i < peerCount; i++) if (peers[i] == ip) return true;
            return false;
        }

        /** Remembers a destination; false if this flow already has as many as it may. */
        boolean addPeer(int ip) {
            if (hasPeer(ip)) return true;
            if (peerCount == peers.length) return false;
            peers[peerCount++] = ip;
            return true;
        }
    }

    private final int maxFlows, maxPeers;
    private final long idleNanos;
    private final Consumer<Flow> onRemove;
    /** Access-ordered: the first entry is the least recently used. */
    private final LinkedHashMap<Long, Flow> byGuest = new LinkedHashMap<>(16, 0.75f, true);

    private final Map<Long, Flow> bySocket = new HashMap<>();

    /** {@code onRemove} runs for every flow that leaves the table (evicted, expired, cleared): it closes the socket. */
    EchoFlows(int maxFlows, int maxPeers, long idleNanos, Consumer<Flow> onRemove) {
        if (maxFlows < 1 || maxPeers < 1) throw new IllegalArgumentException("maxFlows and maxPeers must be positive");
        this.maxFlows = maxFlows;
        this.maxPeers = maxPeers;
        this.idleNanos = idleNanos;
        this.onRemove = onRemove;
    }

    private static long key(int guestIp, int guestId) {
        return ((guestIp & 0xffffffffL) << 16) | (guestId & 0xffff);
    }

    int size() {
        return byGuest.size();
    }

    /** The flow for a guest identifier (counts as a use for eviction order), or null. */
    Flow get(int guestIp, int guestId) {
        return byGuest.get(key(guestIp, guestId));
    }

    Flow bySocket(long socket) {
        return bySocket.get(socket);
    }

    /** Adds a flow for a socket just opened, evicting the least recently used flow if the table is full. */
    Flow add(int guestIp, int guestId, long socket, long now) {
        long key = key(guestIp, guestId);
        Flow old = byGuest.remove(key);
        if (old != null) remove(old);
        if (byGuest.size() >= maxFlows) {
            Iterator<Flow> it = byGuest.values().iterator();
            Flow eldest = it.next();
            it.remove();
            remove(eldest);
        }
        Flow f = new Flow(guestIp, guestId, socket, maxPeers, now);
        byGuest.put(key, f);
        bySocket.put(socket, f);
        return f;
    }

    /** Removes flows idle for longer than the idle time. */
    void expire(long now) {
        for (Iterator<Flow> it = byGuest.values().iterator(); it.hasNext(); ) {
            Flow f = it.next();
            if (now - f.lastUsed > idleNanos) {
                it.remove();
                remove(f);
            }
        }
    }

    void clear() {
        for (Flow f : byGuest.values()) remove(f);
        byGuest.clear();
    }

    private void remove(Flow f) {
        bySocket.remove(f.socket);
        onRemove.accept(f);
    }
}
