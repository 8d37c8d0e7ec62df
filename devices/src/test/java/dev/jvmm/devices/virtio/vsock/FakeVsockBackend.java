package dev.jvmm.devices.virtio.vsock;

import dev.jvmm.devices.vsock.HostStream;
import dev.jvmm.devices.vsock.VsockBackend;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A host side for device tests, in memory: host ports that "listen", streams whose bytes the test reads and feeds,
 * a host side that takes only so many bytes (a slow host program), end of stream and errors; the test plays the
 * backend's thread by calling the listeners and {@link #host} itself.
 */
final class FakeVsockBackend implements VsockBackend {
    final Set<Integer> listening = new HashSet<>();
    /** Host ports whose connect completes later (the test calls connected() or failed()). */
    final Set<Integer> slowConnect = new HashSet<>();

    final List<Stream> streams = new CopyOnWriteArrayList<>();
    final Map<Integer, Stream> byPort = new HashMap<>();
    volatile VsockHost host;

    @Override
    public void start(VsockHost host) {
        this.host = host;
    }

    @Override
    public synchronized HostStream connect(int port, StreamListener listener) throws IOException {
        if (!listening.contains(port)) throw new IOException("connection refused (nothing at port " + port + ")");
        Stream s = new Stream(!slowConnect.contains(port));
        s.listener = listener;
        s.port = port;
        streams.add(s);
        byPort.put(port, s);
        return s;
    }

    /** A host program connects to guest port {@code guestPort}: the stream, with the device's listener or none. */
    Stream hostConnects(int guestPort) {
        Stream s = new Stream(true);
        s.listener = host.incoming(guestPort, s);
        streams.add(s);
        return s;
    }

    @Override
    public void close() {}

    static final class Stream implements HostStream {
        final boolean connectedAtOnce;
        volatile StreamListener listener;
        int port;
        /** What the guest sent (the host program's reads). */
        final ByteArrayOutputStream received = new ByteArrayOutputStream();
        /** What the host program sent, for the guest. */
        final ArrayDeque<Byte> toGuest = new ArrayDeque<>();
        /** Bytes the host program takes before it is full; -1: any amount. */
        int room = -1;

        boolean eof, readError, writeError, closed, outputShut;
        boolean wantRead, wantWrite;
        int acceptedPort = -1;
        int interestCalls;

        Stream(boolean connected) {
            this.connectedAtOnce = connected;
        }

        @Override
        public boolean isConnected() {
            return connectedAtOnce;
        }

        @Override
        public synchronized int read(ByteBuffer dst) throws IOException {
            if (readError) throw new IOException("connection reset by peer");
            if (toGuest.isEmpty()) return eof ? -1 : 0;
            int n = 0;
            while (dst.hasRemaining() && !toGuest.isEmpty()) {
                dst.put(toGuest.poll());
                n++;
            }
            return n;
        }

        @Override
        public synchronized int write(ByteBuffer src) throws IOException {
            if (writeError || closed) throw new IOException("broken pipe");
            int n = room < 0 ? src.remaining() : Math.min(room, src.remaining());
            byte[] b = new byte[n];
            src.get(b);
            received.writeBytes(b);
            if (room >= 0) room -= n;
            return n;
        }

        @Override
        public synchronized void interest(boolean read, boolean write) {
            wantRead = read;
            wantWrite = write;
            interestCalls++;
        }

        @Override
        public synchronized void accepted(int hostPort) {
            acceptedPort = hostPort;
        }

        @Override
        public synchronized void shutdownOutput() {
            outputShut = true;
        }

        @Override
        public synchronized void close() {
            closed = true;
        }

        /** The host program writes {@code bytes}; the device hears the stream is readable. */
        void send(byte[] bytes) {
            synchronized (this) {
                for (byte b : bytes) toGuest.add(b);
            }
            listener.readable();
        }

        synchronized byte[] receivedBytes() {
            return received.toByteArray();
        }
    }
}
