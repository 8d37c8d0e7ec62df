package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.FlowStats;
import dev.jvmm.devices.net.GuestPort;
import dev.jvmm.devices.net.NetBackend;
import dev.jvmm.devices.net.NetBackendException;
import dev.jvmm.devices.net.NetCapabilities;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.net.NetLinkConfig;
import dev.jvmm.devices.net.NetOffload;
import dev.jvmm.devices.net.NetQueue;
import dev.jvmm.devices.net.TxResult;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.DatagramPacket;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * User-mode networking, addressed as QEMU's {@code -netdev user}: the guest is 10.0.2.15 (by DHCP), 10.0.2.2 is
 * the gateway (and the host's loopback with hostloopback=on), 10.0.2.3 a DNS forwarder; guest flows leave through
 * host sockets where {@link NatPolicy} allows them.
 */
public final class UserNetBackend implements NetBackend {
    private static final Logger LOG = LoggerFactory.getLogger(UserNetBackend.class);
    /** Guest frames waiting for the stack's thread; above this transmit answers BUSY. */
    private static final int TX_LIMIT = 512;

    private static final int DRAIN_BATCH = 64;
    private static final int MAX_FRAME = 65535 + 14;

    private final NetConfig.User config;
    private final EventLoopGroup group;
    private final UserNetStack stack;
    private final List<Channel> forwardChannels = new ArrayList<>();
    private final List<InetSocketAddress> forwardAddresses = new ArrayList<>();
    private volatile Queue active;
    private boolean closed;

    private UserNetBackend(
            NetConfig.User config, InetSocketAddress resolver, EchoHost.Factory echoHosts, Tuning tuning) {
        this.config = config;
        Transport transport = tuning.transport();
        this.group = transport.newGroup(new DefaultThreadFactory("jvmm-usernet", true));
        this.stack = new UserNetStack(
                group.next(), tuning, new NatPolicy(config, resolver, HostAddresses.live()), echoHosts);
        stack.loop.scheduleAtFixedRate(stack::tick, 50, 50, TimeUnit.MILLISECONDS);
        LOG.debug("user network on Netty {} transport, resolver {}", transport.name(), resolver);
    }

    /** Starts the stack and listens on every forwarded port; a port that cannot be bound fails the start. */
    public static UserNetBackend start(NetConfig.User config) {
        return start(
                config, PingSocketHost.factory(PooledByteBufAllocator.DEFAULT, PingSocketHost::openInCurrentNamespace));
    }

    /**
     * As {@link #start(NetConfig.User)}, with the guest's ICMP echo sent through {@code echoHosts} (tests: a namespace,
     * a fake).
     */
    static UserNetBackend start(NetConfig.User config, EchoHost.Factory echoHosts) {
        return start(config, echoHosts, Tuning.defaults());
    }

    /** As {@link #start(NetConfig.User, EchoHost.Factory)}, with the stack's internal limits changed (tests). */
    static UserNetBackend start(NetConfig.User config, EchoHost.Factory echoHosts, Tuning tuning) {
        InetSocketAddress resolver =
                config.resolver().orElseGet(() -> NatPolicy.hostResolver(Path.of("/etc/resolv.conf")));
        UserNetBackend b = new UserNetBackend(config, resolver, echoHosts, tuning);
        try {
            for (NetConfig.HostForward f : config.forwards()) b.listen(f);
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
        return b;
    }

    private void listen(NetConfig.HostForward f) {
        InetSocketAddress at = new InetSocketAddress(f.hostAddress(), f.hostPort());
        ChannelFuture bound;
        if (f.protocol() == NetConfig.Protocol.TCP) {
            bound = new ServerBootstrap()
                    .group(group)
                    .channel(stack.transport.server())
                    .option(ChannelOption.SO_REUSEADDR, true)
                    .childOption(ChannelOption.AUTO_READ, false)
                    .childOption(ChannelOption.ALLOCATOR, stack.alloc)
                    .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
                    .childOption(ChannelOption.TCP_NODELAY, true)
                    .childHandler(new Accept(f))
                    .bind(at);
        } else {
            bound = new Bootstrap()
                    .group(group)
                    .channelFactory(stack.transport.datagram())
                    .handler(new ChannelInboundHandlerAdapter() {
                        @Override
                        public void channelRead(ChannelHandlerContext ctx, Object msg) {
                            stack.udp.forwarded(ctx.channel(), f, (DatagramPacket) msg);
                        }

                        @Override
                        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                            // ICMP errors for earlier datagrams surface as IOExceptions: the socket carries on
                            if (!(cause instanceof java.io.IOException)) stack.failed("a forwarded UDP port", cause);
                        }
                    })
                    .bind(at);
        }
        try {
            bound.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (!bound.isSuccess()) {
            String why = bound.cause() == null ? "timed out" : bound.cause().getMessage();
            throw new NetBackendException("hostfwd=" + f.protocol().name().toLowerCase() + ":"
                    + f.hostAddress().getHostAddress() + ":" + f.hostPort() + ": cannot listen there (" + why
                    + "); pick another host address or port");
        }
        forwardChannels.add(bound.channel());
        forwardAddresses.add((InetSocketAddress) bound.channel().localAddress());
    }

    /** The host addresses the forwards listen on, in config order (tells which port a HOSTPORT of 0 got). */
    public List<InetSocketAddress> forwardAddresses() {
        return List.copyOf(forwardAddresses);
    }

    public NetConfig.User config() {
        return config;
    }

    @ChannelHandler.Sharable
    private final class Accept extends ChannelInboundHandlerAdapter {
        private final NetConfig.HostForward forward;

        Accept(NetConfig.HostForward forward) {
            this.forward = forward;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            ctx.pipeline().remove(this);
            stack.guarded("a forwarded TCP port", () -> stack.tcp.acceptForwarded(ctx.channel(), forward));
        }
    }

    /**
     * From the guest: segments of any size are just bytes to a terminating stack. To the guest: TSO4 lets one
     * frame carry up to 64 KB of a connection. A constant, so a device can be built before the stack starts.
     */
    public static final NetCapabilities CAPABILITIES = new NetCapabilities(
            EnumSet.of(NetOffload.CSUM, NetOffload.TSO4, NetOffload.USO),
            EnumSet.of(NetOffload.CSUM, NetOffload.TSO4),
            1);

    @Override
    public NetCapabilities capabilities() {
        return CAPABILITIES;
    }

    @Override
    public synchronized List<NetQueue> activate(NetLinkConfig config, List<? extends GuestPort> ports) {
        if (closed) throw new IllegalStateException("user network is closed");
        if (ports.size() != 1)
            throw new IllegalArgumentException("user network serves 1 queue pair, " + ports.size() + " asked");
        if (!capabilities().toGuest().containsAll(config.toGuest())) {
            throw new IllegalArgumentException(
                    "offloads " + config.toGuest() + " exceed " + capabilities().toGuest());
        }
        deactivate();
        Queue q = new Queue(config.vnetHeaderLength(), ports.get(0));
        onLoop(() -> stack.link.attach(config, q.port));
        active = q;
        return List.of(q);
    }

    @Override
    public synchronized void deactivate() {
        Queue q = active;
        if (q == null) return;
        q.stopped = true;
        active = null;
        onLoop(stack::detach);
    }

    private void onLoop(Runnable r) {
        try {
            stack.loop.submit(r).get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException e) {
            throw new IllegalStateException("user network: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("user network: its event loop did not answer within 10 s");
        }
    }

    @Override
    public long droppedFrames() {
        return stack.dropped();
    }

    @Override
    public Optional<FlowStats> flowStats() {
        return Optional.of(stack.counters.snapshot());
    }

    /** TCP connections, UDP flows and forwarded ICMP echo identifiers open now, for tests and statistics. */
    public int[] flowCounts() {
        int[] counts = new int[3];
        onLoop(() -> {
            counts[0] = stack.tcp.connectionCount();
            counts[1] = stack.udp.flowCount();
            counts[2] = stack.icmp.flowCount();
        });
        return counts;
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        deactivate();
        closed = true;
        for (Channel c : forwardChannels) c.close();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
    }

    private final class Queue implements NetQueue {
        final int hdrLen;
        final GuestPort port;
        final ConcurrentLinkedQueue<ByteBuf> inbox = new ConcurrentLinkedQueue<>();
        final AtomicInteger inboxCount = new AtomicInteger();
        final AtomicBoolean rxKick = new AtomicBoolean();
        final Runnable drain = this::drain;
        final Runnable rxDrain = this::rxDrain;
        volatile boolean txWanted;
        volatile boolean stopped;

        Queue(int hdrLen, GuestPort port) {
            this.hdrLen = hdrLen;
            this.port = port;
        }

        @Override
        public TxResult transmit(MemorySegment frame) {
            long len = frame.byteSize();
            if (stopped || len < hdrLen + 14 || len > hdrLen + MAX_FRAME) {
                stack.drop("frame of " + len + " bytes");
                return TxResult.DROPPED;
            }
            if (inboxCount.get() >= TX_LIMIT) {
                txWanted = true;
                if (inboxCount.get() >= TX_LIMIT) return TxResult.BUSY; // else the loop drained meanwhile
            }
            int keep = EthernetStage.usefulLength(frame, hdrLen);
            ByteBuf b = stack.alloc.directBuffer(keep, keep);
            b.writeBytes(frame.asSlice(0, keep).asByteBuffer());
            inbox.add(b);
            if (inboxCount.getAndIncrement() == 0) stack.loop.execute(drain);
            return TxResult.SENT;
        }

        private void drain() {
            for (int n = 1; ; n++) {
                ByteBuf b = inbox.poll();
                if (stopped) b.release();
                else stack.fromGuest(b);
                if (inboxCount.decrementAndGet() == 0) break;
                if (n == DRAIN_BATCH) { // let host channels and timers run between batches
                    stack.loop.execute(drain);
                    break;
                }
            }
            stack.endOfBatch();
            if (txWanted && inboxCount.get() < TX_LIMIT / 2) {
                txWanted = false;
                port.txReady();
            }
        }

        @Override
        public void rxReady() {
            if (rxKick.compareAndSet(false, true)) stack.loop.execute(rxDrain);
        }

        private void rxDrain() {
            rxKick.set(false);
            if (!stopped) stack.guarded("the guest's receive buffers", stack.link::rxReady);
        }
    }
}
