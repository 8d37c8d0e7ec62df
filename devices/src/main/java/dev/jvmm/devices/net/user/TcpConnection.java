package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.user.TcpStage.ACK;
import static dev.jvmm.devices.net.user.TcpStage.FIN;
import static dev.jvmm.devices.net.user.TcpStage.PSH;
import static dev.jvmm.devices.net.user.TcpStage.RST;
import static dev.jvmm.devices.net.user.TcpStage.SYN;

import dev.jvmm.devices.net.VirtioNetHeader;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetSocketAddress;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * One TCP connection, terminated here: the guest side is a TCP state machine (handshake, windows, retransmission,
 * FIN and RST, half-close), the host side a Netty channel. Bytes from the host wait in {@link #unacked} until
 * the guest acknowledges them; the host channel stops being read while that holds more than {@link #SEND_LIMIT},
 * and the window offered to the guest is what the host channel can still buffer.
 */
final class TcpConnection extends ChannelInboundHandlerAdapter {
    enum State {
        CONNECTING,
        SYN_SENT,
        SYN_RCVD,
        ESTABLISHED,
        TIME_WAIT,
        CLOSED
    }

    static final int MSS = 1460, RCV_WSCALE = 7;
    private static final int SEND_LIMIT = 4 << 20;
    static final int HOST_HIGH_WATER = 4 << 20, HOST_LOW_WATER = 1 << 20;
    private static final long RTO_NANOS = 200_000_000L, TIME_WAIT_NANOS = 2_000_000_000L;
    /** How long a closed connection's last guest bytes may wait for a host peer that does not read. */
    private static final long HOST_DRAIN_SECONDS = 60;

    private static final int MAX_BACKOFF = 10, MAX_SYN_RETRIES = 6;
    private static final int GSO_PAYLOAD = 64000;

    final TcpStage tcp;
    final long key;
    final int guestIp, guestPort, remoteIp, remotePort;
    int gatewayPort = -1;
    private final UserNetStack stack;
    Channel channel;
    State state;

    // To the guest.
    private int iss, sndUna, sndNxt, sndMax;
    private long sndWnd;
    private int sndWscale, mss = 536;
    private boolean windowScaling;
    private CompositeByteBuf unacked;
    /** Sequence number of unacked's first readable byte. */
    private int bufSeq;

    private boolean finQueued, finAcked;
    // From the guest.
    private int rcvNxt, rcvAdvEdge, rcvWscale;
    /** The ACK number of the last segment sent to the guest: a batch's end sends none if it is rcvNxt already. */
    private int ackSent;
    /** Host bytes came in the current read loop: {@link #channelReadComplete} sends them. */
    private boolean readSinceOutput;
    /** Listed in {@link TcpStage#flushLater}: bytes written to the host channel wait for the batch's end. */
    boolean flushPending;

    private boolean guestFin;
    // Timers (the stack's clock, UserNetStack.now(); 0 = not armed).
    private long rtoDeadline, closeDeadline;
    private int backoff, dupAcks;
    private boolean windowWasSmall;
    /** When a segment from the guest or bytes from the host last came (UserNetStack.now()): idle expiry. */
    private long lastActivity;
    /** For the counters: both ends were connected (opened); the connection has been counted closed or refused. */
    private boolean opened, counted;

    TcpConnection(TcpStage tcp, long key, int guestIp, int guestPort, int remoteIp, int remotePort) {
        this.tcp = tcp;
        this.stack = tcp.stack;
        this.key = key;
        this.guestIp = guestIp;
        this.guestPort = guestPort;
        this.remoteIp = remoteIp;
        this.remotePort = remotePort;
        this.iss = ThreadLocalRandom.current().nextInt();
        this.sndUna = sndNxt = sndMax = iss;
        this.bufSeq = iss + 1;
        this.unacked = stack.alloc.compositeDirectBuffer(1024);
        this.lastActivity = stack.now();
    }

    private static boolean lt(int a, int b) {
        return a - b < 0;
    }

    private static boolean le(int a, int b) {
        return a - b <= 0;
    }

    // ---- opening ----

    /** A guest SYN the policy allows: connect on the host first, answer SYN-ACK (or RST) when that resolves. */
    void connectFromGuest(TcpStage.Segment s, InetSocketAddress target) {
        state = State.CONNECTING;
        takeSynOptions(s, true);
        rcvNxt = s.seq + 1;
        sndWnd = s.window;
        Bootstrap b = new Bootstrap()
                .group(stack.loop)
                .channel(stack.transport.stream())
                .option(ChannelOption.AUTO_READ, false)
                .option(ChannelOption.ALLOCATOR, stack.alloc) // host bytes held for the guest count with the stack's
                .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000)
                .option(
                        ChannelOption.WRITE_BUFFER_WATER_MARK,
                        new WriteBufferWaterMark(HOST_LOW_WATER, HOST_HIGH_WATER))
                .handler(this);
        ChannelFuture f = b.connect(target);
        channel = f.channel();
        f.addListener(done -> stack.guarded("a TCP connect", () -> connected(done.isSuccess())));
    }

    private void connected(boolean success) {
        if (state != State.CONNECTING) {
            return;
        }
        if (!success) {
            tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, 0, rcvNxt, RST | ACK, 0);
            finish();
            return;
        }
        state = State.SYN_RCVD;
        sendSyn();
    }

    /** A host client reached a forwarded port: SYN the guest; the host channel is read once the guest answers. */
    void connectToGuest(Channel child) {
        channel = child;
        child.config().setAutoRead(false);
        child.config().setOption(ChannelOption.ALLOW_HALF_CLOSURE, true);
        child.config().setWriteBufferWaterMark(new WriteBufferWaterMark(HOST_LOW_WATER, HOST_HIGH_WATER));
        child.pipeline().addLast(this);
        state = State.SYN_SENT;
        windowScaling = true; // offered; confirmed by the guest's SYN-ACK
        sendSyn();
    }

    private void takeSynOptions(TcpStage.Segment s, boolean weOfferScaling) {
        if (s.mss > 0) mss = Math.max(64, Math.min(s.mss, 65495));
        windowScaling = weOfferScaling && s.wscale >= 0;
        sndWscale = windowScaling ? Math.min(s.wscale, 14) : 0;
        rcvWscale = windowScaling ? RCV_WSCALE : 0;
    }

    private void sendSyn() {
        boolean synAck = state == State.SYN_RCVD;
        ByteBuf b = stack.ipv4.newPacket(TcpStage.HEADER + 8);
        int window = synAck ? Math.min(receiveWindow(), 65535) : 65535;
        TcpStage.writeHeader(
                b,
                remotePort,
                guestPort,
                iss,
                synAck ? rcvNxt : 0,
                synAck ? SYN | ACK : SYN,
                window,
                TcpStage.HEADER + 8);
        b.writeByte(2).writeByte(4).writeShort(MSS);
        if (windowScaling) b.writeByte(1).writeByte(3).writeByte(3).writeByte(RCV_WSCALE);
        else b.writeInt(0x01010101);
        if (synAck) rcvAdvEdge = rcvNxt + window;
        stack.ipv4.sendL4(b, Inet.PROTO_TCP, remoteIp, guestIp, 0, 0, TcpStage.HEADER + 8);
        sndNxt = sndMax = iss + 1;
        armRto();
    }

    // ---- segments from the guest ----

    void segment(Packet p, TcpStage.Segment s) {
        lastActivity = stack.now();
        switch (state) {
            case CONNECTING -> {
                if ((s.flags & RST) != 0) abortHost();
                return; // a retransmitted SYN: the answer comes when the host connect resolves
            }
            case SYN_SENT -> {
                synSent(s);
                return;
            }
            case TIME_WAIT -> {
                if ((s.flags & RST) != 0) finish();
                else if ((s.flags & FIN) != 0) sendAck();
                return;
            }
            case CLOSED -> {
                return;
            }
            default -> {}
        }
        if (state == State.SYN_RCVD && (s.flags & (SYN | ACK)) == SYN) {
            if (s.seq + 1 == rcvNxt) sendSyn(); // our SYN-ACK was lost
            return;
        }
        if ((s.flags & RST) != 0) {
            // Accept a reset whose sequence lies in the window (RFC 793; a blind attacker has to guess it).
            if (le(rcvNxt, s.seq) && le(s.seq, rcvNxt + Math.max(receiveWindow(), 1))) abortHost();
            return;
        }
        if ((s.flags & SYN) != 0) {
            sendAck(); // challenge ACK (RFC 5961): a SYN on an open connection
            return;
        }
        if ((s.flags & ACK) == 0) return;
        if (state == State.SYN_RCVD) {
            if (s.ack != iss + 1) {
                tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, s.ack, 0, RST, 0);
                return;
            }
            established();
        }
        if (lt(sndMax, s.ack)) {
            sendAck(); // acknowledges what was never sent
            return;
        }
        long window = windowScaling ? (long) s.window << sndWscale : s.window;
        if (lt(sndUna, s.ack)) {
            acked(s.ack);
        } else if (s.ack == sndUna
                && s.payloadLength == 0
                && (s.flags & FIN) == 0
                && sndUna != sndMax
                && window == sndWnd) {
            if (++dupAcks == 3) retransmit();
        }
        sndWnd = window;
        if (s.payloadLength > 0 || (s.flags & FIN) != 0) receiveData(p, s);
        output();
        maybeClose();
    }

    private void synSent(TcpStage.Segment s) {
        boolean ackOk = (s.flags & ACK) != 0 && s.ack == iss + 1;
        if ((s.flags & ACK) != 0 && !ackOk) {
            if ((s.flags & RST) == 0) tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, s.ack, 0, RST, 0);
            return;
        }
        if ((s.flags & RST) != 0) {
            if (ackOk) abortHost(); // the guest refused: the host client sees its connection reset
            return;
        }
        if ((s.flags & SYN) == 0 || !ackOk) return;
        takeSynOptions(s, true);
        rcvNxt = s.seq + 1;
        sndUna = s.ack;
        sndWnd = s.window;
        disarmRto();
        established();
        sendAck();
        output(); // host bytes (and FIN) that came while the handshake ran
    }

    /**
     * The handshake is done. The host channel may already have delivered bytes and EOF (epoll reads on RDHUP even
     * with auto-read off): they wait in {@link #unacked} and go out now; reading resumes only if EOF was not seen.
     */
    private void established() {
        state = State.ESTABLISHED;
        opened = true;
        stack.counters.increment(FlowCounters.Counter.TCP_OPENED);
        resumeHostReading();
    }

    /**
     * Reads the host socket again where nothing holds it back: EOF seen, this connection's own limit (until half of
     * it is acknowledged) or the network's ({@link HostDataHeld}, which calls this again once it has room).
     */
    void resumeHostReading() {
        if (finQueued
                || channel == null
                || !opened
                || state == State.CLOSED
                || channel.config().isAutoRead()) return;
        if (unacked.readableBytes() >= SEND_LIMIT / 2) return; // acked() resumes it
        if (stack.fromHost.full()) stack.fromHost.waitForRoom(this);
        else channel.config().setAutoRead(true);
    }

    private void acked(int ack) {
        int dataEnd = bufSeq + unacked.readableBytes();
        int n = (lt(ack, dataEnd) ? ack : dataEnd) - bufSeq;
        if (n > 0) {
            unacked.skipBytes(n);
            unacked.discardReadComponents();
            bufSeq += n;
            stack.fromHost.release(n);
        }
        if (finQueued && ack == dataEnd + 1) finAcked = true;
        sndUna = ack;
        if (lt(sndNxt, ack)) sndNxt = ack;
        dupAcks = 0;
        backoff = 0;
        if (sndUna == sndMax) disarmRto();
        else armRto();
        resumeHostReading();
    }

    private void receiveData(Packet p, TcpStage.Segment s) {
        if (guestFin) {
            sendAck();
            return;
        }
        int off = s.payloadOffset, len = s.payloadLength;
        boolean fin = (s.flags & FIN) != 0;
        int seq = s.seq;
        if (lt(seq, rcvNxt)) {
            int trim = rcvNxt - seq;
            if (trim > len) { // all of it seen before (a retransmission)
                sendAck();
                return;
            }
            off += trim;
            len -= trim;
        } else if (seq != rcvNxt) {
            sendAck(); // out of order: dropped; the duplicate ACK makes the guest resend
            return;
        }
        int allowed = Math.max(0, rcvAdvEdge - rcvNxt);
        if (len > allowed) { // beyond the window we offered: not taken, not acknowledged
            len = allowed;
            fin = false;
        }
        if (len > 0 && channel.isActive()) {
            int cost = p.holds(len) + GuestDataBudget.ENTRY_COST;
            if (stack.budget.tryTake(cost)) {
                channel.write(p.payload(off, len, stack.alloc)).addListener(stack.budget.releaseWhenDone(cost));
                stack.counters.add(FlowCounters.Counter.TCP_TX_BYTES, len);
            } else { // the network's budget is spent: not taken, not acknowledged; the guest sends it again later
                len = 0;
                fin = false;
            }
        }
        rcvNxt += len;
        if (fin) {
            rcvNxt += 1;
            guestFin = true;
            // Half-close: the host's peer sees EOF once everything before it is written.
            channel.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(f -> {
                if (channel.isActive() && channel instanceof DuplexChannel d) d.shutdownOutput();
            });
        } else if (len > 0) {
            tcp.flushLater(this); // one flush (a write(2)) and one ACK per batch of guest frames, not per segment
            return;
        }
        sendAck();
    }

    /** The end of a batch of guest frames: writes what they carried to the host, then ACKs it if no segment did. */
    void flushAndAck() {
        if (state != State.ESTABLISHED) return;
        if (channel.isActive()) channel.flush();
        if (ackSent != rcvNxt) sendAck();
    }

    // ---- data to the guest ----

    /** Sends what the guest's window and receive backlog allow, then interrupts the guest once for all of it. */
    void output() {
        if (state != State.ESTABLISHED) return;
        try {
            sendAllowed();
        } finally {
            stack.link.interruptGuest();
        }
    }

    private void sendAllowed() {
        int segmentMax = stack.link.segmentationOffload() ? Math.max(mss, GSO_PAYLOAD / mss * mss) : mss;
        while (stack.link.hasRoom()) {
            int dataEnd = bufSeq + unacked.readableBytes();
            int windowEnd = sndUna + (int) Math.min(sndWnd, 1L << 30);
            if (lt(sndNxt, dataEnd)) {
                int len = Math.min(Math.min(dataEnd - sndNxt, windowEnd - sndNxt), segmentMax);
                if (len <= 0) {
                    if (rtoDeadline == 0) armRto(); // zero window: the timer probes it
                    return;
                }
                boolean fin = finQueued && sndNxt + len == dataEnd;
                if (!sendData(sndNxt, len, fin)) return; // the guest's buffers are full: rxReady resumes output
                sndNxt += len + (fin ? 1 : 0);
            } else if (finQueued && sndNxt == dataEnd) {
                sendSegment(sndNxt, FIN | ACK);
                sndNxt += 1;
            } else {
                return;
            }
            if (lt(sndMax, sndNxt)) sndMax = sndNxt;
            if (rtoDeadline == 0) armRto();
        }
    }

    /**
     * Sends {@code len} bytes from {@link #unacked}: only the headers are built here, the payload goes from the
     * host socket's buffers straight into the guest's. False if the guest has no room for it now.
     */
    private boolean sendData(int seq, int len, boolean fin) {
        ByteBuf b = stack.ipv4.newPacket(TcpStage.HEADER);
        int window = advertise();
        TcpStage.writeHeader(
                b, remotePort, guestPort, seq, rcvNxt, ACK | PSH | (fin ? FIN : 0), window, TcpStage.HEADER);
        boolean gso = len > mss;
        boolean sent = stack.ipv4.sendTcpGather(
                b,
                remoteIp,
                guestIp,
                gso ? VirtioNetHeader.GSO_TCPV4 : 0,
                gso ? mss : 0,
                unacked,
                unacked.readerIndex() + (seq - bufSeq),
                len);
        if (sent) ackSent = rcvNxt;
        return sent;
    }

    private void sendSegment(int seq, int flags) {
        ackSent = rcvNxt;
        tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, seq, rcvNxt, flags, advertise());
    }

    void sendAck() {
        sendSegment(sndNxt, ACK);
    }

    /** The window field for the next segment; moves the right edge we promised, never backwards. */
    private int advertise() {
        int field = Math.min(receiveWindow() >>> rcvWscale, 65535);
        int edge = rcvNxt + (field << rcvWscale);
        if (lt(rcvAdvEdge, edge)) rcvAdvEdge = edge;
        windowWasSmall = (field << rcvWscale) < smallWindow();
        return field;
    }

    /** A window below this is worth an update once it has doubled (a host socket drained, the budget freed). */
    private long smallWindow() {
        return Math.min(HOST_HIGH_WATER / 4, stack.budget.limit() / 8);
    }

    /** What the host channel can still take before it counts as unwritable, and the network's budget still has. */
    private int receiveWindow() {
        if (channel == null || !channel.isActive()) return 65535;
        long room = Math.min(channel.bytesBeforeUnwritable(), stack.budget.room());
        return (int) Math.min(room, (long) 65535 << rcvWscale);
    }

    // ---- timers ----

    private void armRto() {
        long rto = RTO_NANOS << Math.min(backoff, 7);
        rtoDeadline = stack.now() + rto;
        if (rtoDeadline == 0) rtoDeadline = 1;
    }

    private void disarmRto() {
        rtoDeadline = 0;
    }

    void tick(long now) {
        if (state == State.TIME_WAIT || state == State.CLOSED) {
            if (closeDeadline != 0 && now - closeDeadline >= 0) finish();
            return;
        }
        if (state == State.ESTABLISHED && now - lastActivity > tcp.idleNanos) {
            // A NAT would forget it; here both ends hear of it at once and its memory and socket are freed.
            abortBoth();
            return;
        }
        if (state == State.ESTABLISHED && windowWasSmall && receiveWindow() >= 2 * smallWindow())
            sendAck(); // window update
        if (rtoDeadline == 0 || now - rtoDeadline < 0) return;
        switch (state) {
            case SYN_SENT, SYN_RCVD -> {
                if (++backoff > MAX_SYN_RETRIES) {
                    abortBoth();
                    return;
                }
                sendSyn();
            }
            case ESTABLISHED -> {
                if (sndWnd == 0 && sndUna == sndNxt && unacked.readableBytes() > 0) {
                    sendData(sndUna, 1, false); // zero-window probe: the answer carries the window
                    stack.link.interruptGuest();
                    if (lt(sndMax, sndUna + 1)) sndMax = sndUna + 1;
                    backoff = Math.min(backoff + 1, 6);
                    armRto();
                    return;
                }
                if (sndUna == sndMax) { // nothing in flight (the guest's rx backlog was full): just try again
                    disarmRto();
                    output();
                    return;
                }
                if (++backoff > MAX_BACKOFF) {
                    abortBoth();
                    return;
                }
                retransmit();
                armRto();
            }
            default -> {}
        }
    }

    /** Go back to the oldest unacknowledged byte and send again. */
    private void retransmit() {
        sndNxt = sndUna;
        dupAcks = 0;
        output();
    }

    // ---- host channel events ----

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        ByteBuf data = (ByteBuf) msg;
        // Bytes read before the guest finished the handshake are kept: output() sends them once it has.
        if (finQueued || state == State.TIME_WAIT || state == State.CLOSED) {
            data.release();
            return;
        }
        lastActivity = stack.now();
        stack.counters.add(FlowCounters.Counter.TCP_RX_BYTES, data.readableBytes());
        stack.fromHost.add(data.readableBytes());
        unacked.addComponent(true, data);
        if (unacked.readableBytes() > SEND_LIMIT) {
            ctx.channel().config().setAutoRead(false);
        } else if (stack.fromHost.full()) {
            ctx.channel().config().setAutoRead(false);
            stack.fromHost.waitForRoom(this);
        }
        readSinceOutput = true;
    }

    /**
     * The end of one read loop (up to 16 reads of up to 64 KiB): what it brought goes out now, in frames of
     * {@link #GSO_PAYLOAD}, rather than a full frame and a short tail after every read.
     */
    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (!readSinceOutput) return;
        readSinceOutput = false;
        output();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof ChannelInputShutdownEvent && !finQueued && state != State.CLOSED) {
            finQueued = true;
            ctx.channel().config().setAutoRead(false);
            output();
            maybeClose();
        }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (ctx.channel().isWritable() && state == State.ESTABLISHED) sendAck(); // the window opened again
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        // Netty routes here what this connection's own handlers threw as well as the socket's errors.
        if (!(cause instanceof java.io.IOException)) stack.failed("a TCP connection", cause);
        // Connection reset or similar on the host side: the guest sees a reset too.
        stack.guarded("a TCP connection", this::resetGuestAndFinish);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (finQueued && guestFin) return; // both sides said FIN: only our FIN's ACK is outstanding
        if (state == State.ESTABLISHED || state == State.SYN_SENT || state == State.SYN_RCVD) resetGuestAndFinish();
    }

    private void resetGuestAndFinish() {
        if (state == State.CLOSED || state == State.TIME_WAIT || state == State.CONNECTING) return;
        if (state != State.SYN_SENT)
            tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, sndNxt, rcvNxt, RST | ACK, 0);
        else tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, sndNxt, 0, RST, 0);
        closeHost(true);
        finish();
    }

    // ---- closing ----

    private void maybeClose() {
        if (state == State.ESTABLISHED && guestFin && finAcked) {
            state = State.TIME_WAIT;
            closeDeadline = stack.now() + TIME_WAIT_NANOS;
            disarmRto();
            closeHostAfterFlush();
        }
    }

    /**
     * Both directions are done: the host channel closes once the guest's last bytes are written to it, which can
     * take longer than TIME_WAIT (up to HOST_HIGH_WATER waits for a slow reader). A peer that stops reading
     * gets a reset after HOST_DRAIN_SECONDS rather than a clean close over a stream cut short.
     */
    private void closeHostAfterFlush() {
        Channel ch = channel;
        ScheduledFuture<?> giveUp =
                ch.eventLoop().schedule(() -> resetAndClose(ch), HOST_DRAIN_SECONDS, TimeUnit.SECONDS);
        ch.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(f -> {
            giveUp.cancel(false);
            ch.close();
        });
    }

    private static void resetAndClose(Channel ch) {
        if (ch.isActive()) {
            try {
                ch.config().setOption(ChannelOption.SO_LINGER, 0);
            } catch (RuntimeException ignored) {
                // not every transport has it; a plain close is the fallback
            }
        }
        ch.close();
    }

    /** The guest reset the connection, or the stack is shutting down: the host's peer sees a reset. */
    void abortHost() {
        closeHost(true);
        finish();
    }

    /** Retransmission gave up: both sides get a reset. */
    private void abortBoth() {
        tcp.sendControl(remoteIp, remotePort, guestIp, guestPort, sndNxt, rcvNxt, RST | ACK, 0);
        abortHost();
    }

    private void closeHost(boolean reset) {
        State was = state;
        state = State.CLOSED; // channelInactive must not answer with another reset
        if (channel == null || was == State.CLOSED) return;
        if (reset) resetAndClose(channel);
        else channel.close();
    }

    private void finish() {
        // After TIME_WAIT the host channel closes itself once drained (closeHostAfterFlush): closing it here would
        // drop guest bytes still queued for the host.
        if (state == State.TIME_WAIT) state = State.CLOSED;
        else if (state != State.CLOSED) closeHost(false);
        state = State.CLOSED;
        if (!counted) {
            counted = true;
            stack.counters.increment(opened ? FlowCounters.Counter.TCP_CLOSED : FlowCounters.Counter.TCP_REFUSED);
        }
        stack.fromHost.forget(this);
        if (unacked.refCnt() > 0) {
            stack.fromHost.release(unacked.readableBytes());
            unacked.release();
        }
        tcp.remove(this);
        if (gatewayPort >= 0) {
            stack.releasePort(gatewayPort);
            gatewayPort = -1;
        }
    }
}
