package dev.jvmm.devices.net.user;

import dev.jvmm.kvm.Errno;
import io.netty.buffer.ByteBuf;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * ICMP: echo requests to the gateway and DNS addresses are answered here; echo to other allowed hosts leaves
 * through host ping sockets ({@link EchoHost}), one per guest echo identifier, and the replies come back with the
 * guest's identifier. Where the host refuses ping sockets, or the policy refuses the destination, the guest gets
 * "administratively prohibited" at once (a ping that fails fast, rather than one that waits for every reply).
 */
final class IcmpStage {
    private static final Logger LOG = LoggerFactory.getLogger(IcmpStage.class);
    /** One line per process, however many NICs meet a host without ping sockets. */
    private static final AtomicBoolean UNAVAILABLE_LOGGED = new AtomicBoolean();

    static final int ECHO_REPLY = 0, UNREACHABLE = 3, ECHO_REQUEST = 8;
    static final int CODE_NET_UNREACHABLE = 0,
            CODE_HOST_UNREACHABLE = 1,
            CODE_PORT_UNREACHABLE = 3,
            CODE_ADMIN_PROHIBITED = 13;
    static final int MAX_FLOWS = 32, MAX_PEERS_PER_FLOW = 16;
    static final long IDLE_NANOS = 30_000_000_000L;
    /** After the host refused a ping socket, how long to answer "prohibited" before asking it again. */
    static final long RETRY_NANOS = 10_000_000_000L;

    private static final int MAX_QUOTE = 28;
    /** An echo reply must fit the guest's 1500-byte MTU: nothing on this link fragments. */
    private static final int MAX_REPLY = 1500 - Ipv4Stage.HEADER;

    private final UserNetStack stack;
    private final EchoHost.Factory hosts;
    private final EchoFlows flows;
    private EchoHost host;
    private long refusedUntil;
    private boolean refusedOnce;

    IcmpStage(UserNetStack stack, EchoHost.Factory hosts) {
        this.stack = stack;
        this.hosts = hosts;
        this.flows = new EchoFlows(MAX_FLOWS, MAX_PEERS_PER_FLOW, IDLE_NANOS, f -> host.close(f.socket));
    }

    int flowCount() {
        return flows.size();
    }

    void receive(Packet p) {
        ByteBuf b = p.buf;
        if (p.l4Length < 8 || !Inet.verifies(Inet.sum(b, p.l4Offset, p.l4Length))) {
            stack.drop("malformed ICMP");
            return;
        }
        int type = b.getUnsignedByte(p.l4Offset);
        if (type != ECHO_REQUEST) return;
        if (!stack.isVirtualHost(p.dst)) {
            forward(p);
            return;
        }
        if (p.l4Length > MAX_REPLY) {
            stack.drop("echo request of " + p.l4Length + " bytes: its reply would exceed the guest MTU");
            return;
        }
        ByteBuf r = stack.ipv4.newPacket(p.l4Length);
        r.writeBytes(b, p.l4Offset, p.l4Length);
        int l4 = stack.link.headroom() + Ipv4Stage.HEADER;
        r.setByte(l4, ECHO_REPLY);
        stack.ipv4.sendIcmp(r, p.dst, p.src);
    }

    private void forward(Packet p) {
        ByteBuf b = p.buf;
        if (!stack.policy.echoAllowed(p.dst)) {
            stack.counters.increment(FlowCounters.Counter.NAT_REFUSED);
            unreachable(p, CODE_ADMIN_PROHIBITED);
            return;
        }
        if (b.getUnsignedByte(p.l4Offset + 1) != 0) {
            stack.drop("ICMP echo with code "
                    + b.getUnsignedByte(p.l4Offset + 1)); // the host's ping socket takes only code 0
            return;
        }
        long now = stack.now();
        int guestId = b.getUnsignedShort(p.l4Offset + 4);
        EchoFlows.Flow flow = flows.get(p.src, guestId);
        if (flow == null) {
            if (refusedOnce && now - refusedUntil < 0) {
                unreachable(p, CODE_ADMIN_PROHIBITED);
                return;
            }
            if (host == null) host = hosts.create(this::fromHostThread);
            long socket = host.open();
            if (socket < 0) {
                refused((int) -socket, now);
                unreachable(p, CODE_ADMIN_PROHIBITED);
                return;
            }
            flow = flows.add(p.src, guestId, socket, now);
        }
        if (!flow.addPeer(p.dst)) {
            stack.drop("ICMP echo identifier " + guestId + " used for too many destinations");
            return;
        }
        flow.lastUsed = now;
        int r = host.send(flow.socket, p.dst, b.slice(p.l4Offset, p.l4Length));
        if (r >= 0) return;
        switch (-r) {
            case Errno.ENETUNREACH -> unreachable(p, CODE_NET_UNREACHABLE);
            case Errno.EHOSTUNREACH -> unreachable(p, CODE_HOST_UNREACHABLE);
            case Errno.EACCES, Errno.EPERM ->
                unreachable(p, CODE_ADMIN_PROHIBITED); // e.g. a broadcast address, a firewall
            default ->
                stack.drop("ICMP echo to " + Inet.text(p.dst) + ": "
                        + Errno.name(-r)); // EAGAIN and the like: lost, as on a busy link
        }
    }

