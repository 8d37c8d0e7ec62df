package dev.jvmm.devices.net.user;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Echo through unprivileged ping sockets (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)): the kernel gives each
 * socket its own echo identifier, checks the replies and lets any process whose group lies in
 * net.ipv4.ping_group_range use them. Netty has no channel for them, so a thread of its own polls the sockets
 * (an eventfd wakes it when the set changes) and closes them: no socket is closed while it is being polled.
 */
final class PingSocketHost implements EchoHost {
    private static final Logger LOG = LoggerFactory.getLogger(PingSocketHost.class);
    /** More than the stack keeps ({@link IcmpStage}); a guard against a caller that leaks. */
    static final int MAX_SOCKETS = 256;

    private static final int BUFFER = 65536, READS_PER_WAKE = 64;
    private static final java.lang.foreign.ValueLayout.OfInt NET_INT = JAVA_INT.withOrder(ByteOrder.BIG_ENDIAN);

    /** Opens a non-blocking ping socket in the calling thread's network namespace: its fd, or -errno. */
    static int openInCurrentNamespace() {
        return Libc.socketRaw(
                Libc.AF_INET, Libc.SOCK_DGRAM | Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC, Libc.IPPROTO_ICMP);
    }

    static EchoHost.Factory factory(ByteBufAllocator alloc, IntSupplier opener) {
        return replies -> new PingSocketHost(alloc, opener, replies);
    }

    private record Change(long socket, int fd, boolean add) {}

    private final ByteBufAllocator alloc;
    private final IntSupplier opener;
    private final Replies replies;
    private final Map<Long, Integer> fds = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<Change> changes = new ConcurrentLinkedQueue<>();
    private final Arena arena = Arena.ofShared();
    /** Used by the sending thread only (the stack's), so one of each suffices. */
    private final MemorySegment sendBuffer = arena.allocate(BUFFER), sendAddress = arena.allocate(Libc.SOCKADDR_IN);

    private final MemorySegment one = arena.allocate(JAVA_LONG);
    private final int wakeFd;
    private final Thread poller;
    private volatile boolean stopping;
    private long nextSocket;

    PingSocketHost(ByteBufAllocator alloc, IntSupplier opener, Replies replies) {
        this.alloc = alloc;
        this.opener = opener;
        this.replies = replies;
        one.set(JAVA_LONG, 0, 1);
        sendAddress.set(JAVA_SHORT, 0, (short) Libc.AF_INET);
        try {
            wakeFd = Libc.eventfd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
        poller = Thread.ofPlatform().daemon().name("jvmm-usernet-ping").start(this::poll);
    }

    @Override
    public long open() {
        if (stopping) return -Errno.EBADF;
        if (fds.size() >= MAX_SOCKETS) return -Errno.EMFILE;
        int fd = opener.getAsInt();
        if (fd < 0) return fd;
        long socket = nextSocket++;
        fds.put(socket, fd);
        changes.add(new Change(socket, fd, true));
        wake();
        return socket;
    }

    @Override
    public int send(long socket, int dst, ByteBuf icmp) {
        Integer fd = fds.get(socket);
        if (fd == null) return -Errno.EBADF;
        int n = icmp.readableBytes();
        if (n > BUFFER) return -Errno.EINVAL;
        icmp.getBytes(icmp.readerIndex(), sendBuffer.asByteBuffer().limit(n));
        sendAddress.set(NET_INT, 4, dst);
        return (int) Libc.sendtoRaw(fd, sendBuffer, n, 0, sendAddress);
    }

    @Override
    public void close(long socket) {
        Integer fd = fds.remove(socket);
        if (fd == null) return;
        changes.add(new Change(socket, fd, false));
        wake();
    }

    @Override
    public void close() {
        if (stopping) return;
        stopping = true;
        wake();
        try {
            poller.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (!poller.isAlive()) arena.close(); // else the poller still uses it; the arena goes with the process
    }

    private void wake() {
        Libc.writeRaw(wakeFd, one, 8);
    }

    /** The poller: owns the set of polled fds and closes each one it drops. */
    private void poll() {
        long[] sockets = new long[MAX_SOCKETS];
        int[] polled = new int[MAX_SOCKETS];
        int count = 0;
        try (Arena local = Arena.ofConfined()) {
            MemorySegment pollFds = local.allocate(Libc.POLLFD, MAX_SOCKETS + 1);
            MemorySegment buffer = local.allocate(BUFFER),
                    from = local.allocate(Libc.SOCKADDR_IN),
                    fromLength = local.allocate(JAVA_INT);
            MemorySegment drain = local.allocate(JAVA_LONG);
            long stride = Libc.POLLFD.byteSize();
            while (true) {
                for (Change c; (c = changes.poll()) != null; ) {
                    if (c.add) {
                        sockets[count] = c.socket;
                        polled[count++] = c.fd;
                    } else {
                        for (int i = 0; i < count; i++) {
                            if (sockets[i] != c.socket) continue;
                            Libc.close(polled[i]);
                            sockets[i] = sockets[--count];
                            polled[i] = polled[count];
                            break;
                        }
                    }
                }
                if (stopping) break;
                pollFds.set(JAVA_INT, 0, wakeFd);
                pollFds.set(JAVA_SHORT, 4, Libc.POLLIN);
                for (int i = 0; i < count; i++) {
                    pollFds.set(JAVA_INT, (i + 1) * stride, polled[i]);
                    pollFds.set(JAVA_SHORT, (i + 1) * stride + 4, Libc.POLLIN);
                }
                int n = Libc.pollRaw(pollFds, count + 1, -1);
                if (n == -Errno.EINTR) continue;
                if (n < 0) {
                    LOG.warn("user network: poll on ping sockets failed ({}); ICMP echo replies stop", Errno.name(-n));
                    break;
                }
                if (pollFds.get(JAVA_SHORT, 6) != 0) Libc.readRaw(wakeFd, drain, 8);
                for (int i = 0; i < count; i++) {
                    if (pollFds.get(JAVA_SHORT, (i + 1) * stride + 6) != 0)
                        read(sockets[i], polled[i], buffer, from, fromLength);
                }
            }
        } catch (RuntimeException | Error e) {
            LOG.warn("user network: ping socket poller failed; ICMP echo replies stop", e);
        } finally {
            for (int i = 0; i < count; i++) Libc.close(polled[i]);
            for (Change c; (c = changes.poll()) != null; ) if (c.add) Libc.close(c.fd);
            Libc.close(wakeFd);
        }
    }

    private void read(long socket, int fd, MemorySegment buffer, MemorySegment from, MemorySegment fromLength) {
        for (int k = 0; k < READS_PER_WAKE; k++) {
            long r = Libc.recvfromRaw(fd, buffer, BUFFER, Libc.MSG_DONTWAIT, from, fromLength);
            if (r == -Errno.EINTR) continue;
            if (r < 0)
                return; // EAGAIN: drained; any other error (an ICMP error for an earlier echo) is consumed by reading
            // it
            if (from.get(JAVA_SHORT, 0) != Libc.AF_INET) continue;
            ByteBuf b = alloc.buffer((int) r);
            b.writeBytes(buffer.asSlice(0, r).asByteBuffer());
            try {
                replies.reply(socket, from.get(NET_INT, 4), b);
            } catch (RuntimeException e) { // the receiver is gone (its event loop shut down)
                b.release();
                return;
            }
        }
    }
}
