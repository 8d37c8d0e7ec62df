package dev.jvmm.core.snapshot;

import java.util.Objects;

/**
 * A snapshot that cannot be read or restored, with a {@link Kind} a caller branches on and a one-line message that
 * says what was found, where, and what to do. A snapshot file is untrusted input: everything wrong with one ends
 * here, never in an exception from deeper down (an index out of bounds, an allocation of what a header claims).
 */
public final class SnapshotException extends RuntimeException {
    /** Why a snapshot was refused. */
    public enum Kind {
        /** The file does not start with jvmm's snapshot magic. */
        NOT_A_SNAPSHOT,
        /** The file, or one of its sections, was written in a format version this jvmm does not read. */
        UNSUPPORTED_VERSION,
        /** The file ends before what its header says it holds. */
        TRUNCATED,
        /** A checksum does not match, or a length or value is out of range. */
        CORRUPT,
        /** A section this jvmm does not know is marked as required to restore the machine. */
        UNKNOWN_SECTION,
        /** This host's KVM cannot give the restored machine what the snapshot needs (an MSR, XSAVE size, ...). */
        HOST_INCOMPATIBLE,
        /** The machine being restored into differs from the one that was saved (a device without saved state). */
        MACHINE_MISMATCH
    }

    private final Kind kind;

    public SnapshotException(Kind kind, String message) {
        super(message);
        this.kind = Objects.requireNonNull(kind);
    }

    public SnapshotException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = Objects.requireNonNull(kind);
    }

    public Kind kind() {
        return kind;
    }

    static SnapshotException corrupt(String message) {
        return new SnapshotException(Kind.CORRUPT, message);
    }

    static SnapshotException host(String message) {
        return new SnapshotException(Kind.HOST_INCOMPATIBLE, message);
    }
}
