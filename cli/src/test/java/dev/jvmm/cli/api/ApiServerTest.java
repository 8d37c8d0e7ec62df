package dev.jvmm.cli.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.BootException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The API on its Unix socket, without KVM: the socket file's life, curl as the client, and the robustness rules
 * (bounded bodies, malformed HTTP, ordered pipelining, many clients, slow and vanished clients, reads answered
 * while a change is in progress).
 */
class ApiServerTest {
    private static final Duration ANSWER = Duration.ofSeconds(10);

    @TempDir
    Path dir;

    Path socket;
    CountDownLatch loggerGate = new CountDownLatch(0);
    final CountDownLatch loggerEntered = new CountDownLatch(1);
    Instance instance;
    ApiServer server;
    final ExecutorService clients = Executors.newCachedThreadPool();

    @BeforeEach
    void start() {
        socket = dir.resolve("api.sock");
        Instance.Logs logs = (file, level) -> {
            loggerEntered.countDown();
            try {
                loggerGate.await(); // a change that takes its time, on the API's worker
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        instance = new Instance(new Instance.Host("t", b -> b, () -> true, logs, Instance.Host.DEFAULT_PAUSE_TIMEOUT));
        server = ApiServer.bind(socket, new Api(instance));
    }

    @AfterEach
    void stop() {
        loggerGate = new CountDownLatch(0);
        clients.shutdownNow();
        server.close();
    }

    /** An HTTP response as the raw client read it. */
    record Response(int status, String headers, String body) {}

    private SocketChannel connect() throws IOException {
        return SocketChannel.open(UnixDomainSocketAddress.of(socket));
    }

    private static void send(SocketChannel ch, String text) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) ch.write(b);
    }

    private static String request(String method, String path, String body) {
        return method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n"
                + (body == null
                        ? "\r\n"
                        : "Content-Type: application/json\r\nContent-Length: "
                                + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body);
    }

    /** Reads one response (status line, headers, Content-Length body) within {@link #ANSWER}. */
    private Response read(InputStream in) throws Exception {
        Future<Response> f = clients.submit(() -> {
            String head = readHead(in);
            if (head == null) return null;
            int status = Integer.parseInt(head.substring(9, 12));
            int length = 0;
            for (String line : head.split("\r\n"))
                if (line.toLowerCase().startsWith("content-length:"))
                    length = Integer.parseInt(line.substring(15).trim());
            return new Response(status, head, new String(in.readNBytes(length), StandardCharsets.UTF_8));
        });
        return f.get(ANSWER.toMillis(), TimeUnit.MILLISECONDS);
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int c, state = 0;
        while ((c = in.read()) >= 0) {
            b.write(c);
            state = (c == '\r' && state % 2 == 0) || (c == '\n' && state % 2 == 1) ? state + 1 : 0;
            if (state == 4) return b.toString(StandardCharsets.UTF_8);
        }
        return b.size() == 0 ? null : b.toString(StandardCharsets.UTF_8);
    }

    private Response exchange(String method, String path, String body) throws Exception {
        try (SocketChannel ch = connect()) {
            try {
                send(ch, request(method, path, body));
            } catch (IOException closedFirst) {
                // refused at once (503): its answer is there to read
            }
            return read(Channels.newInputStream(ch));
        }
    }

    /** Whether the server closed the connection (EOF) within {@link #ANSWER}. */
    private boolean closedByServer(InputStream in) throws Exception {
        return clients.submit(() -> in.read() < 0).get(ANSWER.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Test
    void theSocketIsPrivateAndRemovedOnClose() throws Exception {
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(socket)));
        assertEquals(200, exchange("GET", "/", null).status());
        try (var files = Files.list(dir)) {
            assertEquals(List.of(socket), files.toList(), "nothing else left in its folder");
        }
        server.close();
        assertFalse(Files.exists(socket));
        server = ApiServer.bind(socket, new Api(instance)); // the path is free again
    }

