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
