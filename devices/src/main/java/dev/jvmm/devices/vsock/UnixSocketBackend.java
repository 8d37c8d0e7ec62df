package dev.jvmm.devices.vsock;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Firecracker's host side of vsock (its docs/vsock.md): the device listens on a Unix socket {@code uds_path}; a host
 * program connects there and writes {@code CONNECT <port>\n} to reach guest port {@code port}, and hears
 * {@code OK <host port>\n} once the guest accepted (the socket is closed if it did not). A guest's connection to host
 * port P goes to the Unix socket {@code <uds_path>_<P>}, which a host program listens on; if none does, the guest's
 * connect is reset.
 *
 * <p>One thread per device runs a JDK {@link Selector} over every socket, non-blocking, so a slow or silent host
 * program stalls only its own connection and never a vCPU or the device's queue thread. JDK channels rather than
 * Netty: AF_UNIX stream sockets are plain {@link SocketChannel}s since JDK 16, and relaying bytes under vsock's
 * credit needs no pipeline or pooled buffers; reads happen only when the guest has credit and room, so the kernel's
 * socket buffer is the backpressure.
 *
 * <p>Bounds against a host program that misbehaves: the CONNECT line is at most {@link #MAX_LINE} bytes and must
 * come within {@link #HANDSHAKE_TIMEOUT_NANOS}, and at most {@link #MAX_HANDSHAKES} connections may be in that state.
 */
public final class UnixSocketBackend implements VsockBackend {
    private static final Logger LOG = LoggerFactory.getLogger(UnixSocketBackend.class);

    /** "CONNECT 4294967295\n" is 19 bytes. */
    static final int MAX_LINE = 32;

    static final int MAX_HANDSHAKES = 64;
    static final long HANDSHAKE_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final long TICK_NANOS = TimeUnit.SECONDS.toNanos(1);
    /** The longest socket path Linux takes (sun_path is 108 bytes with its NUL). */
    public static final int MAX_PATH_BYTES = 107;

    private final Path udsPath;
    private final ServerSocketChannel listener;
    private final Selector selector;
    private final Thread thread;
    private final List<Handshake> handshakes = new ArrayList<>(); // selector thread only
    private volatile VsockHost host;
    private volatile boolean closed;

    private UnixSocketBackend(Path udsPath, ServerSocketChannel listener, Selector selector) {
        this.udsPath = udsPath;
        this.listener = listener;
        this.selector = selector;
        this.thread = new Thread(this::run, "vsock-" + udsPath.getFileName());
        thread.setDaemon(true);
    }

    /**
     * Listens on {@code udsPath} for host programs. The path must not exist (as Firecracker, jvmm does not remove a
     * file it did not make) and {@code <udsPath>_<port>} must fit a socket address for any port.
     */
    public static UnixSocketBackend open(Path udsPath) throws VsockBackendException {
        String problem = pathProblem(udsPath);
        if (problem != null) throw new VsockBackendException(problem);
        ServerSocketChannel l = null;
        Selector s = null;
        try {
            l = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            l.bind(UnixDomainSocketAddress.of(udsPath));
            l.configureBlocking(false);
            s = Selector.open();
            l.register(s, SelectionKey.OP_ACCEPT);
            return new UnixSocketBackend(udsPath, l, s);
        } catch (IOException e) {
            closeQuietly(s);
            if (l != null) {
                closeQuietly(l);
                try {
                    if (l.getLocalAddress() != null) Files.deleteIfExists(udsPath);
                } catch (IOException ignored) {
                    // best effort
                }
            }
            throw new VsockBackendException(udsPath + ": cannot listen there: " + e.getMessage(), e);
        }
    }

    /** What is wrong with {@code udsPath} as a vsock socket path, or null. */
    public static String pathProblem(Path udsPath) {
        int bytes = udsPath.toString().getBytes(StandardCharsets.UTF_8).length;
        if (bytes == 0) return "the vsock socket path is empty";
        if (bytes + "_4294967295".length() > MAX_PATH_BYTES)
            return udsPath + ": too long for a Unix socket with a port suffix (at most "
                    + (MAX_PATH_BYTES - "_4294967295".length()) + " bytes)";
        if (Files.exists(udsPath, LinkOption.NOFOLLOW_LINKS))
            return udsPath + " exists: remove a stale socket first (jvmm does not remove a file it did not make)";
        return null;
    }

    public Path udsPath() {
        return udsPath;
    }

    @Override
    public void start(VsockHost host) {
        if (this.host != null) throw new IllegalStateException("vsock backend already started");
        this.host = host;
        thread.start();
    }

    @Override
    public HostStream connect(int port, StreamListener l) throws IOException {
        if (closed) throw new ClosedChannelException();
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.configureBlocking(false);
            boolean done = ch.connect(UnixDomainSocketAddress.of(udsPath + "_" + Integer.toUnsignedString(port)));
            Stream s = new Stream(ch, done);
            s.listener = l;
            // Registering from another thread does not wait for the selector (JDK 11 and later); the wakeup makes
            // it pick up the key's interest.
            s.key = ch.register(selector, done ? 0 : SelectionKey.OP_CONNECT, s);
            selector.wakeup();
            return s;
        } catch (IOException | RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    private void run() {
        long lastTick = System.nanoTime();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (!closed) {
            try {
                selector.select(1000);
                if (closed) return;
                Iterator<SelectionKey> it = selector.selectedKeys().iterator();
                while (it.hasNext()) {
                    SelectionKey k = it.next();
                    it.remove();
                    try {
                        if (!k.isValid()) continue;
                        switch (k.attachment()) {
                            case Stream s -> s.ready(k.readyOps());
                            case Handshake h -> h.readable(one);
                            case null, default -> accept();
                        }
                    } catch (CancelledKeyException e) {
                        // closed meanwhile by the device
                    }
                }
                long now = System.nanoTime();
                if (now - lastTick >= TICK_NANOS) {
                    lastTick = now;
                    expireHandshakes(now);
                    host.tick(now);
                }
            } catch (IOException | RuntimeException | Error e) {
                if (closed) return;
                LOG.error("vsock {}: the socket thread failed", udsPath, e);
                host.backendFailed("vsock socket thread", e);
                if (e instanceof Error) return;
            }
        }
    }

    private void accept() throws IOException {
        SocketChannel ch;
        while ((ch = listener.accept()) != null) {
            if (handshakes.size() >= MAX_HANDSHAKES) {
                LOG.debug(
                        "vsock {}: {} connections wait for their CONNECT line; one more closed",
                        udsPath,
                        MAX_HANDSHAKES);
                closeQuietly(ch);
                continue;
            }
            ch.configureBlocking(false);
            Handshake h = new Handshake(ch, System.nanoTime() + HANDSHAKE_TIMEOUT_NANOS);
            h.key = ch.register(selector, SelectionKey.OP_READ, h);
            handshakes.add(h);
        }
    }

    private void expireHandshakes(long now) {
        for (Handshake h : List.copyOf(handshakes))
            if (now - h.deadline >= 0) {
                LOG.debug("vsock {}: no CONNECT line within 5 s; closed", udsPath);
                h.close();
            }
    }

    /** A host program's connection before its CONNECT line: read byte by byte, so no stream byte is taken. */
    private final class Handshake {
        final SocketChannel ch;
        final long deadline;
        final byte[] line = new byte[MAX_LINE];
        int length;
        SelectionKey key;

        Handshake(SocketChannel ch, long deadline) {
            this.ch = ch;
            this.deadline = deadline;
        }

        void readable(ByteBuffer one) {
            try {
                while (true) {
                    one.clear();
                    int n = ch.read(one);
                    if (n == 0) return;
                    if (n < 0 || length == MAX_LINE) {
                        close();
                        return;
                    }
                    byte b = one.get(0);
                    if (b == '\n') break;
                    line[length++] = b;
                }
            } catch (IOException e) {
                close();
                return;
            }
            long port = parseConnect(new String(line, 0, length, StandardCharsets.US_ASCII));
            handshakes.remove(this);
            if (port < 0) {
                LOG.debug("vsock {}: not a CONNECT line; closed", udsPath);
                closeQuietly(ch);
                return;
            }
            key.interestOps(0);
            Stream s = new Stream(ch, true);
            s.key = key;
            StreamListener l = host.incoming((int) port, s);
            if (l == null) {
                s.close(); // the device is not ready, or has too many connections: Firecracker's answer, a close
                return;
            }
            s.listener = l;
            key.attach(s);
        }

        void close() {
            handshakes.remove(this);
            closeQuietly(ch);
        }
    }

    /** The port of {@code CONNECT <port>} (decimal, unsigned 32-bit), or -1. */
    static long parseConnect(String line) {
        if (!line.startsWith("CONNECT ")) return -1;
        String digits = line.substring("CONNECT ".length()).strip();
        if (digits.isEmpty() || digits.length() > 10 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) return -1;
        long port = Long.parseLong(digits);
        return port <= 0xffff_ffffL ? port : -1;
    }

    private final class Stream implements HostStream {
        final SocketChannel ch;
        volatile boolean connected;
        volatile StreamListener listener;
        volatile SelectionKey key;
        /** "OK <port>\n", owed to a host program before any of the guest's bytes. Under this object's lock. */
        ByteBuffer preamble;

        Stream(SocketChannel ch, boolean connected) {
            this.ch = ch;
            this.connected = connected;
        }

        void ready(int ops) {
            StreamListener l = listener;
            if ((ops & SelectionKey.OP_CONNECT) != 0) {
                key.interestOps(0); // the device asks for nothing before it hears of the connect
                try {
                    ch.finishConnect();
                    connected = true;
                } catch (IOException e) {
                    l.failed(e);
                    return;
                }
                l.connected();
                return;
            }
            // The device sets the key's interest anew from its callbacks (under its lock): changing it here too
            // would race with the device's own changes from its queue thread.
            if ((ops & SelectionKey.OP_WRITE) != 0) {
                if (flushPreamble()) l.writable();
            }
            if ((ops & SelectionKey.OP_READ) != 0) l.readable();
        }

        @Override
        public boolean isConnected() {
            return connected;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            return ch.read(dst);
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            if (!flushPreamble()) return 0;
            return ch.write(src);
        }

        /** Writes what is left of the OK line: true once it is all out. */
        private synchronized boolean flushPreamble() {
            if (preamble == null) return true;
            try {
                ch.write(preamble);
            } catch (IOException e) {
                return true; // the next write reports it
            }
            if (preamble.hasRemaining()) return false;
            preamble = null;
            return true;
        }

        @Override
        public void interest(boolean read, boolean write) {
            SelectionKey k = key;
            if (k == null || !k.isValid()) return;
            int ops = (read ? SelectionKey.OP_READ : 0) | (write ? SelectionKey.OP_WRITE : 0);
            try {
                synchronized (this) {
                    if (preamble != null) ops |= SelectionKey.OP_WRITE;
                }
                if (k.interestOps() == ops) return;
                k.interestOps(ops);
            } catch (CancelledKeyException e) {
                return;
            }
            if (Thread.currentThread() != thread) selector.wakeup();
        }

        @Override
        public void accepted(int hostPort) {
            synchronized (this) {
                preamble = ByteBuffer.wrap(
                        ("OK " + Integer.toUnsignedString(hostPort) + "\n").getBytes(StandardCharsets.US_ASCII));
            }
            // A fresh socket's buffer takes a few bytes; a short write leaves write interest on for the rest.
            if (!flushPreamble()) interest(false, true);
        }

        @Override
        public void shutdownOutput() {
            try {
                ch.shutdownOutput();
            } catch (IOException e) {
                LOG.debug("vsock {}: shutdown of a host stream failed: {}", udsPath, e.toString());
            }
        }

        @Override
        public void close() {
            SelectionKey k = key;
            if (k != null) k.cancel();
            closeQuietly(ch);
            if (Thread.currentThread() != thread) selector.wakeup(); // the channel's close completes at deregistration
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) return;
        try {
            c.close();
        } catch (Exception ignored) {
            // closing
        }
    }

    /** Stops the socket thread, closes every socket and removes {@code uds_path}. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        selector.wakeup();
        if (thread.isAlive() && thread != Thread.currentThread()) dev.jvmm.devices.Threads.joinUninterruptibly(thread);
        for (SelectionKey k : selector.keys()) closeQuietly(k.channel());
        closeQuietly(selector);
        closeQuietly(listener);
        try {
            Files.deleteIfExists(udsPath);
        } catch (IOException e) {
            LOG.warn("vsock: could not remove {}: {}", udsPath, e.getMessage());
        }
    }
}
