package dev.jvmm.devices.net.user;

import io.netty.channel.ChannelFactory;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.ReflectiveChannelFactory;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollDatagramChannel;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.ServerSocketChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.util.concurrent.ThreadFactory;

/**
 * Netty's epoll transport where its native library loads, NIO elsewhere. Datagram channels come from a factory,
 * so that a test can hand the stack sockets in a state hard to bring about on loopback (backed up).
 */
record Transport(
        String name,
        Class<? extends SocketChannel> stream,
        Class<? extends ServerSocketChannel> server,
        ChannelFactory<? extends DatagramChannel> datagram) {

    static Transport best() {
        if (Epoll.isAvailable()) {
            return new Transport(
                    "epoll",
                    EpollSocketChannel.class,
                    EpollServerSocketChannel.class,
                    new ReflectiveChannelFactory<>(EpollDatagramChannel.class));
        }
        return nio();
    }

    static Transport nio() {
        return new Transport(
                "nio",
                NioSocketChannel.class,
                NioServerSocketChannel.class,
                new ReflectiveChannelFactory<>(NioDatagramChannel.class));
    }

    @SuppressWarnings("deprecation") // the 4.1 group classes: their replacements arrive with Netty 4.2
    EventLoopGroup newGroup(ThreadFactory threads) {
        return name.equals("epoll") ? new EpollEventLoopGroup(1, threads) : new NioEventLoopGroup(1, threads);
    }
}
