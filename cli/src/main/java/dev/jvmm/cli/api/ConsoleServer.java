package dev.jvmm.cli.api;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.unix.DomainSocketChannel;
import java.nio.file.Path;

/**
 * A VM's serial console on a Unix socket of its own (a jvmm extension): raw bytes both ways, no framing, so
 * {@code jvmm console NAME}, {@code socat - UNIX-CONNECT:PATH} or a script's socket attach alike. The socket is made
 * as the API's is (0600, an existing path refused, removed at exit); {@code GET /jvmm/vm} tells its path. A second
 * socket rather than an HTTP upgrade of the API's: a console connection lives as long as its user wants, which the
 * API's idle timeout and connection limit are there to prevent, and raw bytes need no client that speaks HTTP
 * first. See {@link ConsoleHub} for who gets the console.
 */
public final class ConsoleServer implements AutoCloseable {
    /** Output queued for a client beyond this is dropped for it (it is not reading). */
    static final int HIGH_WATER = 256 * 1024;

    private final UnixSocketServer server;
    private final ConsoleHub hub;

    private ConsoleServer(UnixSocketServer server, ConsoleHub hub) {
        this.server = server;
        this.hub = hub;
    }

    /** Serves {@code hub} at {@code path}, which must not exist; a refusal names it as {@code label}. */
    public static ConsoleServer bind(Path path, ConsoleHub hub, String label) {
        UnixSocketServer server = UnixSocketServer.bind(
                path,
                label,
                "the console socket",
                "jvmm-console-io",
                b -> b.childOption(
                                ChannelOption.WRITE_BUFFER_WATER_MARK,
                                new WriteBufferWaterMark(HIGH_WATER / 4, HIGH_WATER))
                        .childHandler(new ChannelInitializer<DomainSocketChannel>() {
                            @Override
                            protected void initChannel(DomainSocketChannel ch) {
                                ch.pipeline().addLast(new Client(hub));
                            }
                        }));
        return new ConsoleServer(server, hub);
    }

    public Path socket() {
        return server.path();
    }

    /** Stops listening, disconnects the client and removes the socket. */
    @Override
    public void close() {
        server.close(hub::shutdown);
    }

    private static final class Client extends ChannelInboundHandlerAdapter {
        private final ConsoleHub hub;

        Client(ConsoleHub hub) {
            this.hub = hub;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            hub.attach(ctx.channel());
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf buf = (ByteBuf) msg;
            try {
                if (hub.attached(ctx.channel()) && buf.isReadable())
                    hub.input(ctx.channel(), ByteBufUtil.getBytes(buf));
            } finally {
                buf.release();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            hub.detach(ctx.channel());
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // a reset connection; the VM does not care
        }
    }
}
