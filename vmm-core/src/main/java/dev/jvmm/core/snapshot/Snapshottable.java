package dev.jvmm.core.snapshot;

/**
 * A device (or any part of a machine outside KVM) whose state goes into a snapshot, one section each. The contract:
 * {@link #saveState} runs while the VM is paused and the device is quiesced (no I/O in flight, its threads idle), and
 * writes everything the guest could observe; {@link #restoreState} runs on a newly built device of the same
 * configuration before the VM starts, and reads what a {@link #snapshotVersion() version} of saveState wrote,
 * refusing malformed state with a {@link SnapshotException} (the file is untrusted input: {@link StateInput} bounds
 * every read). A device that changes what it saves bumps its version and keeps reading the older ones it can.
 */
public interface Snapshottable {
    /** A name unique in the machine and stable across runs of the same configuration ("serial0", "virtio-blk@3"). */
    String snapshotId();

    /** The version of the state {@link #saveState} writes, at least 1. */
    int snapshotVersion();

    void saveState(StateOutput out);

    /**
     * Loads state written by {@link #saveState} at {@code version}, which is at most {@link #snapshotVersion()} (the
     * caller refuses newer ones). Should end with {@link StateInput#expectEnd()}.
     */
    void restoreState(int version, StateInput in);

    /**
     * Before a snapshot of a running machine (its vCPUs already paused): stop everything that could change the
     * device's state or guest memory on its own (I/O threads, timers, backend callbacks), finishing what is in
     * flight, and return once the device is still. {@link #resumeAfterSnapshot} undoes it. Called once per
     * snapshot, in registration order; a device with no thread of its own needs nothing.
     */
    default void quiesce() {}

    /** After the snapshot (written or failed): the device works on as before {@link #quiesce}. */
    default void resumeAfterSnapshot() {}
}
