package dev.jvmm.devices.net.user;

import io.netty.buffer.ByteBuf;

/**
 * The host side of the guest's ICMP echo: sockets that send echo requests and hand back the replies. The stack
 * calls {@link #open}, {@link #send} and {@link #close(long)} from its one thread; replies may arrive on any.
 */
interface EchoHost extends AutoCloseable {
    /** Receives replies; the receiver owns {@code icmp} (the ICMP message as the host received it). */
    interface Replies {
        void reply(long socket, int src, ByteBuf icmp);
    }

    interface Factory {
        EchoHost create(Replies replies);
    }

    /** A new socket's handle (>= 0), or -errno if the host refuses one (EACCES where ping sockets are not allowed). */
    long open();

    /** Sends one ICMP echo request (header and data; the host fills in its own identifier): 0 or -errno. */
    int send(long socket, int dst, ByteBuf icmp);

    void close(long socket);

    /** Closes every socket and stops delivering replies. */
    @Override
    void close();
}
