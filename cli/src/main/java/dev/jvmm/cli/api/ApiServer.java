package dev.jvmm.cli.api;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.unix.DomainSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The {@link Api} over HTTP/1.1 on a Unix domain socket, as Firecracker serves it: Netty's epoll transport, one
 * I/O thread for every connection, and one worker thread that applies changes in the order they arrive.
 *
 * <p>What keeps a client from hurting the VM or other clients: reads are answered on the I/O thread without
 * waiting; a connection has one request in progress at a time (responses keep their order; pipelined requests wait
 * unread); bodies are at most {@link #MAX_PAYLOAD_BYTES} (Firecracker's 400, then the connection is closed), headers
 * 8 KiB; at most {@link #MAX_CONNECTIONS} connections, each closed after {@link #IDLE_TIMEOUT} without traffic; a
 * client that vanishes only fails its own write. The socket file is made 0600 before anyone can connect, and is
 * removed on close and at JVM exit.
 */
public final class ApiServer implements AutoCloseable {
    /** Firecracker's default --http-api-max-payload-size. */
    public static final int MAX_PAYLOAD_BYTES = 51200;

    public static final int MAX_CONNECTIONS = 64;
    public static final Duration IDLE_TIMEOUT = Duration.ofMinutes(5);
    private final UnixSocketServer server;
    private final ExecutorService worker;

    private ApiServer(UnixSocketServer server, ExecutorService worker) {
        this.server = server;
        this.worker = worker;
    }

    /**
     * Serves {@code api} at {@code socket}, which must not exist: an existing path, a stale socket included, is
     * refused (Firecracker refuses it too; the caller removes a stale one).
     */
    public static ApiServer bind(Path socket, Api api) {
        return bind(socket, api, "--api-sock");
    }

    /** As {@link #bind(Path, Api)}; a refusal names the socket as {@code label} (the option that chose it). */
    public static ApiServer bind(Path socket, Api api, String label) {
        ExecutorService worker = Executors.newSingleThreadExecutor(
                Thread.ofPlatform().daemon().name("jvmm-api").factory());
        AtomicInteger connections = new AtomicInteger();
        try {
            UnixSocketServer server = UnixSocketServer.bind(
                    socket,
                    label,
                    "the API",
                    "jvmm-api-io",
                    b -> b.childHandler(new ChannelInitializer<DomainSocketChannel>() {
                        @Override
                        protected void initChannel(DomainSocketChannel ch) {
                            if (connections.incrementAndGet() > MAX_CONNECTIONS) {
                                connections.decrementAndGet();
                                ch.writeAndFlush(Unpooled.copiedBuffer(tooManyConnections(), StandardCharsets.UTF_8))
                                        .addListener(ChannelFutureListener.CLOSE);
                                return;
                            }
                            ch.closeFuture().addListener(f -> connections.decrementAndGet());
                            ChannelPipeline p = ch.pipeline();
                            p.addLast(new IdleStateHandler(0, 0, IDLE_TIMEOUT.toSeconds(), TimeUnit.SECONDS));
                            p.addLast(new HttpServerCodec(4096, 8192, 8192));
                            p.addLast(new BoundedAggregator());
                            p.addLast(new Connection(api, worker));
                        }
                    }));
            return new ApiServer(server, worker);
        } catch (RuntimeException e) {
            worker.shutdownNow();
            throw e;
        }
    }

    public Path socket() {
        return server.path();
    }

    /**
     * Stops listening, lets a change in progress finish for a moment (a Stop that ended the run is answered), then
     * closes every connection.
     */
    @Override
    public void close() {
        server.close(
                () -> { // the I/O thread then runs the answers queued
                    worker.shutdown();
                    try {
                        worker.awaitTermination(1, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    worker.shutdownNow();
                });
    }

    private static String tooManyConnections() {
        String body = ApiResponse.fault(
                        ApiResponse.UNAVAILABLE, "too many API connections (" + MAX_CONNECTIONS + "); close some")
                .body()
                .orElseThrow();
        return "HTTP/1.1 503 Service Unavailable\r\nServer: jvmm API\r\nConnection: close\r\n"
                + "Content-Type: application/json\r\n"
                + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body;
    }

    static FullHttpResponse http(ApiResponse r, boolean keepAlive) {
        byte[] body = r.body().map(s -> s.getBytes(StandardCharsets.UTF_8)).orElse(new byte[0]);
        FullHttpResponse resp = new DefaultFullHttpResponse(
                HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(r.status()), Unpooled.wrappedBuffer(body));
        resp.headers().set(HttpHeaderNames.SERVER, "jvmm API");
        if (r.body().isPresent()) {
            resp.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
            resp.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
        }
        resp.headers()
                .set(HttpHeaderNames.CONNECTION, keepAlive ? HttpHeaderValues.KEEP_ALIVE : HttpHeaderValues.CLOSE);
        return resp;
    }

    /**
     * Bodies over the limit get Firecracker's 400 (not Netty's 413), announced ones before they are sent; then the
     * connection closes.
     */
    private static final class BoundedAggregator extends HttpObjectAggregator {
        BoundedAggregator() {
            super(MAX_PAYLOAD_BYTES, true);
        }

        private static FullHttpResponse tooLarge(HttpMessage m) {
            long size = HttpUtil.getContentLength(m, -1L);
            String message = size >= 0
                    ? "Request payload with size " + size + " is larger than the limit of " + MAX_PAYLOAD_BYTES
                            + " allowed by server."
                    : "Request payload is larger than the limit of " + MAX_PAYLOAD_BYTES + " allowed by server.";
            return http(ApiResponse.fault(ApiResponse.BAD_REQUEST, message), false);
        }

        @Override
        protected Object newContinueResponse(HttpMessage start, int maxContentLength, ChannelPipeline pipeline) {
            if (HttpUtil.is100ContinueExpected(start) && HttpUtil.getContentLength(start, -1L) > maxContentLength)
                return tooLarge(start);
            return super.newContinueResponse(start, maxContentLength, pipeline);
        }

        @Override
        protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
            ctx.writeAndFlush(tooLarge(oversized)).addListener(ChannelFutureListener.CLOSE);
        }
    }

    /** One client connection: its requests in order, one at a time; changes on the worker, reads right here. */
    private static final class Connection extends SimpleChannelInboundHandler<FullHttpRequest> {
        private record Pending(ApiRequest request, boolean keepAlive) {}

        private final Api api;
        private final ExecutorService worker;
        private final ArrayDeque<Pending> queue = new ArrayDeque<>();
        private boolean busy;

        Connection(Api api, ExecutorService worker) {
            this.api = api;
            this.worker = worker;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            if (req.decoderResult().isFailure()) {
                Throwable why = req.decoderResult().cause();
                ApiResponse r = ApiResponse.fault(
                        ApiResponse.BAD_REQUEST,
                        "Malformed HTTP request: "
                                + (why != null && why.getMessage() != null ? why.getMessage() : "cannot parse it"));
                ctx.writeAndFlush(http(r, false)).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            byte[] body = new byte[req.content().readableBytes()];
            req.content().readBytes(body);
            queue.add(
                    new Pending(new ApiRequest(req.method().name(), path(req.uri()), body), HttpUtil.isKeepAlive(req)));
            if (queue.size() > 1) ctx.channel().config().setAutoRead(false); // pipelined requests wait in the socket
            next(ctx);
        }

        /** The path of an origin-form or absolute-form request target, without its query. */
        private static String path(String uri) {
            try {
                String p = URI.create(uri).getRawPath();
                return p == null || p.isEmpty() ? "/" : p;
            } catch (IllegalArgumentException e) {
                int q = uri.indexOf('?');
                return q < 0 ? uri : uri.substring(0, q);
            }
        }

        private void next(ChannelHandlerContext ctx) {
            if (busy || queue.isEmpty()) return;
            busy = true;
            Pending p = queue.poll();
            if (Api.isRead(p.request())) {
                respond(ctx, p, api.handle(p.request()));
                return;
            }
            try {
                worker.execute(() -> {
                    ApiResponse r = api.handle(p.request());
                    ctx.executor().execute(() -> respond(ctx, p, r));
                });
            } catch (RejectedExecutionException shuttingDown) {
                respond(ctx, p, ApiResponse.fault(ApiResponse.UNAVAILABLE, "jvmm is shutting down"));
            }
        }

        private void respond(ChannelHandlerContext ctx, Pending p, ApiResponse r) {
            var f = ctx.writeAndFlush(http(r, p.keepAlive()));
            if (!p.keepAlive()) f.addListener(ChannelFutureListener.CLOSE);
            else f.addListener(ChannelFutureListener.CLOSE_ON_FAILURE); // a client that went away
            busy = false;
            if (queue.isEmpty()) ctx.channel().config().setAutoRead(true);
            next(ctx);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt instanceof IdleStateEvent) ctx.close();
            else super.userEventTriggered(ctx, evt);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // a reset connection; the VM does not care
        }
    }
}
