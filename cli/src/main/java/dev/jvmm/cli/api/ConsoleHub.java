package dev.jvmm.cli.api;

import dev.jvmm.boot.Machine;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * The serial console of a VM that clients attach to: every machine of the run (reboots make new ones) writes its
 * console output here, which goes on to this process's own stream (the terminal, or a detached VM's log) and to
 * the one attached client, and the client's bytes go to the running machine's UART.
 *
 * <p>One client at a time, and the newest wins: a client that attaches takes the console over, and the previous one
 * is told so in its byte stream and disconnected (a terminal that was lost can always be replaced; whoever can reach
 * the socket is this VM's user anyway). A slow client never holds up the guest: output it cannot take (more than
 * {@link ConsoleServer#HIGH_WATER} bytes queued) is dropped for it and counted, as on a serial line without flow
 * control. Its input goes to the UART on a thread of its own, in order, and the connection reads no more until the
 * UART has taken the last bytes.
 */
public final class ConsoleHub extends OutputStream {
    private static final byte[] TAKEN_OVER =
            "\r\n[jvmm: another console client attached; this one is detached]\r\n".getBytes(StandardCharsets.US_ASCII);

    private final OutputStream local;
    private final Supplier<Machine> machine;
    private final BooleanSupplier ended;
    private final ExecutorService input = Executors.newSingleThreadExecutor(
            Thread.ofPlatform().daemon().name("jvmm-console-input").factory());
    private final LongAdder dropped = new LongAdder();
    private volatile Channel client;
    private volatile boolean localFailed;

    /**
     * @param local   where the output goes besides the client (this process's stdout)
     * @param machine the machine running now (none before the start and between a reboot's two machines)
     * @param ended   whether the run is over (input then has nowhere to go)
     */
    public ConsoleHub(OutputStream local, Supplier<Machine> machine, BooleanSupplier ended) {
        this.local = local;
        this.machine = machine;
        this.ended = ended;
    }

    /** What a client that another one displaced gets last, before its connection closes. */
    public static byte[] takenOverNotice() {
        return TAKEN_OVER.clone();
    }

    @Override
    public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) {
        if (!localFailed) {
            try {
                local.write(b, off, len);
            } catch (IOException e) {
                localFailed = true; // a closed terminal or a full disk: the client still gets the console
            }
        }
        Channel c = client;
        if (c == null || !c.isActive()) return;
        if (c.isWritable()) c.writeAndFlush(Unpooled.copiedBuffer(b, off, len));
        else dropped.add(len);
    }

    @Override
    public synchronized void flush() {
        if (localFailed) return;
        try {
            local.flush();
        } catch (IOException e) {
            localFailed = true;
        }
    }

    /** Machines come and go; the hub stays for the run, and is closed only with {@link #shutdown()}. */
    @Override
    public void close() {
        flush();
    }

    /** Output bytes a slow client missed. */
    public long droppedBytes() {
        return dropped.sum();
    }

    boolean attached(Channel c) {
        return client == c;
    }

    /** A new client: it gets the console; the one before it is told and disconnected. */
    void attach(Channel c) {
        Channel old;
        synchronized (this) {
            old = client;
            client = c;
        }
        if (old != null && old != c)
            old.writeAndFlush(Unpooled.wrappedBuffer(TAKEN_OVER)).addListener(ChannelFutureListener.CLOSE);
    }

    void detach(Channel c) {
        synchronized (this) {
            if (client == c) client = null;
        }
    }

    /** The client's bytes for the guest: delivered in order; the connection reads on once they are taken. */
    void input(Channel c, byte[] data) {
        c.config().setAutoRead(false);
        try {
            input.execute(() -> {
                try {
                    deliver(c, data);
                } finally {
                    c.eventLoop().execute(() -> c.config().setAutoRead(true));
                }
            });
        } catch (RejectedExecutionException shuttingDown) {
            c.close();
        }
    }

    private void deliver(Channel c, byte[] data) {
        try {
            Machine m;
            while ((m = machine.get()) == null) {
                if (ended.getAsBoolean() || !c.isActive() || client != c) return;
                Thread.sleep(10); // between a reset and the next boot, or before the start
            }
            if (client == c) m.consoleInput(data);
        } catch (InterruptedException e) {
            // shutting down
        }
    }

    /** The end of the run: the client is disconnected and input stops. */
    void shutdown() {
        input.shutdownNow();
        Channel c;
        synchronized (this) {
            c = client;
            client = null;
        }
        if (c != null) c.close();
        flush();
    }
}
