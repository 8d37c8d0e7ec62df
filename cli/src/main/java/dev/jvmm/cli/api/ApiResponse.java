package dev.jvmm.cli.api;

import java.util.Optional;

/** An HTTP status and, except for 204, a JSON body. */
public record ApiResponse(int status, Optional<String> body) {
    public static final int OK = 200, NO_CONTENT = 204, BAD_REQUEST = 400, INTERNAL_ERROR = 500, UNAVAILABLE = 503;

    public static ApiResponse noContent() {
        return new ApiResponse(NO_CONTENT, Optional.empty());
    }

    public static ApiResponse ok(Object value) {
        return new ApiResponse(OK, Optional.of(Json.write(value)));
    }

    /** Firecracker's error body: {@code {"fault_message": "..."}}. */
    public static ApiResponse fault(int status, String message) {
        return new ApiResponse(status, Optional.of(Json.write(java.util.Map.of("fault_message", message))));
    }
}
