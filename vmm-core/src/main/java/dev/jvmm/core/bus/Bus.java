package dev.jvmm.core.bus;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An address space (port I/O or MMIO) in which devices claim ranges. Overlapping claims are refused when they
 * are made. Lookups read an immutable sorted array, so the exit path takes no lock; a claim or release
 * (PCI BAR moves) publishes a new array.
 *
 * <p>An access nobody claims reads as all ones and is ignored when written, as on real hardware; it is
 * counted, and logged once per address (the set of logged addresses is capped so a hostile guest cannot
 * grow it without bound).
 */
public final class Bus {
    private static final Logger LOG = LoggerFactory.getLogger(Bus.class);
    private static final int MAX_LOGGED_ADDRESSES = 1024;

    /** A claimed range [base, base+length). */
    public record Claim(String name, long base, long length, BusDevice device) {
        long end() {
            return base + length;
        }
    }

    private final String name;
    private volatile Claim[] claims = new Claim[0];
    private final LongAdder unclaimedAccesses = new LongAdder();
    private final Set<Long> loggedAddresses = ConcurrentHashMap.newKeySet();

    public Bus(String name) {
        this.name = name;
    }

    public String name() {
        return name;
    }

    /** Claims [base, base+length) for a device; refused if it overlaps an existing claim. */
    public synchronized Claim register(String deviceName, long base, long length, BusDevice device) {
        if (length <= 0 || base < 0 || base + length < base)
            throw new IllegalArgumentException(
                    String.format("%s: bad range 0x%x+0x%x for %s", name, base, length, deviceName));
        for (Claim c : claims) {
            if (base < c.end() && c.base() < base + length)
                throw new IllegalArgumentException(String.format(
                        "%s: %s at 0x%x-0x%x overlaps %s at 0x%x-0x%x",
                        name, deviceName, base, base + length - 1, c.name(), c.base(), c.end() - 1));
        }
        Claim claim = new Claim(deviceName, base, length, device);
        Claim[] next = Arrays.copyOf(claims, claims.length + 1);
        next[next.length - 1] = claim;
        Arrays.sort(next, (a, b) -> Long.compare(a.base(), b.base()));
        claims = next;
        return claim;
    }

    /** Releases a claim made by {@link #register}; true if it was there. */
    public synchronized boolean unregister(Claim claim) {
        List<Claim> next = new ArrayList<>(Arrays.asList(claims));
        boolean removed = next.remove(claim);
        claims = next.toArray(Claim[]::new);
        return removed;
    }

    public List<Claim> claims() {
        return List.of(claims);
    }

    /** The claim covering address, or null. */
    public Claim find(long address) {
        Claim[] cs = claims;
        int lo = 0, hi = cs.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            Claim c = cs[mid];
            if (address < c.base()) hi = mid - 1;
            else if (address >= c.end()) lo = mid + 1;
            else return c;
        }
        return null;
    }

    /** Dispatches a read; all ones where nothing is claimed. */
    public long read(long address, int size) {
        Claim c = find(address);
        if (c == null) {
            unclaimed(address, size, false);
            return size >= 8 ? -1L : (1L << (size * 8)) - 1;
        }
        return c.device().read(address - c.base(), size);
    }

    /** Dispatches a write; dropped where nothing is claimed. */
    public void write(long address, int size, long value) {
        Claim c = find(address);
        if (c == null) {
            unclaimed(address, size, true);
            return;
        }
        c.device().write(address - c.base(), size, value);
    }

    private void unclaimed(long address, int size, boolean write) {
        unclaimedAccesses.increment();
        if (loggedAddresses.size() < MAX_LOGGED_ADDRESSES && loggedAddresses.add(address))
            LOG.debug(
                    "{}: unclaimed {}-byte {} at 0x{}",
                    name,
                    size,
                    write ? "write" : "read",
                    Long.toHexString(address));
    }

    public long unclaimedAccesses() {
        return unclaimedAccesses.sum();
    }
}
