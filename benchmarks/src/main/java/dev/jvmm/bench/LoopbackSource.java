package dev.jvmm.bench;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The sending end of the host-to-guest measurements: a server on the host's loopback that accepts one connection
 * and writes to it as fast as the path under test takes the bytes, until it is closed.
 */
final class LoopbackSource implements AutoCloseable {
    private final ServerSocket server;
    private final AtomicLong bytes = new AtomicLong();
    private volatile Socket accepted;

    LoopbackSource() throws IOException {
        server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Thread.ofPlatform().daemon().start(() -> {
            byte[] buf = new byte[1 << 20];
            try (Socket s = server.accept()) {
                accepted = s;
                OutputStream out = s.getOutputStream();
                while (true) {
                    out.write(buf);
                    bytes.addAndGet(buf.length);
                }
            } catch (IOException ignored) {
                // closed at teardown
            }
        });
    }

    int port() {
        return server.getLocalPort();
    }

    long bytesWritten() {
        return bytes.get();
    }

    @Override
    public void close() throws IOException {
        Socket s = accepted;
        if (s != null) s.close();
        server.close();
    }
}
