package dev.jvmm.core.snapshot;

import java.util.Arrays;
import java.util.Objects;

/** One {@link Snapshottable}'s saved state, kept as bytes until the device of the restored machine reads it. */
public record DeviceState(String id, int version, byte[] state) {
    static final int MAX_ID = 256;

    public DeviceState {
        Objects.requireNonNull(id);
        if (id.isEmpty() || id.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_ID)
            throw new IllegalArgumentException("device snapshot id must be 1 to " + MAX_ID + " bytes: '" + id + "'");
        if (version < 1) throw new IllegalArgumentException("device " + id + " state version " + version + " < 1");
        state = state.clone();
    }

    public static DeviceState of(Snapshottable device) {
        StateOutput out = new StateOutput();
        device.saveState(out);
        return new DeviceState(device.snapshotId(), device.snapshotVersion(), out.toByteArray());
    }

    /** Hands the saved state to {@code device}, refusing a version newer than the device reads. */
    public void restoreInto(Snapshottable device) {
        if (version > device.snapshotVersion())
            throw new SnapshotException(
                    SnapshotException.Kind.UNSUPPORTED_VERSION,
                    "device " + id + " was saved with state version " + version + "; this jvmm reads up to "
                            + device.snapshotVersion());
        device.restoreState(version, StateInput.of(state, "device " + id));
    }

    @Override
    public byte[] state() {
        return state.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DeviceState d && id.equals(d.id) && version == d.version && Arrays.equals(state, d.state);
    }

    @Override
    public int hashCode() {
        return Objects.hash(id, version, Arrays.hashCode(state));
    }

    @Override
    public String toString() {
        return "DeviceState[" + id + " v" + version + ", " + state.length + " bytes]";
    }
}
