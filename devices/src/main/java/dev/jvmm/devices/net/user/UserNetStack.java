package dev.jvmm.devices.net.user;

import dev.jvmm.devices.net.NetConfig;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.EventLoop;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The user-mode network as stages (Ethernet, ARP, IPv4, ICMP/UDP/TCP), all confined to one Netty event loop:
 * guest frames, host channel events and timers are handled on that thread, so no stage needs a lock.
 */
final class UserNetStack {
    private static final Logger LOG = LoggerFactory.getLogger(UserNetStack.class);
    private static final int EPHEMERAL_FIRST = 49152, EPHEMERAL_COUNT = 65536 - EPHEMERAL_FIRST;

    final EventLoop loop;
    final Transport transport;
    final ByteBufAllocator alloc;
    final Tuning tuning;
    private final LongSupplier clock;
    final GuestDataBudget budget;
    /** Host -> guest: what TCP connections hold until the guest acknowledges it (the same limit as budget). */
    final HostDataHeld fromHost;

    final NatPolicy policy;
    final EthernetStage link;
    final ArpStage arp = new ArpStage(this);
    final Ipv4Stage ipv4 = new Ipv4Stage(this);
    final IcmpStage icmp;
    final UdpStage udp;
    final TcpStage tcp;
    private final Packet packet = new Packet();
    private final AtomicLong dropped = new AtomicLong();
    /** Connections, flows, refusals and bytes, for the statistics ({@link FlowCounters}: this thread writes). */
    final FlowCounters counters = new FlowCounters();

    private final Set<Integer> portsInUse = new HashSet<>();
    private final RefusalLog refusals = new RefusalLog(LOG::warn);
    private int nextPort;
    private boolean failureReported;

    UserNetStack(EventLoop loop, Tuning tuning, NatPolicy policy, EchoHost.Factory echoHosts) {
        this.loop = loop;
        this.tuning = tuning;
        this.clock = tuning.clock();
        this.transport = tuning.transport();
        this.alloc = tuning.alloc();
        this.budget = new GuestDataBudget(tuning.budgetBytes());
        this.fromHost = new HostDataHeld(tuning.budgetBytes());
        this.policy = policy;
        this.link = new EthernetStage(this, alloc);
        this.udp = new UdpStage(this);
        this.tcp = new TcpStage(this);
        this.icmp = new IcmpStage(this, echoHosts);
    }

    /** The stack's time in nanoseconds ({@link Tuning#clock()}): every timer and idle expiry reads it. */
    long now() {
        return clock.getAsLong();
    }

    long dropped() {
        return dropped.get();
    }

    void drop(String why) {
        dropped.incrementAndGet();
        LOG.trace("dropped: {}", why);
    }

    /** The addresses the stack itself answers for (ARP, ping): the gateway, the DNS forwarder, guestfwd addresses. */
    boolean isVirtualHost(int ip) {
        return ip == Inet.GATEWAY || ip == Inet.DNS || policy.isGuestForwardAddress(ip);
    }

    /** A guest flow the policy refused: at most one line for it, naming the option that would allow it. */
    void refused(NetConfig.Protocol protocol, int dst, int port) {
        counters.increment(FlowCounters.Counter.NAT_REFUSED);
        long destination = ((long) protocol.ordinal() << 48) | ((dst & 0xffffffffL) << 16) | port;
        refusals.refused(destination, now(), () -> NatPolicy.message(policy.refusal(dst, port), protocol, dst, port));
    }

    /** One frame from the guest; the stack owns {@code frame} and releases it. */
    void fromGuest(ByteBuf frame) {
        try {
            if (link.attached()) link.receive(frame, packet);
        } catch (IndexOutOfBoundsException e) {
            drop("frame shorter than its headers say"); // every length is checked first; this is the backstop
        } catch (RuntimeException | Error e) {
            failed("a guest frame", e);
        } finally {
            frame.release();
        }
    }

    /** The last of a batch of guest frames was handled: what they wrote to host sockets goes out now. */
    void endOfBatch() {
        guarded("a guest frame", tcp::endOfBatch);
    }

    void tick() {
        try {
            long now = now();
            tcp.tick(now);
            udp.tick(now);
            icmp.tick(now);
        } catch (RuntimeException | Error e) { // thrown out of a periodic task, it would end every timer for good
            failed("timers", e);
        }
    }

    /**
     * A bug or an Error (OutOfMemoryError) in the stack's code at one of its entry points (a guest frame, a timer, a
     * host channel's event): the device hears of it once per activation (it logs it and enters NEEDS_RESET; its
     * reset starts the stack afresh) instead of Netty logging a warning and the stack going on half-updated.
     */
    void failed(String where, Throwable cause) {
        if (failureReported) return;
        failureReported = true;
        if (link.attached()) link.backendFailed("user network: " + where, cause);
        else LOG.error("user network: {} failed with no guest attached: {}", where, cause.toString(), cause);
    }

    /** Runs {@code r} as an entry point of the stack's thread (a channel listener, a task): see {@link #failed}. */
    void guarded(String where, Runnable r) {
        try {
            r.run();
        } catch (RuntimeException | Error e) {
            failed(where, e);
        }
    }

    /** A free port on 10.0.2.2 for a forwarded flow, or -1 if all are taken. */
    int allocatePort() {
        for (int i = 0; i < EPHEMERAL_COUNT; i++) {
            int port = EPHEMERAL_FIRST + (nextPort++ % EPHEMERAL_COUNT);
            if (portsInUse.add(port)) return port;
        }
        return -1;
    }

    void releasePort(int port) {
        portsInUse.remove(port);
    }

    void detach() {
        tcp.closeAll();
        udp.closeAll();
        icmp.closeAll();
        link.detach();
        failureReported = false;
    }
}
