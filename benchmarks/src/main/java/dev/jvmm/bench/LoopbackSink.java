package dev.jvmm.bench;

import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.user.UserNetBackend;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The receiving end the network benchmarks measure against: a server on the host's loopback that accepts one
 * connection and reads all that arrives on it, as fast as the path under test delivers, counting the bytes.
 */
final class LoopbackSink implements AutoCloseable {
    private final ServerSocket server;
    private final CompletableFuture<Socket> acceptance = new CompletableFuture<>();
    private final AtomicLong bytes = new AtomicLong();
    private Socket accepted;

    /** Listens and starts accepting on a thread of its own; connect, then call {@link #drain}. */
    LoopbackSink() throws IOException {
        server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Thread.ofPlatform().daemon().start(() -> {
            try {
                acceptance.complete(server.accept());
            } catch (Exception e) {
                acceptance.completeExceptionally(e);
            }
        });
    }

    /**
     * A user-mode network whose guest reaches this host's loopback, and so a sink, at 10.0.2.2 (hostloopback on);
     * its DNS queries go to 127.0.0.1:53.
     */
    static UserNetBackend userNetToLoopback() {
        return UserNetBackend.start(new NetConfig.User(
                List.of(),
                List.of(),
                false,
                true,
                Optional.empty(),
                Optional.of(new InetSocketAddress(InetAddress.getLoopbackAddress(), 53))));
    }

    int port() {
        return server.getLocalPort();
    }

    SocketAddress address() {
        return server.getLocalSocketAddress();
    }

    /** Waits up to 10 s for the connection, then reads from it on a thread of its own until it is closed. */
    void drain() throws Exception {
        accepted = acceptance.get(10, TimeUnit.SECONDS);
        Thread.ofPlatform().daemon().start(() -> {
            byte[] buf = new byte[1 << 20];
            try (InputStream in = accepted.getInputStream()) {
                for (int n; (n = in.read(buf)) >= 0; ) bytes.addAndGet(n);
            } catch (Exception ignored) {
                // closed at teardown
            }
        });
    }

    long bytesRead() {
        return bytes.get();
    }

    @Override
    public void close() throws IOException {
        if (accepted != null) accepted.close();
        server.close();
    }
}
