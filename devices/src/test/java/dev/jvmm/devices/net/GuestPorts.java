package dev.jvmm.devices.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Collection;
import java.util.function.BiConsumer;
import java.util.function.BooleanSupplier;

/** Stand-in guests for backend tests. */
public final class GuestPorts {
    private GuestPorts() {}

    /** A guest that takes every frame the backend delivers, adding a copy to {@code frames}. */
    public static GuestPort collecting(Collection<byte[]> frames) {
        return collecting(frames, () -> true);
    }

    /** A guest that takes frames into {@code frames} while {@code accepting} says so, and has no buffer otherwise. */
    public static GuestPort collecting(Collection<byte[]> frames, BooleanSupplier accepting) {
        return collecting(frames, accepting, new java.util.ArrayList<>());
    }

    /**
     * A guest that takes every frame, but looks at those delivered by {@link GuestPort#deliverHeld} only once the
     * backend interrupts it ({@link GuestPort#interruptGuest}, or an ordinary delivery's interrupt): a backend that
     * forgets the interrupt after a burst leaves its last frames unseen.
     */
    public static GuestPort interruptDriven(Collection<byte[]> frames) {
        java.util.List<byte[]> unseen = new java.util.ArrayList<>();
        return new GuestPort() {
            @Override
            public synchronized boolean deliver(MemorySegment frame) {
                unseen.add(frame.toArray(ValueLayout.JAVA_BYTE));
                interruptGuest();
                return true;
            }

            @Override
            public synchronized boolean deliverHeld(MemorySegment[] parts, int count) {
                long len = 0;
                for (int i = 0; i < count; i++) len += parts[i].byteSize();
                byte[] f = new byte[Math.toIntExact(len)];
                int at = 0;
                for (int i = 0; i < count; i++) {
                    MemorySegment.copy(parts[i], ValueLayout.JAVA_BYTE, 0, f, at, (int) parts[i].byteSize());
                    at += (int) parts[i].byteSize();
                }
                unseen.add(f);
                return true;
            }

            @Override
            public synchronized void interruptGuest() {
                frames.addAll(unseen);
                unseen.clear();
            }

            @Override
            public void txReady() {}

            @Override
            public void backendFailed(String where, Throwable cause) {}
        };
    }

    /**
     * As {@link #collecting(Collection, BooleanSupplier)}, adding what the backend reports as its failures
     * to {@code failures}.
     */
    public static GuestPort collecting(
            Collection<byte[]> frames, BooleanSupplier accepting, Collection<Throwable> failures) {
        return collecting(frames, accepting, (where, cause) -> failures.add(cause));
    }

    /**
     * As {@link #collecting(Collection, BooleanSupplier)}, handing what the backend reports as its failures, and
     * where, to {@code onFailure}.
     */
    public static GuestPort collecting(
            Collection<byte[]> frames, BooleanSupplier accepting, BiConsumer<String, Throwable> onFailure) {
        return new GuestPort() {
            @Override
            public boolean deliver(MemorySegment frame) {
                if (!accepting.getAsBoolean()) return false;
                frames.add(frame.toArray(ValueLayout.JAVA_BYTE));
                return true;
            }

            @Override
            public void txReady() {}

            @Override
            public void backendFailed(String where, Throwable cause) {
                onFailure.accept(where, cause);
            }
        };
    }
}
