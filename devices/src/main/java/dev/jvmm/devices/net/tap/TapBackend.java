package dev.jvmm.devices.net.tap;

import dev.jvmm.devices.Threads;
import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.net.NetBackendException;
import dev.jvmm.devices.net.NetCapabilities;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import dev.jvmm.devices.net.VirtioNetHeader;
import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.SyscallException;
import dev.jvmm.kvm.Tun;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A TAP interface (/dev/net/tun, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), one fd per queue pair. The kernel does the
 * offloads: it accepts any virtio_net_hdr the guest writes, and produces partial checksums and GSO frames only
 * as far as TUNSETOFFLOAD allows, which is set to what the guest accepted. One thread polls all fds; a queue
 * whose guest has no rx buffer leaves its fd unread, so the kernel's queue (and its drops) bound the backlog.
 */
public final class TapBackend implements NetBackend {
    private static final Logger LOG = LoggerFactory.getLogger(TapBackend.class);
    /** The fds always carry a v1 header; other agreed lengths are translated here. */
    private static final int TAP_HDR = VirtioNetHeader.LENGTH_V1;
    /** A GSO frame is at most 64 KiB of IP plus Ethernet and header; reads must never truncate. */
    private static final int FRAME_BUFFER = 128 * 1024;

    private static final int MAX_FRAME = 65535 + 14 + TAP_HDR;
    /** Frames read per queue per poll round, so one busy queue cannot starve the others. */
    private static final int READ_BURST = 64;

    private final String ifname;
    private final int[] fds;
    private final int wakeFd;
    private final Arena arena = Arena.ofShared();
    private final AtomicLong dropped = new AtomicLong();
    private final Object lifecycle = new Object();
    private volatile Queue[] active;
    private Thread ioThread;
    private volatile boolean running;
    private boolean closed;

