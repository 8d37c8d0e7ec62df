package dev.jvmm.cli.api;

import java.util.Objects;

/**
 * One API request as the transport decoded it: the HTTP method as sent, the path without query, and the body
 * (empty when there was none). {@link Api#handle} turns it into an {@link ApiResponse} without any socket.
 */
public record ApiRequest(String method, String path, byte[] body) {
    public ApiRequest {
        Objects.requireNonNull(method, "method");
        Objects.requireNonNull(path, "path");
        body = body == null ? new byte[0] : body;
    }

    public static ApiRequest of(String method, String path, String body) {
        return new ApiRequest(
                method, path, body == null ? null : body.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    boolean hasBody() {
        return body.length > 0;
    }
}
