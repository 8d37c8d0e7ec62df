package dev.jvmm.devices.pci;

import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.MsiRoute;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import java.util.function.Supplier;

/**
 * MSI-X for a {@link PciFunction}: the capability in config space, the vector table and the pending-bit
 * array (served from a BAR by the owner through {@link #table()} and {@link #pba()}), and delivery through
 * one {@link MsiRoute} per vector (with KVM: a GSI route and an irqfd, so {@link #trigger} is one eventfd
 * write). A vector that fires while masked is remembered in the PBA and delivered on unmask.
 */
public final class MsixCapability implements AutoCloseable {
    public static final int CAP_ID = 0x11;
    public static final int ENTRY_SIZE = 16;
    static final int CONTROL_ENABLE = 0x8000, CONTROL_FUNCTION_MASK = 0x4000;

    private final int capOffset;
    private final int vectors;
    private final Supplier<MsiRoute> routeFactory;
    private final long[] address;
    private final int[] data;
    private final boolean[] masked;
    private final boolean[] pending;
    private final boolean[] routeStale;
    private final MsiRoute[] routes;
    private boolean enabled;
    private boolean functionMasked;

    /**
     * Adds the capability to {@code owner}; the table is at {@code tableOffset} and the PBA at
     * {@code pbaOffset} of BAR {@code bar} (both 8-byte aligned).
     */
    public MsixCapability(
            PciFunction owner, int vectors, int bar, int tableOffset, int pbaOffset, Supplier<MsiRoute> routeFactory) {
        if (vectors < 1 || vectors > 2048)
            throw new IllegalArgumentException("MSI-X vectors " + vectors + " must be 1 to 2048");
        this.vectors = vectors;
        this.routeFactory = routeFactory;
        address = new long[vectors];
        data = new int[vectors];
        masked = new boolean[vectors];
        pending = new boolean[vectors];
        routeStale = new boolean[vectors];
        routes = new MsiRoute[vectors];
        java.util.Arrays.fill(masked, true); // vectors come out of reset masked
        java.util.Arrays.fill(routeStale, true);
        int table = tableOffset | bar, pba = pbaOffset | bar;
        byte[] body = {
            (byte) (vectors - 1),
            (byte) ((vectors - 1) >> 8),
            (byte) table,
            (byte) (table >> 8),
            (byte) (table >> 16),
            (byte) (table >> 24),
            (byte) pba,
            (byte) (pba >> 8),
            (byte) (pba >> 16),
            (byte) (pba >> 24)
        };
        capOffset = owner.addCapability(CAP_ID, body);
        owner.setWritable(capOffset + 3, 1, 0xc0); // enable and function mask
        owner.setMsix(this);
    }

    public int capabilityOffset() {
        return capOffset;
    }

    public int vectors() {
        return vectors;
    }

    public synchronized boolean isEnabled() {
        return enabled;
    }

    /** The owner calls this after a config write that may have touched the message control register. */
    void controlWritten(int messageControl) {
        synchronized (this) {
            enabled = (messageControl & CONTROL_ENABLE) != 0;
            functionMasked = (messageControl & CONTROL_FUNCTION_MASK) != 0;
            deliverPending();
        }
    }

    /**
     * Sends vector {@code v}: delivered now, or left pending while masked. Returns false (and does nothing)
     * when MSI-X is disabled, so the caller can fall back to INTx.
     */
    public synchronized boolean trigger(int v) {
        if (!enabled) return false;
        if (v < 0 || v >= vectors) return true; // an unmapped vector: nothing to send
        if (functionMasked || masked[v]) pending[v] = true;
        else deliver(v);
        return true;
    }

    private void deliver(int v) {
        MsiRoute r = routes[v];
        if (r == null) {
            r = routes[v] = routeFactory.get();
            routeStale[v] = true;
        }
        if (routeStale[v]) {
            r.update(address[v], data[v]);
            routeStale[v] = false;
        }
        r.trigger();
    }

    private void deliverPending() {
        if (!enabled || functionMasked) return;
        for (int v = 0; v < vectors; v++) {
            if (pending[v] && !masked[v]) {
                pending[v] = false;
                deliver(v);
            }
        }
    }

