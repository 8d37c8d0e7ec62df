package dev.jvmm.devices.vsock;

import java.io.IOException;

/**
 * The host side of a virtio-vsock device: where the guest's stream connections to the host (CID 2) lead, and where
 * host programs' connections into the guest come from. The device owns the protocol (connection states, credit);
 * the backend owns the host's sockets and runs a thread of its own that calls the device back through
 * {@link VsockHost} and each connection's {@link StreamListener}.
 *
 * <p>Rules that keep the two deadlock-free: every {@link HostStream} method returns at once (non-blocking I/O), and
 * the backend never calls the device from inside a {@link HostStream} or {@link #connect} call, only from its own
 * thread, holding none of its locks.
 */
public interface VsockBackend extends AutoCloseable {
    /** Called once, by the device, before anything else: who hears of host connections and of the backend's clock. */
    void start(VsockHost host);

    /**
     * Opens a stream to the host program serving host port {@code port} (an unsigned 32-bit value) for a guest's
     * connection request. The stream may still be connecting ({@link HostStream#isConnected()} false): then
     * {@code listener} hears {@link StreamListener#connected()} or {@link StreamListener#failed} later.
     *
     * @throws IOException when nothing serves the port (the device answers the guest with a reset)
     */
    HostStream connect(int port, StreamListener listener) throws IOException;

    @Override
    void close();

    /** What the backend calls on the device, from the backend's thread. */
    interface VsockHost {
        /**
         * A host program asks to be connected to guest port {@code guestPort}: the device answers with the
         * listener for the stream's events once it has asked the guest, or null when it refuses (the device is not
         * active, or has too many connections); the backend then closes the stream.
         */
        StreamListener incoming(int guestPort, HostStream stream);

        /** The backend's clock, about once a second: the device times out connections the guest leaves hanging. */
        void tick(long nanoTime);

        /** The backend's thread caught a failure that is not the guest's doing (a bug): the device breaks. */
        void backendFailed(String where, Throwable cause);
    }

    /** A connection's events, called on the backend's thread. */
    interface StreamListener {
        /** A stream from {@link #connect} finished connecting. */
        void connected();

        /** A stream from {@link #connect} could not connect. */
        void failed(IOException cause);

        /** The stream has bytes (or end of stream, or an error) to read. */
        void readable();

        /** The stream can take bytes again. */
        void writable();
    }
}
