package dev.jvmm.boot;

/**
 * A {@link MachineConfig} that cannot become a machine on this host: which {@link Problem}, the value asked for and
 * the limit it broke. Callers branch on the problem (the CLI words it as its options); the message is the library's.
 */
public final class MachineConfigException extends BootException {
    public enum Problem {
        /** Fewer vCPUs than one. */
        TOO_FEW_VCPUS,
        /** More vCPUs than KVM allows on this host. */
        TOO_MANY_VCPUS,
        /** Less memory than a machine needs ({@link Machine#MIN_MEMORY_BYTES}). */
        MEMORY_TOO_SMALL,
        /** Memory that is not a whole number of pages ({@link Machine#PAGE_BYTES}). */
        MEMORY_NOT_PAGE_ALIGNED,
        /** More memory than this host has. */
        MEMORY_EXCEEDS_HOST
    }

    private final Problem problem;
    private final long requested, limit;

    public MachineConfigException(Problem problem, long requested, long limit) {
        super(Kind.MACHINE_CONFIG, message(problem, requested, limit));
        this.problem = problem;
        this.requested = requested;
        this.limit = limit;
    }

    public Problem problem() {
        return problem;
    }

    /** What the config asked for: a vCPU count or a memory size in bytes. */
    public long requested() {
        return requested;
    }

    /** The limit it broke, in the same unit. */
    public long limit() {
        return limit;
    }

    private static String message(Problem problem, long requested, long limit) {
        return switch (problem) {
            case TOO_FEW_VCPUS -> "a machine needs at least " + limit + " vCPU, not " + requested;
            case TOO_MANY_VCPUS -> requested + " vCPUs are more than KVM allows on this host (" + limit + ")";
            case MEMORY_TOO_SMALL -> "a machine needs at least " + size(limit) + " of memory, not " + size(requested);
            case MEMORY_NOT_PAGE_ALIGNED -> "memory must be a multiple of " + size(limit) + ", not " + size(requested);
            case MEMORY_EXCEEDS_HOST -> size(requested) + " of memory is more than this host has (" + size(limit) + ")";
        };
    }

    private static String size(long bytes) {
        return (bytes & ((1 << 20) - 1)) == 0 ? (bytes >> 20) + " MiB" : bytes + " bytes";
    }
}