    private synchronized long readTable(long offset, int size) {
        if (size == 8) return readTable(offset, 4) & 0xffffffffL | readTable(offset + 4, 4) << 32;
        int v = (int) (offset / ENTRY_SIZE);
        if (v >= vectors || (offset & 3) != 0) return 0;
        long dword = switch ((int) (offset % ENTRY_SIZE)) {
            case 0 -> address[v] & 0xffffffffL;
            case 4 -> address[v] >>> 32;
            case 8 -> data[v] & 0xffffffffL;
            default -> masked[v] ? 1 : 0;
        };
        return size == 4 ? dword : dword & ((1L << (8 * size)) - 1);
    }

    private synchronized void writeTable(long offset, int size, long value) {
        if (size == 8) {
            writeTable(offset, 4, value & 0xffffffffL);
            writeTable(offset + 4, 4, value >>> 32);
            return;
        }
        int v = (int) (offset / ENTRY_SIZE);
        if (v >= vectors || size != 4 || (offset & 3) != 0) return;
        switch ((int) (offset % ENTRY_SIZE)) {
            case 0 -> {
                address[v] = (address[v] & 0xffffffff00000000L) | (value & 0xffffffffL);
                routeStale[v] = true;
            }
            case 4 -> {
                address[v] = (address[v] & 0xffffffffL) | (value << 32);
                routeStale[v] = true;
            }
            case 8 -> {
                data[v] = (int) value;
                routeStale[v] = true;
            }
            default -> {
                masked[v] = (value & 1) != 0;
                deliverPending();
            }
        }
    }

    private synchronized long readPba(long offset, int size) {
        long v = 0;
        for (int i = 0; i < size * 8; i++) {
            long bit = offset * 8 + i;
            if (bit < vectors && pending[(int) bit]) v |= 1L << i;
        }
        return v;
    }

    /** The vector table, for the owner's BAR at the table offset. */
    public BusDevice table() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                return readTable(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                writeTable(offset, size, value);
            }
        };
    }

    /** The pending-bit array (read-only), for the owner's BAR at the PBA offset. */
    public BusDevice pba() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                return readPba(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {}
        };
    }

    /** The vector table and the pending bits (enable and function mask live in config space). */
    public synchronized void saveState(StateOutput out) {
        out.u32(vectors);
        for (int v = 0; v < vectors; v++)
            out.u64(address[v]).u32(data[v]).bool(masked[v]).bool(pending[v]);
    }

    /**
     * Loads what {@link #saveState} wrote. Call before the owner's config space is restored, which sets enable and
     * the function mask and so delivers what is pending and unmasked. Routes are made again on first use (a new
     * VM has none: KVM's GSI routes and irqfds do not survive a snapshot).
     */
    public synchronized void restoreState(StateInput in) {
        int n = in.u32("MSI-X vectors");
        if (n != vectors)
            throw new SnapshotException(
                    SnapshotException.Kind.MACHINE_MISMATCH,
                    in.where() + ": the snapshot has " + Integer.toUnsignedString(n) + " MSI-X vectors, this device "
                            + vectors);
        long[] a = new long[n];
        int[] d = new int[n];
        boolean[] m = new boolean[n], p = new boolean[n];
        for (int v = 0; v < n; v++) {
            a[v] = in.u64("MSI-X address");
            d[v] = in.u32("MSI-X data");
            m[v] = in.bool("MSI-X mask");
            p[v] = in.bool("MSI-X pending");
        }
        System.arraycopy(a, 0, address, 0, n);
        System.arraycopy(d, 0, data, 0, n);
        System.arraycopy(m, 0, masked, 0, n);
        System.arraycopy(p, 0, pending, 0, n);
        java.util.Arrays.fill(routeStale, true);
        enabled = false; // until the config space says otherwise
        functionMasked = false;
    }

    /** Back to reset state: disabled, every vector masked, nothing pending (routes kept for reuse). */
    public synchronized void reset() {
        enabled = functionMasked = false;
        java.util.Arrays.fill(masked, true);
        java.util.Arrays.fill(pending, false);
        java.util.Arrays.fill(address, 0);
        java.util.Arrays.fill(data, 0);
        java.util.Arrays.fill(routeStale, true);
    }

    @Override
    public synchronized void close() {
        for (int i = 0; i < routes.length; i++) {
            if (routes[i] != null) routes[i].close();
            routes[i] = null;
        }
    }
}
