package dev.jvmm.devices.virtio.vsock;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.devices.virtio.DriverQueue;
import dev.jvmm.devices.virtio.GuestRam;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.VirtioFeatures;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * A guest's vsock driver for device tests, through a real transport and rings in guest memory: it posts receive
 * buffers, sends packets on the transmit queue and waits for what the device puts in the receive queue.
 */
public final class VsockTestGuest implements AutoCloseable {
    static final long CID = 3;
    static final int RX_BUFFER = VsockHeader.SIZE + 4096;

    final GuestRam ram = new GuestRam(0x10000, 8 << 20);
    final VirtioVsock device;
    final TestDriver driver;
    final DriverQueue rx, tx, event;
    private final Map<Integer, long[]> rxBuffers = new HashMap<>();

    /** A packet the device put in a receive buffer. */
    public record Packet(VsockHeader header, byte[] payload) {
        public VsockOp op() {
            return header.knownOp();
        }
    }

    VsockTestGuest(Transport transport, VirtioVsock device, int rxBuffers) {
        this.device = device;
        this.driver = transport.attach(ram, device);
        rx = new DriverQueue(ram, 64);
        tx = new DriverQueue(ram, 64);
        event = new DriverQueue(ram, 8);
        driver.init(VirtioFeatures.bit(VirtioFeatures.VERSION_1) | 1L << VirtioVsock.F_STREAM, rx, tx, event);
        postRx(rxBuffers, RX_BUFFER);
    }

    /** Posts {@code count} receive buffers of {@code size} bytes each and notifies. */
    void postRx(int count, int size) {
        for (int i = 0; i < count; i++) {
            long gpa = ram.alloc(size, 16);
            int head = rx.add(out(gpa, size));
            rxBuffers.put(head, new long[] {gpa, size});
        }
        driver.notifyQueue(VirtioVsock.RX);
    }

    /** A header from this guest to the host. */
    static VsockHeader header(VsockOp op, int guestPort, int hostPort, int len, int flags, int bufAlloc, int fwdCnt) {
        return new VsockHeader(
                CID,
                TxPacket.HOST_CID,
                guestPort,
                hostPort,
                len,
                VsockHeader.TYPE_STREAM,
                op.code,
                flags,
                bufAlloc,
                fwdCnt);
    }

    /** Sends a packet (header and payload in two device-readable buffers) and waits until the device used it. */
    void send(VsockHeader h, byte[] payload) throws InterruptedException {
        long hdr = ram.alloc(VsockHeader.SIZE, 8);
        MemorySegment s = MemorySegment.ofArray(new byte[VsockHeader.SIZE]);
        h.write(s);
        ram.memory.write(hdr, s.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        if (payload.length == 0) tx.add(in(hdr, VsockHeader.SIZE));
        else {
            long data = ram.alloc(payload.length, 8);
            ram.memory.write(data, payload);
            tx.add(in(hdr, VsockHeader.SIZE), in(data, payload.length));
        }
        sendChain();
    }

    /** Notifies the transmit queue and waits for the chain just added to be used (with length 0). */
    void sendChain() throws InterruptedException {
        driver.notifyQueue(VirtioVsock.TX);
        assertTrue(TestDriver.awaitUsed(tx, 1, 5000), "the device took the transmitted chain");
        assertEquals(0, tx.takeUsed()[1], "transmit chains are used with length 0");
    }

    void send(VsockHeader h) throws InterruptedException {
        send(h, new byte[0]);
    }

    /** The next packet the device gives the guest; its buffer goes back to the device. */
    public Packet receive() throws InterruptedException {
        assertTrue(TestDriver.awaitUsed(rx, 1, 5000), "a packet in the receive queue");
        int[] used = rx.takeUsed();
        long[] buf = rxBuffers.remove(used[0]);
        assertTrue(buf != null, "used receive buffer " + used[0] + " is one the driver posted");
        assertTrue(used[1] >= VsockHeader.SIZE && used[1] <= buf[1], "used length " + used[1]);
        byte[] b = new byte[used[1]];
        ram.memory.read(buf[0], b, 0, b.length);
        VsockHeader h = VsockHeader.read(MemorySegment.ofArray(b));
        byte[] payload = Arrays.copyOfRange(b, VsockHeader.SIZE, b.length);
        assertEquals(Integer.toUnsignedLong(h.len()), payload.length, "len matches the used length: " + h);
        assertEquals(CID, h.dstCid(), "to the guest: " + h);
        int head = rx.add(out(buf[0], (int) buf[1]));
        rxBuffers.put(head, buf);
        driver.notifyQueue(VirtioVsock.RX);
        return new Packet(h, payload);
    }

    /** Waits for the next packet and checks its op and ports. */
    public Packet expect(VsockOp op, int guestPort, int hostPort) throws InterruptedException {
        Packet p = receive();
        assertEquals(op, p.op(), "op of " + p.header());
        assertEquals(TxPacket.HOST_CID, p.header().srcCid(), "from the host: " + p.header());
        assertEquals(guestPort, p.header().dstPort(), "guest port of " + p.header());
        assertEquals(hostPort, p.header().srcPort(), "host port of " + p.header());
        assertEquals(VsockHeader.TYPE_STREAM, p.header().type());
        return p;
    }

    /**
     * Proves nothing else is waiting in the receive queue: a packet to a port nothing uses is answered with a reset,
     * and that reset must be the next packet (the device answers in order).
     */
    void expectNothingElse() throws InterruptedException {
        send(header(VsockOp.RW, 65000, 65001, 0, 0, 0, 0));
        Packet p = receive();
        assertEquals(VsockOp.RST, p.op(), "the marker's reset came next, not " + p.header());
        assertEquals(65000, p.header().dstPort(), "the marker's reset came next, not " + p.header());
    }

    /** A guest with 16 receive buffers of 4 KiB payload. */
    public static VsockTestGuest start(Transport transport, VirtioVsock device) {
        return new VsockTestGuest(transport, device, 16);
    }

    /** Sends {@code op} with an ASCII payload, advertising 64 KiB of buffer and nothing consumed. */
    public void send(VsockOp op, int guestPort, int hostPort, int flags, String payload) throws InterruptedException {
        byte[] b = payload.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        send(header(op, guestPort, hostPort, b.length, flags, 65536, 0), b);
    }

    /** Waits for a packet of {@code op} to {@code guestPort}; its header. */
    public VsockHeader expect(VsockOp op, int guestPort) throws InterruptedException {
        Packet p = receive();
        assertEquals(op, p.op(), "op of " + p.header());
        assertEquals(guestPort, p.header().dstPort(), "guest port of " + p.header());
        return p.header();
    }

    /** Collects RW payloads on a connection until {@code n} bytes came; them as ASCII. */
    public String expectData(int guestPort, int hostPort, int n) throws InterruptedException {
        java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
        while (got.size() < n)
            got.writeBytes(expect(VsockOp.RW, guestPort, hostPort).payload());
        return got.toString(java.nio.charset.StandardCharsets.US_ASCII);
    }

    @Override
    public void close() {
        driver.close();
        ram.close();
    }
}
