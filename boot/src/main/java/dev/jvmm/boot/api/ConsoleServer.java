package dev.jvmm.boot.api;

import dev.jvmm.boot.BootException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

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

    private final PrivateSocket socket;
    private final EventLoopGroup group;
    private final ConsoleHub hub;

    private ConsoleServer(PrivateSocket socket, EventLoopGroup group, ConsoleHub hub) {
        this.socket = socket;
        this.group = group;
        this.hub = hub;
    }

    /** Serves {@code hub} at {@code path}, which must not exist; a refusal names it as {@code label}. */
    public static ConsoleServer bind(Path path, ConsoleHub hub, String label) {
        if (!Epoll.isAvailable())
            throw new BootException(
                    BootException.Kind.API_SOCKET_UNAVAILABLE,
                    "the console socket needs Netty's epoll transport: " + Epoll.unavailabilityCause());
        EventLoopGroup group = new EpollEventLoopGroup(1, new DefaultThreadFactory("jvmm-console-io", true));
        ServerBootstrap b = new ServerBootstrap()
                .group(group)
                .channel(EpollServerDomainSocketChannel.class)
                .childOption(
                        ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(HIGH_WATER / 4, HIGH_WATER))
                .childHandler(new ChannelInitializer<DomainSocketChannel>() {
                    @Override
                    protected void initChannel(DomainSocketChannel ch) {
                        ch.pipeline().addLast(new Client(hub));
                    }
                });
        try {
            return new ConsoleServer(PrivateSocket.bind(b, path, label), group, hub);
        } catch (RuntimeException e) {
            group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            throw e;
        }
    }

    public Path socket() {
        return socket.path();
    }

    /** Stops listening, disconnects the client and removes the socket. */
    @Override
    public void close() {
        socket.close();
        hub.shutdown();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
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
