package dev.jvmm.cli.api;

/**
 * A request the API refuses, with the {@link Kind} of refusal for callers and tests to branch on; the message is
 * the {@code fault_message}, worded as Firecracker words its own where it has one.
 */
public final class ApiException extends RuntimeException {
    public enum Kind {
        /** A method and path that name no endpoint. */
        INVALID_PATH_METHOD,
        /** A body where none belongs, none where one is needed, or one over the size limit. */
        BAD_BODY,
        /** A body that is not the endpoint's JSON: malformed, an unknown field, a wrong type, a missing field. */
        BAD_JSON,
        /** A resource id in the path that is empty, not alphanumeric, or not the body's. */
        BAD_ID,
        /** A value jvmm refuses: a path that cannot be opened, a size out of range, a feature jvmm lacks. */
        INVALID_CONFIG,
        /** A pre-boot operation after InstanceStart. */
        NOT_SUPPORTED_POST_BOOT,
        /** An operation on the running microVM before InstanceStart. */
        NOT_SUPPORTED_PRE_BOOT,
        /** InstanceStart failed: the machine could not be built from the configuration; nothing was started. */
        START_FAILED,
        /** The running microVM did not do what was asked in time (a pause), or has ended; its state is unchanged. */
        VM_UNAVAILABLE
    }

    private final Kind kind;

    public ApiException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }

    static ApiException postBoot() {
        return new ApiException(
                Kind.NOT_SUPPORTED_POST_BOOT, "The requested operation is not supported after starting the microVM.");
    }

    static ApiException preBoot() {
        return new ApiException(
                Kind.NOT_SUPPORTED_PRE_BOOT, "The requested operation is not supported before starting the microVM.");
    }

    static ApiException invalid(String message) {
        return new ApiException(Kind.INVALID_CONFIG, message);
    }
}
