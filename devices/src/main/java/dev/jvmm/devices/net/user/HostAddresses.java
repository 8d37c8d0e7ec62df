package dev.jvmm.devices.net.user;

import java.net.NetworkInterface;
import java.net.SocketException;
import java.util.Arrays;
import java.util.function.IntPredicate;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether an IPv4 address is one of this host's interfaces': a guest flow there reaches the host as surely as
 * one to its loopback. The list is read again once it is a second old, since DHCP, VPNs and
 * container bridges change it while a guest runs. Used on the stack's thread only.
 */
final class HostAddresses implements IntPredicate {
    private static final Logger LOG = LoggerFactory.getLogger(HostAddresses.class);
    static final long REFRESH_NANOS = 1_000_000_000L;

    /** Reads the addresses; throws if the host will not list them. */
    interface Source {
        int[] read() throws SocketException;
    }

    private final Source source;
    private final LongSupplier clock;
    private int[] sorted;
    private long readAt;
    private boolean failureLogged;

    HostAddresses(Source source, LongSupplier clock) {
        this.source = source;
        this.clock = clock;
        refresh(clock.getAsLong()); // the first read is slow (tens of ms): done by the caller, not on the stack's
        // thread
    }

    /** This host's interfaces, through {@link NetworkInterface}. */
    static HostAddresses live() {
        return new HostAddresses(HostAddresses::interfaces, System::nanoTime);
    }

    static int[] interfaces() throws SocketException {
        return NetworkInterface.networkInterfaces()
                .flatMap(NetworkInterface::inetAddresses)
                .mapToInt(Inet::ip)
                .filter(ip -> ip != 0)
                .toArray();
    }

    @Override
    public boolean test(int ip) {
        long now = clock.getAsLong();
        if (now - readAt >= REFRESH_NANOS) refresh(now);
        return Arrays.binarySearch(sorted, ip) >= 0;
    }

    private void refresh(long now) {
        readAt = now;
        try {
            int[] a = source.read();
            Arrays.sort(a);
            sorted = a;
        } catch (SocketException | RuntimeException e) {
            // Keep the last list (empty at first: loopback and 10.0.2.2 are refused without it).
            if (sorted == null) sorted = new int[0];
            if (!failureLogged) {
                failureLogged = true;
                LOG.warn(
                        "user network: cannot list this host's addresses ({});"
                                + " the guest may reach the host through them",
                        e.toString());
            }
        }
    }
}
