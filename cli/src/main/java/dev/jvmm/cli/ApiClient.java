package dev.jvmm.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The verbs' side of the API: one HTTP/1.1 request per connection over the VM's Unix socket, as curl sends it, and
 * the status and body of the answer. Small on purpose: every verb is a request a script could make with curl.
 */
final class ApiClient {
    static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);
    /** More than any answer of the API; a peer that sends more is not a jvmm. */
    private static final int MAX_RESPONSE = 1 << 20;

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The connection could not be made: nothing listens there (a stale socket), or no socket is there. */
    static final class Unreachable extends IOException {
        Unreachable(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** An answer: the HTTP status and the body (empty for 204). */
    record Response(int status, String body) {
        boolean ok() {
            return status / 100 == 2;
        }

        JsonNode json() throws IOException {
            return JSON.readTree(body);
        }

        /** The API's fault_message, or the body as it came. */
        String fault() {
            try {
                JsonNode m = json().get("fault_message");
                if (m != null && m.isTextual()) return m.asText();
            } catch (IOException | RuntimeException e) {
                // not JSON: say what came
            }
            return body.isBlank() ? "HTTP status " + status : body.strip();
        }
    }

    private final Path socket;
    private final Duration timeout;

    ApiClient(Path socket) {
        this(socket, DEFAULT_TIMEOUT);
    }

    ApiClient(Path socket, Duration timeout) {
        this.socket = socket;
        this.timeout = timeout;
    }

    Path socket() {
        return socket;
    }

    Response get(String path) throws IOException {
        return send("GET", path, null);
    }

    Response put(String path, String json) throws IOException {
        return send("PUT", path, json);
    }

    Response patch(String path, String json) throws IOException {
        return send("PATCH", path, json);
    }

    /**
     * Sends one request and reads the answer; a peer that does not answer within the timeout is given up on (an
     * IOException saying so). {@link Unreachable} when the connection cannot be made.
     */
    Response send(String method, String path, String json) throws IOException {
        SocketChannel ch;
        try {
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        } catch (IOException e) {
            throw new IOException("cannot make a Unix socket: " + e.getMessage(), e);
        }
        try {
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
            } catch (IOException e) {
                throw new Unreachable(socket + ": " + e.getMessage(), e);
            }
            FutureTask<Response> exchange = new FutureTask<>(() -> exchange(ch, method, path, json));
            Thread.ofVirtual().name("jvmm-api-client").start(exchange);
            try {
                return exchange.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                throw new IOException("no answer within " + timeout.toSeconds() + " s");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted");
            } catch (ExecutionException e) {
                if (e.getCause() instanceof IOException io) throw io;
                throw new IOException(e.getCause().toString(), e.getCause());
            }
        } finally {
            ch.close();
        }
    }

    private static Response exchange(SocketChannel ch, String method, String path, String json) throws IOException {
        byte[] body = json == null ? new byte[0] : json.getBytes(StandardCharsets.UTF_8);
        StringBuilder head = new StringBuilder()
                .append(method)
                .append(' ')
                .append(path)
                .append(" HTTP/1.1\r\nHost: localhost\r\nUser-Agent: jvmm\r\nAccept: application/json\r\n")
                .append("Connection: close\r\n");
        if (json != null)
            head.append("Content-Type: application/json\r\nContent-Length: ")
                    .append(body.length)
                    .append("\r\n");
        head.append("\r\n");
        ByteBuffer out = ByteBuffer.allocate(head.length() + body.length);
        out.put(head.toString().getBytes(StandardCharsets.US_ASCII)).put(body).flip();
        while (out.hasRemaining()) ch.write(out);

        ByteArrayOutputStream in = new ByteArrayOutputStream();
        ByteBuffer buf = ByteBuffer.allocate(8192);
        while (true) {
            buf.clear();
            int n = ch.read(buf);
            if (n < 0) break;
            in.write(buf.array(), 0, n);
            if (in.size() > MAX_RESPONSE) throw new IOException("an answer of more than " + MAX_RESPONSE + " bytes");
            Response r = parse(in.toByteArray(), false);
            if (r != null) return r;
        }
        Response r = parse(in.toByteArray(), true);
        if (r == null) throw new IOException("the connection closed before an answer came");
        return r;
    }

    /** The response in {@code bytes} once complete (by Content-Length, or at the end of the stream); else null. */
    static Response parse(byte[] bytes, boolean ended) throws IOException {
        String text = new String(bytes, StandardCharsets.ISO_8859_1);
        int end = text.indexOf("\r\n\r\n");
        if (end < 0) return null;
        String[] lines = text.substring(0, end).split("\r\n");
        String[] status = lines[0].split(" ", 3);
        if (status.length < 2 || !status[0].startsWith("HTTP/1."))
            throw new IOException("not an HTTP answer: " + lines[0]);
        int code;
        try {
            code = Integer.parseInt(status[1]);
        } catch (NumberFormatException e) {
            throw new IOException("not an HTTP answer: " + lines[0]);
        }
        long length = -1;
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon > 0 && lines[i].substring(0, colon).trim().equalsIgnoreCase("Content-Length")) {
                try {
                    length = Long.parseLong(lines[i].substring(colon + 1).trim());
                } catch (NumberFormatException e) {
                    throw new IOException("a bad Content-Length: " + lines[i]);
                }
            }
        }
        int start = end + 4;
        int have = bytes.length - start;
        if (length < 0) {
            if (code == 204 || code == 304 || code / 100 == 1) length = 0;
            else if (!ended) return null;
            else length = have;
        }
        if (have < length) return null;
        return new Response(code, new String(bytes, start, (int) length, StandardCharsets.UTF_8));
    }
}
