package dev.jvmm.devices.vsock;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The host end of one vsock stream connection: non-blocking reads and writes, and which readiness events the device
 * wants to hear of ({@link VsockBackend.StreamListener}). Any thread may call these, one at a time.
 */
public interface HostStream {
    /** False while a connection the guest asked for is still being made. */
    boolean isConnected();

    /** Reads what is there into {@code dst}: the byte count, 0 when nothing is, -1 at end of stream. */
    int read(ByteBuffer dst) throws IOException;

    /** Writes what the host side takes now from {@code src}: the byte count, 0 when it takes nothing. */
    int write(ByteBuffer src) throws IOException;

    /**
     * The events the device wants to hear of: readable, writable. They stay wanted until changed, so a listener
     * that hears of one sets its interest again from that callback (the backend does not change it itself).
     */
    void interest(boolean read, boolean write);

    /**
     * The guest accepted a host program's connection as host port {@code hostPort}: the host program is told so
     * (Firecracker's {@code OK <port>\n}) before any byte from the guest.
     */
    void accepted(int hostPort);

    /** The guest will send no more: the host program reads end of stream. */
    void shutdownOutput();

    /** Closes the host end; idempotent. */
    void close();
}