    @Test
    void anExistingPathIsRefusedAndLeftAlone() throws Exception {
        Path file = Files.writeString(dir.resolve("taken"), "mine");
        BootException e = assertThrows(BootException.class, () -> ApiServer.bind(file, new Api(instance)));
        assertEquals(BootException.Kind.API_SOCKET_UNAVAILABLE, e.kind());
        assertTrue(e.getMessage().contains(file + " exists"), e.getMessage());
        assertEquals("mine", Files.readString(file));
        // A stale socket (its server gone without removing it) is refused the same way, as Firecracker does.
        Path stale = dir.resolve("stale.sock");
        try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.bind(UnixDomainSocketAddress.of(stale));
        }
        assertTrue(Files.exists(stale));
        assertThrows(BootException.class, () -> ApiServer.bind(stale, new Api(instance)));
        BootException noFolder = assertThrows(
                BootException.class, () -> ApiServer.bind(dir.resolve("no/such/dir/api.sock"), new Api(instance)));
        assertTrue(noFolder.getMessage().contains("does not exist"), noFolder.getMessage());
    }

    private List<String> curl(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(
                "curl", "-s", "-S", "--max-time", "10", "--unix-socket", socket.toString(), "-w", "\n%{http_code}"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(20, TimeUnit.SECONDS));
        int nl = out.lastIndexOf('\n');
        return List.of(out.substring(nl + 1), out.substring(0, Math.max(nl, 0)));
    }

    @Test
    void curlAsTheClient() throws Exception {
        List<String> r = curl("http://localhost/");
        assertEquals("200", r.get(0));
        assertTrue(r.get(1).contains("\"state\":\"Not started\""), r.get(1));
        r = curl(
                "-X",
                "PUT",
                "http://localhost/machine-config",
                "-H",
                "Accept: application/json",
                "-H",
                "Content-Type: application/json",
                "-d",
                "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
        assertEquals(List.of("204", ""), r);
        r = curl("-X", "PUT", "http://localhost/machine-config", "-d", "{\"vcpu_count\": 2, \"mem_size\": 256}");
        assertEquals("400", r.get(0));
        assertTrue(r.get(1).contains("unknown field `mem_size`"), r.get(1));
        r = curl("-X", "PUT", "http://localhost/nope", "-d", "{}");
        assertEquals("400", r.get(0));
        assertTrue(r.get(1).contains("Invalid request method and/or path: PUT /nope."), r.get(1));
        // A body over the limit, which curl announces with Expect: 100-continue and Content-Length.
        Path big = Files.writeString(
                dir.resolve("big.json"), "{\"vcpu_count\": 2, \"x\": \"" + "a".repeat(60_000) + "\"}");
        r = curl(
                "-X",
                "PUT",
                "http://localhost/machine-config",
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                "@" + big);
        assertEquals("400", r.get(0));
        assertTrue(r.get(1).contains("is larger than the limit of 51200 allowed by server"), r.get(1));
        assertEquals(2, instance.machineConfig().vcpuCount());
    }

    @Test
    void bodiesOverTheLimitGetFirecrackers400AndTheConnectionCloses() throws Exception {
        try (SocketChannel ch = connect()) {
            send(ch, "PUT /boot-source HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{\"kernel");
            InputStream in = Channels.newInputStream(ch);
            Response r = read(in);
            assertEquals(400, r.status());
            assertTrue(
                    r.body()
                            .contains("Request payload with size 60000 is larger than the limit of 51200"
                                    + " allowed by server."),
                    r.body());
            assertTrue(closedByServer(in));
        }
        try (SocketChannel ch = connect()) { // no length announced: chunks add up past the limit
            String chunk = "a".repeat(30_000);
            send(ch, "PUT /boot-source HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (int i = 0; i < 2; i++) send(ch, Integer.toHexString(chunk.length()) + "\r\n" + chunk + "\r\n");
            InputStream in = Channels.newInputStream(ch);
            Response r = read(in);
            assertEquals(400, r.status());
            assertTrue(r.body().contains("larger than the limit of 51200"), r.body());
        }
        assertEquals(200, exchange("GET", "/", null).status(), "the server carries on");
    }

    @Test
    void malformedHttpIs400AndClosed() throws Exception {
        for (String garbage : new String[] {
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\r\nX: " + "y".repeat(10_000) + "\r\n\r\n",
            "PUT /vm HTTP/1.1\r\nContent-Length: -5\r\n\r\n"
        }) {
            try (SocketChannel ch = connect()) {
                send(ch, garbage);
                InputStream in = Channels.newInputStream(ch);
                Response r = read(in);
                assertEquals(400, r.status(), garbage.substring(0, 10));
                assertTrue(r.body().contains("fault_message"), r.body());
                assertTrue(closedByServer(in));
            }
        }
        assertEquals("Not started", instance.info().state());
    }

    @Test
    void pipelinedRequestsAreAnsweredInOrder() throws Exception {
        try (SocketChannel ch = connect()) {
            // A change (on the worker) and then reads (answered at once): the reads must still come second and see it.
            send(
                    ch,
                    request("PUT", "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 64}")
                            + request("GET", "/machine-config", null)
                            + request("PUT", "/nope", "{}")
                            + request("GET", "/", null));
            InputStream in = Channels.newInputStream(ch);
            assertEquals(204, read(in).status());
            Response config = read(in);
            assertEquals(200, config.status());
            assertTrue(config.body().contains("\"vcpu_count\":3"), config.body());
            assertEquals(400, read(in).status());
            assertEquals(200, read(in).status());
        }
    }

    @Test
    void manyClientsAtOnce() throws Exception {
        List<Future<Integer>> results = new ArrayList<>();
        for (int c = 0; c < 32; c++) {
            int client = c;
            results.add(clients.submit(() -> {
                int ok = 0;
                try (SocketChannel ch = connect()) {
                    InputStream in = Channels.newInputStream(ch);
                    for (int i = 0; i < 20; i++) {
                        boolean valid = (client + i) % 3 != 0;
                        send(
                                ch,
                                request(
                                        "PUT",
                                        "/machine-config",
                                        "{\"vcpu_count\": " + (valid ? 1 + client % 4 : 0)
                                                + ", \"mem_size_mib\": 64}"));
                        Response r = read(in);
                        assertEquals(valid ? 204 : 400, r.status(), r.body());
                        send(ch, request("GET", "/", null));
                        assertEquals(200, read(in).status());
                        ok++;
                    }
                }
                return ok;
            }));
        }
        for (Future<Integer> f : results) assertEquals(20, f.get(60, TimeUnit.SECONDS));
        int vcpus = instance.machineConfig().vcpuCount();
        assertTrue(vcpus >= 1 && vcpus <= 4, "a whole value from one of the clients: " + vcpus);
    }

    @Test
    void connectionsBeyondTheLimitGet503() throws Exception {
        List<SocketChannel> open = new ArrayList<>();
        try {
            for (int i = 0; i < ApiServer.MAX_CONNECTIONS; i++) {
                SocketChannel ch = connect();
                open.add(ch);
                send(ch, request("GET", "/", null)); // each is really accepted before the next
                assertEquals(200, read(Channels.newInputStream(ch)).status());
            }
            Response r = exchange("GET", "/", null);
            assertEquals(503, r.status());
            assertTrue(r.body().contains("too many API connections"), r.body());
            open.removeFirst().close();
            long deadline = System.nanoTime() + ANSWER.toNanos();
            int status;
            do {
                status = exchange("GET", "/", null).status();
            } while (status == 503 && System.nanoTime() < deadline);
            assertEquals(200, status, "a slot frees when a client leaves");
        } finally {
            for (SocketChannel ch : open) ch.close();
        }
    }

    @Test
    void slowAndVanishedClientsBlockNoOne() throws Exception {
        try (SocketChannel slow = connect();
                SocketChannel halfBody = connect()) {
            send(slow, "PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Le"); // and then nothing
            send(halfBody, "PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"vcpu_count\"");
            SocketChannel vanished = connect();
            send(vanished, request("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}"));
            vanished.close(); // before reading its answer
            assertEquals(200, exchange("GET", "/", null).status());
            assertEquals(
                    204,
                    exchange("PUT", "/machine-config", "{\"vcpu_count\": 4, \"mem_size_mib\": 64}")
                            .status());
            assertEquals(4, instance.machineConfig().vcpuCount());
        }
    }

    @Test
    void readsAreAnsweredWhileAChangeIsInProgress() throws Exception {
        loggerGate = new CountDownLatch(1);
        try (SocketChannel changing = connect();
                SocketChannel queued = connect()) {
            send(changing, request("PUT", "/logger", "{\"level\": \"Info\"}"));
            assertTrue(loggerEntered.await(ANSWER.toSeconds(), TimeUnit.SECONDS)); // it is on the worker, waiting
            send(queued, request("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}"));
            long t0 = System.nanoTime();
            Response info = exchange("GET", "/", null);
            assertEquals(200, info.status());
            assertEquals(200, exchange("GET", "/machine-config", null).status());
            assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(5).toNanos());
            InputStream queuedIn = Channels.newInputStream(queued);
            CompletableFuture<Response> queuedAnswer = CompletableFuture.supplyAsync(() -> {
                try {
                    return read(queuedIn);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            assertThrows(
                    TimeoutException.class,
                    () -> queuedAnswer.get(300, TimeUnit.MILLISECONDS),
                    "changes wait their turn");
            loggerGate.countDown();
            assertEquals(204, read(Channels.newInputStream(changing)).status());
            // The queued change is applied before it is answered; its answer, not the logger's, says it is done.
            assertEquals(
                    204, queuedAnswer.get(ANSWER.toSeconds(), TimeUnit.SECONDS).status());
        }
        assertEquals(2, instance.machineConfig().vcpuCount());
    }
}
