package dev.jvmm.agent;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** Opens a new connection to the agent: one per request. */
@FunctionalInterface
public interface AgentConnector {
    SocketChannel connect() throws IOException;

    /** An agent listening on a Unix socket ({@code jvmm-agent --listen-unix PATH}). */
    static AgentConnector unix(Path socket) {
        return () -> {
            SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
                return ch;
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        };
    }

    /**
     * An agent in a guest, through jvmm's virtio-vsock device with Firecracker's host side: connect to the
     * device's Unix socket, send {@code CONNECT port}, hear {@code OK ...}. A guest not (yet) listening closes the
     * socket: an {@link IOException}, so the caller may retry.
     */
    static AgentConnector vsock(Path udsPath, int port) {
        AgentConnector unix = unix(udsPath);
        return () -> {
            SocketChannel ch = unix.connect();
            try {
                ch.write(ByteBuffer.wrap(("CONNECT " + port + "\n").getBytes(StandardCharsets.US_ASCII)));
                // The answer is one short line; read byte by byte so nothing of the stream after it is taken.
                StringBuilder line = new StringBuilder();
                ByteBuffer one = ByteBuffer.allocate(1);
                while (true) {
                    one.clear();
                    if (ch.read(one) < 0)
                        throw new IOException("vsock port " + port + ": the guest did not accept (" + line + ")");
                    char c = (char) (one.get(0) & 0xff);
                    if (c == '\n') break;
                    if (line.length() > 64) throw new IOException("vsock: a bad answer to CONNECT: " + line);
                    line.append(c);
                }
                if (!line.toString().startsWith("OK "))
                    throw new IOException("vsock port " + port + ": answered " + line);
                return ch;
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        };
    }
}