    private TapBackend(String ifname, int[] fds) {
        this.ifname = ifname;
        this.fds = fds;
        this.wakeFd = Libc.eventfd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);
    }

    /** Opens (creating if missing) the interface, adds it to the bridge if one is named, and brings it up. */
    public static TapBackend open(NetConfig.Tap config) {
        boolean existed = Libc.ifNameToIndex(config.ifname()) != 0;
        int[] fds = new int[config.queues()];
        String name = config.ifname();
        int opened = 0;
        try (Arena a = Arena.ofConfined()) {
            for (; opened < fds.length; opened++) {
                fds[opened] = openQueue(a, config.ifname(), config.queues() > 1);
            }
            name = config.ifname();
            if (config.bridge().isPresent())
                addToBridge(a, name, config.bridge().get());
            if (!existed || config.bridge().isPresent()) bringUp(a, name);
        } catch (RuntimeException e) {
            for (int i = 0; i < opened; i++) Libc.close(fds[i]);
            throw e;
        }
        LOG.debug("tap {}: {} queue(s), {}", name, fds.length, existed ? "existing interface" : "created");
        return new TapBackend(name, fds);
    }

    private static int openQueue(Arena a, String ifname, boolean multiQueue) {
        int fd;
        try {
            fd = Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        } catch (SyscallException e) {
            throw new NetBackendException(
                    "tap " + ifname + ": cannot open /dev/net/tun (" + e.errnoName()
                            + "); load the tun module (modprobe tun) and check its permissions",
                    e);
        }
        try {
            MemorySegment ifr = Tun.ifreq(a, ifname);
            Tun.setFlags(ifr, Tun.IFF_TAP | Tun.IFF_NO_PI | Tun.IFF_VNET_HDR | (multiQueue ? Tun.IFF_MULTI_QUEUE : 0));
            int r = Libc.ioctlRaw(fd, Tun.TUNSETIFF, ifr);
            if (r == -Errno.EPERM || r == -Errno.EACCES) {
                throw new NetBackendException("tap " + ifname
                        + ": not permitted to create or attach it; run with CAP_NET_ADMIN or create it first "
                        + "with 'ip tuntap add "
                        + ifname + " mode tap user $USER" + (multiQueue ? " multi_queue" : "") + "'");
            }
            if (r == -Errno.EBUSY || r == -Errno.EINVAL) {
                throw new NetBackendException("tap " + ifname
                        + ": the interface exists but is not a free TAP with these flags (" + Errno.name(-r)
                        + "); pick another ifname or check its mode" + (multiQueue ? " and multi_queue" : ""));
            }
            if (r < 0) throw new NetBackendException("tap " + ifname + ": TUNSETIFF failed: " + Errno.name(-r));
            try (Arena h = Arena.ofConfined()) {
                MemorySegment size = h.allocate(ValueLayout.JAVA_INT);
                size.set(ValueLayout.JAVA_INT, 0, TAP_HDR);
                Libc.ioctl(fd, "TUNSETVNETHDRSZ", Tun.TUNSETVNETHDRSZ, size);
            }
            Libc.ioctl(fd, "TUNSETOFFLOAD", Tun.TUNSETOFFLOAD, 0L);
            return fd;
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    private static void addToBridge(Arena a, String ifname, String bridge) {
        int sock = Libc.socket(Libc.AF_UNIX, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, 0);
        try {
            int index = Libc.ifNameToIndex(ifname);
            MemorySegment ifr = Tun.ifreq(a, bridge);
            Tun.setIndex(ifr, index);
            int r = Libc.ioctlRaw(sock, Tun.SIOCBRADDIF, ifr);
            if (r == -Errno.EBUSY) {
                LOG.warn("tap {}: already a port of a bridge; leaving it where it is (wanted {})", ifname, bridge);
            } else if (r == -Errno.ENODEV || r == -Errno.EOPNOTSUPP || r == -Errno.EINVAL) {
                throw new NetBackendException("tap " + ifname + ": bridge=" + bridge + " is not a bridge here ("
                        + Errno.name(-r) + "); create it with 'ip link add " + bridge + " type bridge'");
            } else if (r < 0) {
                throw new NetBackendException(
                        "tap " + ifname + ": cannot add it to bridge " + bridge + ": " + Errno.name(-r));
            }
        } finally {
            Libc.close(sock);
        }
    }

    private static void bringUp(Arena a, String ifname) {
        int sock = Libc.socket(Libc.AF_UNIX, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, 0);
        try {
            MemorySegment ifr = Tun.ifreq(a, ifname);
            Libc.ioctl(sock, "SIOCGIFFLAGS", Tun.SIOCGIFFLAGS, ifr);
            Tun.setFlags(ifr, Tun.flags(ifr) | Tun.IFF_UP);
            Libc.ioctl(sock, "SIOCSIFFLAGS", Tun.SIOCSIFFLAGS, ifr);
        } finally {
            Libc.close(sock);
        }
    }

    public String ifname() {
        return ifname;
    }

    @Override
    public NetCapabilities capabilities() {
        Set<NetOffload> all = EnumSet.allOf(NetOffload.class);
        return new NetCapabilities(all, all, fds.length);
    }

    static int tunOffloadFlags(Set<NetOffload> toGuest) {
        if (!toGuest.contains(NetOffload.CSUM)) return 0; // every GSO type needs partial checksums
        int f = Tun.TUN_F_CSUM;
        if (toGuest.contains(NetOffload.TSO4)) f |= Tun.TUN_F_TSO4;
        if (toGuest.contains(NetOffload.TSO6)) f |= Tun.TUN_F_TSO6;
        if (toGuest.contains(NetOffload.TSO_ECN) && (f & (Tun.TUN_F_TSO4 | Tun.TUN_F_TSO6)) != 0)
            f |= Tun.TUN_F_TSO_ECN;
        if (toGuest.contains(NetOffload.USO)) f |= Tun.TUN_F_USO4 | Tun.TUN_F_USO6;
        return f;
    }

    @Override
    public List<NetQueue> activate(NetLinkConfig config, List<? extends GuestPort> ports) {
        synchronized (lifecycle) {
            if (closed) throw new IllegalStateException("tap " + ifname + " is closed");
            if (ports.isEmpty() || ports.size() > fds.length) {
                throw new IllegalArgumentException(
                        "tap " + ifname + ": " + ports.size() + " queue pairs asked, 1.." + fds.length + " available");
            }
            deactivate();
            int offload = tunOffloadFlags(config.toGuest());
            for (int i = 0; i < ports.size(); i++) {
                int r = Libc.ioctlRaw(fds[i], Tun.TUNSETOFFLOAD, offload);
                if (r < 0 && (offload & (Tun.TUN_F_USO4 | Tun.TUN_F_USO6)) != 0) {
                    // Kernels before 6.2 lack USO; the device offered it only on our word, so fall back quietly.
                    r = Libc.ioctlRaw(fds[i], Tun.TUNSETOFFLOAD, offload & ~(Tun.TUN_F_USO4 | Tun.TUN_F_USO6));
                }
                if (r < 0)
                    throw new NetBackendException("tap " + ifname + ": TUNSETOFFLOAD " + Integer.toHexString(offload)
                            + " failed: " + Errno.name(-r));
            }
            Queue[] queues = new Queue[ports.size()];
            for (int i = 0; i < queues.length; i++)
                queues[i] = new Queue(fds[i], config.vnetHeaderLength(), ports.get(i));
            drainWake();
            active = queues;
            running = true;
            ioThread = Thread.ofPlatform().daemon().name("tap-" + ifname).start(this::ioLoop);
            return List.of(queues);
        }
    }

    @Override
    public void deactivate() {
        synchronized (lifecycle) {
            Thread t = ioThread;
            if (t == null) return;
            running = false;
            wake();
            Threads.joinUninterruptibly(t);
            ioThread = null;
            Queue[] q = active;
            active = null;
            if (q != null) for (Queue queue : q) queue.stopped = true;
        }
    }

    @Override
    public long droppedFrames() {
        return dropped.get();
    }

    @Override
    public void close() {
        synchronized (lifecycle) {
            if (closed) return;
            deactivate();
            closed = true;
            for (int fd : fds) Libc.close(fd);
            Libc.close(wakeFd);
            arena.close();
        }
    }

    private void wake() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment one = a.allocate(ValueLayout.JAVA_LONG);
            one.set(ValueLayout.JAVA_LONG, 0, 1L);
            Libc.writeRaw(wakeFd, one, 8);
        }
    }

    private void drainWake() {
        try (Arena a = Arena.ofConfined()) {
            Libc.readRaw(wakeFd, a.allocate(8), 8);
        }
    }

    private void ioLoop() {
        Queue[] queues = active;
        MemorySegment pollfds = arena.allocate(Libc.POLLFD, queues.length + 1L);
        MemorySegment counter = arena.allocate(8);
        pollfds.set(ValueLayout.JAVA_INT, 0, wakeFd);
        pollfds.set(ValueLayout.JAVA_SHORT, 4, Libc.POLLIN);
        for (int i = 0; i < queues.length; i++) pollfds.set(ValueLayout.JAVA_INT, 8L * (i + 1), queues[i].fd);
        try {
            while (running) {
                for (int i = 0; i < queues.length; i++) {
                    Queue q = queues[i];
                    if (q.rxKick.getAndSet(false)) q.rxPaused = !q.retryPending();
                    short events = (short) ((q.rxPaused ? 0 : Libc.POLLIN) | (q.txBlocked.get() ? Libc.POLLOUT : 0));
                    pollfds.set(ValueLayout.JAVA_SHORT, 8L * (i + 1) + 4, events);
                    pollfds.set(ValueLayout.JAVA_SHORT, 8L * (i + 1) + 6, (short) 0);
                }
                int n = Libc.pollRaw(pollfds, queues.length + 1, -1);
                if (n == -Errno.EINTR) continue;
                if (n < 0) throw new SyscallException("poll(tap " + ifname + ")", -n);
                if ((pollfds.get(ValueLayout.JAVA_SHORT, 6) & Libc.POLLIN) != 0) Libc.readRaw(wakeFd, counter, 8);
                for (int i = 0; i < queues.length; i++) {
                    short revents = pollfds.get(ValueLayout.JAVA_SHORT, 8L * (i + 1) + 6);
                    Queue q = queues[i];
                    if ((revents & (Libc.POLLERR | Libc.POLLHUP | Libc.POLLNVAL)) != 0) {
                        LOG.warn("tap {}: queue {} fd reports {}; stopping its receive side", ifname, i, revents);
                        q.rxPaused = true;
                        continue;
                    }
                    if ((revents & Libc.POLLOUT) != 0 && q.txBlocked.compareAndSet(true, false)) q.port.txReady();
                    if ((revents & Libc.POLLIN) != 0 && !q.rxPaused) q.readBurst();
                }
            }
        } catch (RuntimeException | Error e) {
            LOG.debug("tap {}: I/O thread failed", ifname, e);
            // The device logs it, enters NEEDS_RESET and tells the VM; its reset starts a fresh I/O thread.
            for (Queue q : queues) q.port.backendFailed("tap " + ifname + " I/O thread", e);
        }
    }

    /** One queue pair: its fd, its read buffer and the frame held back while the guest has no buffer. */
    private final class Queue implements NetQueue {
        final int fd;
        final int hdrLen;
        final GuestPort port;
        final MemorySegment rxBuffer = arena.allocate(FRAME_BUFFER, 64);
        final MemorySegment txStaging = arena.allocate(FRAME_BUFFER, 64);
        final AtomicBoolean rxKick = new AtomicBoolean();
        final AtomicBoolean txBlocked = new AtomicBoolean();
        /** Length of the frame in rxBuffer the guest has not taken yet; 0 if none. I/O thread only. */
        int pendingLength;

        boolean rxPaused;
        volatile boolean stopped;

        Queue(int fd, int hdrLen, GuestPort port) {
            this.fd = fd;
            this.hdrLen = hdrLen;
            this.port = port;
        }

        /** The frame as the guest sees it: the tap's v1 header trimmed to the agreed length. */
        private MemorySegment guestView(int length) {
            int skip = TAP_HDR - hdrLen;
            return rxBuffer.asSlice(skip, length - skip);
        }

        /** Retries the held frame; true if the queue may read again. */
        boolean retryPending() {
            if (pendingLength == 0) return true;
            if (!port.deliver(guestView(pendingLength))) return false;
            pendingLength = 0;
            return true;
        }

        void readBurst() {
            for (int n = 0; n < READ_BURST; n++) {
                long r = Libc.readRaw(fd, rxBuffer, FRAME_BUFFER);
                if (r == -Errno.EAGAIN || r == -Errno.EINTR) return;
                if (r < 0) throw new SyscallException("read(tap " + ifname + ")", (int) -r);
                if (r < TAP_HDR + 14) {
                    dropped.incrementAndGet();
                    continue;
                }
                if (hdrLen == 0) VirtioNetHeader.writeEmpty(rxBuffer, TAP_HDR); // offloads are off: nothing lost
                if (!port.deliver(guestView((int) r))) {
                    pendingLength = (int) r;
                    rxPaused = true;
                    return;
                }
            }
        }

        @Override
        public TxResult transmit(MemorySegment frame) {
            if (stopped) return TxResult.DROPPED;
            long len = frame.byteSize();
            if (len < hdrLen + 14 || len - hdrLen + TAP_HDR > MAX_FRAME) {
                dropped.incrementAndGet();
                return TxResult.DROPPED;
            }
            MemorySegment out = frame;
            if (hdrLen != TAP_HDR || !frame.isNative()) {
                VirtioNetHeader.writeEmpty(txStaging, TAP_HDR);
                MemorySegment.copy(frame, 0, txStaging, TAP_HDR - hdrLen, len);
                len = len - hdrLen + TAP_HDR;
                out = txStaging;
            }
            long r = Libc.writeRaw(fd, out, len);
            if (r == len) return TxResult.SENT;
            if (r == -Errno.EAGAIN) {
                txBlocked.set(true);
                wake();
                return TxResult.BUSY;
            }
            // EINVAL: a vnet header the kernel refuses (bad GSO fields), EIO: interface down. Either way, drop.
            dropped.incrementAndGet();
            return TxResult.DROPPED;
        }

        @Override
        public void rxReady() {
            if (!rxKick.getAndSet(true)) wake();
        }
    }
}
