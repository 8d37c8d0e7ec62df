package dev.jvmm.devices.block.qcow2;

/** One entry of the internal snapshot table. */
public record Snapshot(
        String id,
        String name,
        long l1TableOffset,
        int l1Size,
        long vmStateSize,
        long diskSize,
        long dateSeconds,
        long dateNanos,
        long vmClockNanos,
        long icount,
        int tableEntryBytes) {}