    private void refused(int errno, long now) {
        refusedOnce = true;
        refusedUntil = now + RETRY_NANOS;
        if (UNAVAILABLE_LOGGED.compareAndSet(false, true)) {
            String why = errno == Errno.EACCES
                    ? "this process's group is outside net.ipv4.ping_group_range (" + pingGroupRange()
                            + "); to allow it: sysctl -w net.ipv4.ping_group_range='0 2147483647'"
                    : "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) failed with " + Errno.name(errno);
            LOG.info(
                    "user network: the guest's ping reaches only 10.0.2.2 and 10.0.2.3:"
                            + " the host refuses unprivileged ping sockets ({})",
                    why);
        }
    }

    private static String pingGroupRange() {
        try {
            // Read line-wise: Files.readString trusts the size /proc reports and stops early.
            return String.join(
                            " ",
                            java.nio.file.Files.readAllLines(
                                    java.nio.file.Path.of("/proc/sys/net/ipv4/ping_group_range")))
                    .trim()
                    .replace('\t', ' ');
        } catch (java.io.IOException | RuntimeException e) {
            return "unreadable";
        }
    }

    /** Called by the echo host on its thread: moves the reply onto the stack's thread. */
    private void fromHostThread(long socket, int src, ByteBuf icmp) {
        try {
            stack.loop.execute(() -> stack.guarded("an ICMP echo reply", () -> fromHost(socket, src, icmp)));
        } catch (RejectedExecutionException e) {
            icmp.release();
        }
    }

    /** A reply a host socket received: to the guest, as from {@code src}, with the guest's own identifier. */
    void fromHost(long socket, int src, ByteBuf icmp) {
        try {
            EchoFlows.Flow flow = flows.bySocket(socket);
            if (flow == null || !stack.link.attached()) return;
            int n = icmp.readableBytes(), o = icmp.readerIndex();
            if (n < 8 || icmp.getUnsignedByte(o) != ECHO_REPLY || icmp.getUnsignedByte(o + 1) != 0) {
                stack.drop("host ping socket returned something other than an echo reply");
                return;
            }
            if (!flow.hasPeer(src)) { // a reply from an address the guest did not ping: a NAT drops it
                stack.drop("echo reply from " + Inet.text(src) + ", which the guest did not ping");
                return;
            }
            if (n > MAX_REPLY) {
                stack.drop("echo reply of " + n + " bytes exceeds the guest MTU");
                return;
            }
            flow.lastUsed = stack.now();
            ByteBuf r = stack.ipv4.newPacket(n);
            int l4 = r.writerIndex();
            r.writeBytes(icmp, o, n);
            r.setShort(
                    l4 + 4,
                    flow.guestId); // the host's socket had its own identifier; sequence and data pass as they are
            stack.ipv4.sendIcmp(r, src, flow.guestIp);
        } finally {
            icmp.release();
        }
    }

    void tick(long now) {
        flows.expire(now);
    }

    /** Closes every flow and the host's sockets (on detach: a new guest driver starts afresh). */
    void closeAll() {
        flows.clear();
        if (host != null) host.close();
        host = null;
    }

    /** Destination unreachable for the packet in {@code p}, quoting its IP header and first 8 bytes. */
    void unreachable(Packet p, int code) {
        int quote = Math.min(p.ipTotalLength, p.ipHeaderLength + 8);
        ByteBuf r = stack.ipv4.newPacket(8 + Math.max(quote, MAX_QUOTE));
        r.writeByte(UNREACHABLE).writeByte(code).writeShort(0).writeInt(0);
        r.writeBytes(p.buf, p.ipOffset, quote);
        stack.ipv4.sendIcmp(r, p.dst, p.src);
    }
}
