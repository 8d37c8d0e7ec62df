package dev.jvmm.cli.api;

import dev.jvmm.boot.BootException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/**
 * A {@link PrivateSocket} served by one epoll I/O thread of its own: the Netty setup that the API socket and the
 * console socket share, so that both are made, refused and torn down the same way.
 */
final class UnixSocketServer {
    private final PrivateSocket socket;
    private final EventLoopGroup group;

    private UnixSocketServer(PrivateSocket socket, EventLoopGroup group) {
        this.socket = socket;
        this.group = group;
    }

    /**
     * Serves at {@code path}, which must not exist (a refusal names it as {@code label}), what {@code children} sets
     * up on the bootstrap (its child handler and options), on a daemon I/O thread named {@code ioThread}. Without
     * epoll, the refusal says that {@code user} needs it. The I/O thread is stopped again if the socket is refused.
     */
    static UnixSocketServer bind(
            Path path, String label, String user, String ioThread, UnaryOperator<ServerBootstrap> children) {
        if (!Epoll.isAvailable())
            throw new BootException(
                    BootException.Kind.API_SOCKET_UNAVAILABLE,
                    user + " needs Netty's epoll transport: " + Epoll.unavailabilityCause());
        EventLoopGroup group = new EpollEventLoopGroup(1, new DefaultThreadFactory(ioThread, true));
        ServerBootstrap b =
                children.apply(new ServerBootstrap().group(group).channel(EpollServerDomainSocketChannel.class));
        try {
            return new UnixSocketServer(PrivateSocket.bind(b, path, label), group);
        } catch (RuntimeException e) {
            group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            throw e;
        }
    }

    Path path() {
        return socket.path();
    }

    /**
     * Stops listening and removes the socket, runs {@code beforeTheLoopStops} (what must finish while connections
     * can still be written to), then stops the I/O thread, which closes every connection.
     */
    void close(Runnable beforeTheLoopStops) {
        socket.close();
        beforeTheLoopStops.run();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
