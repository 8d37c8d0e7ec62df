package dev.jvmm.devices.virtio.vsock;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static dev.jvmm.devices.virtio.vsock.VsockTestGuest.CID;
import static dev.jvmm.devices.virtio.vsock.VsockTestGuest.header;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.virtio.DeviceStatus;
import dev.jvmm.devices.virtio.TestDriver;
import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.vsock.VsockTestGuest.Packet;
import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/** virtio-vsock driven by a mock guest driver over real rings, against an in-memory host side. */
class VirtioVsockTest {
    static final int BUF_ALLOC = 8192;
    static final int HOST_PORT = 80, GUEST_PORT = 1000;
    static final VsockOp REQUEST = VsockOp.REQUEST,
            RESPONSE = VsockOp.RESPONSE,
            RST = VsockOp.RST,
            RW = VsockOp.RW,
            SHUTDOWN = VsockOp.SHUTDOWN,
            CREDIT_UPDATE = VsockOp.CREDIT_UPDATE,
            CREDIT_REQUEST = VsockOp.CREDIT_REQUEST;

    final FakeVsockBackend backend = new FakeVsockBackend();
    VsockTestGuest guest;
    VirtioVsock device;

    @AfterEach
    void tearDown() {
        if (guest != null) guest.close();
    }

    VsockTestGuest start(Transport t, VirtioVsock.Options options) {
        device = new VirtioVsock(backend, options);
        guest = new VsockTestGuest(t, device, 16);
        return guest;
    }

    VsockTestGuest start() {
        return start(Transport.PCI_MSIX, VirtioVsock.Options.of(CID).withBufAlloc(BUF_ALLOC));
    }

    static byte[] bytes(int n, int seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** The guest connects from GUEST_PORT to HOST_PORT with the given buf_alloc; the host stream. */
    FakeVsockBackend.Stream connect(int guestBufAlloc) throws InterruptedException {
        backend.listening.add(HOST_PORT);
        guest.send(header(REQUEST, GUEST_PORT, HOST_PORT, 0, 0, guestBufAlloc, 0));
        Packet p = guest.expect(RESPONSE, GUEST_PORT, HOST_PORT);
        assertEquals(BUF_ALLOC, p.header().bufAlloc(), "the device advertises its buf_alloc");
        assertEquals(0, p.header().fwdCnt());
        FakeVsockBackend.Stream s = backend.byPort.get(HOST_PORT);
        assertNotNull(s, "the host side was connected");
        return s;
    }

    // ---- configuration

    @ParameterizedTest
    @EnumSource(Transport.class)
    void deviceIsSocketDeviceWithItsCidInConfigSpace(Transport t) {
        start(t, VirtioVsock.Options.of(0xffff_fffeL));
        assertEquals(19, guest.driver.deviceId());
        assertEquals(0xffff_fffeL, guest.driver.readConfig(0, 8), "guest_cid, upper 32 bits zero");
        assertEquals(0xfe, guest.driver.readConfig(0, 1));
        assertTrue((guest.driver.deviceFeatures() & 1L << VirtioVsock.F_STREAM) != 0, "VIRTIO_VSOCK_F_STREAM");
        assertEquals(0, guest.driver.deviceFeatures() & 1L << 1, "no seqpacket");
    }

    @ParameterizedTest
    @ValueSource(longs = {0, 1, 2, 0xffff_ffffL, 1L << 32, -1})
    void reservedCidsAreRefusedWithOneLine(long cid) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VirtioVsock.Options.of(cid));
        assertTrue(e.getMessage().contains("must be from 3 to 4294967294"), e.getMessage());
        assertNull(VirtioVsock.cidProblem(3));
    }

    // ---- guest-initiated

    @ParameterizedTest
    @EnumSource(Transport.class)
    void guestConnectsAndDataFlowsBothWays(Transport t) throws Exception {
        start(t, VirtioVsock.Options.of(CID).withBufAlloc(BUF_ALLOC));
        FakeVsockBackend.Stream s = connect(65536);
        assertTrue(s.wantRead, "the device reads the host side once the connection stands");
        byte[] up = bytes(3000, 1);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, up.length, 0, 65536, 0), up);
        assertArrayEquals(up, s.receivedBytes(), "the guest's bytes reached the host program");
        byte[] down = bytes(5000, 2);
        s.send(down);
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        while (got.size() < down.length) {
            Packet p = guest.expect(RW, GUEST_PORT, HOST_PORT);
            assertTrue(p.payload().length <= 4096, "a packet fits its receive buffer");
            got.writeBytes(p.payload());
        }
        assertArrayEquals(down, got.toByteArray(), "the host program's bytes reached the guest, in order");
        guest.expectNothingElse();
        assertEquals(up.length, device.bytesFromGuest());
        assertEquals(down.length, device.bytesToGuest());
        assertEquals(1, device.connections());
    }

    @Test
    void guestConnectToAPortNothingServesIsReset() throws Exception {
        start();
        guest.send(header(REQUEST, GUEST_PORT, 4242, 0, 0, 65536, 0));
        guest.expect(RST, GUEST_PORT, 4242);
        assertEquals(0, device.connections());
        assertEquals(1, device.refusedConnections());
    }

    @Test
    void aConnectThatCompletesLaterIsAnsweredThenOrReset() throws Exception {
        start();
        backend.listening.add(HOST_PORT);
        backend.listening.add(81);
        backend.slowConnect.add(HOST_PORT);
        backend.slowConnect.add(81);
        guest.send(header(REQUEST, GUEST_PORT, HOST_PORT, 0, 0, 65536, 0));
        guest.send(header(REQUEST, GUEST_PORT, 81, 0, 0, 65536, 0));
        guest.expectNothingElse(); // no answer while connecting
        backend.byPort.get(81).listener.failed(new java.io.IOException("refused late"));
        guest.expect(RST, GUEST_PORT, 81);
        backend.byPort.get(HOST_PORT).listener.connected();
        guest.expect(RESPONSE, GUEST_PORT, HOST_PORT);
    }

    @Test
    void hostSendsNoMoreThanTheGuestsCreditAndResumesOnCreditUpdate() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(100);
        byte[] down = bytes(250, 3);
        s.send(down);
        Packet p = guest.expect(RW, GUEST_PORT, HOST_PORT);
        assertEquals(100, p.payload().length, "only the guest's buf_alloc");
        guest.expectNothingElse();
        assertFalse(s.wantRead, "no credit: the device stops reading the host side");
        // The guest consumed 60 bytes: room for 60 more.
        guest.send(header(CREDIT_UPDATE, GUEST_PORT, HOST_PORT, 0, 0, 100, 60));
        assertTrue(s.wantRead, "credit again: the device reads the host side again");
        s.listener.readable(); // as the backend's selector reports the bytes still there
        Packet q = guest.expect(RW, GUEST_PORT, HOST_PORT);
        assertEquals(60, q.payload().length, "exactly the credit the update gave");
        // A larger buffer and everything consumed: the rest comes.
        guest.send(header(CREDIT_UPDATE, GUEST_PORT, HOST_PORT, 0, 0, 1000, 160));
        s.listener.readable();
        Packet r = guest.expect(RW, GUEST_PORT, HOST_PORT);
        assertArrayEquals(
                down,
                concat(p.payload(), q.payload(), r.payload()),
                "the bytes arrive whole, in order, across credit updates");
    }

    @Test
    void aFwdCntBeyondWhatWasSentGivesNoCredit() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(100);
        // fwd_cnt 5000 with nothing sent: a lie that would wrap the credit into billions.
        guest.send(header(CREDIT_UPDATE, GUEST_PORT, HOST_PORT, 0, 0, 100, 5000));
        s.send(bytes(50, 4));
        guest.expectNothingElse();
        assertFalse(s.wantRead);
    }

    @Test
    void creditRequestIsAnsweredWithCreditUpdate() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 10, 0, 65536, 0), bytes(10, 5));
        guest.send(header(CREDIT_REQUEST, GUEST_PORT, HOST_PORT, 0, 0, 65536, 0));
        Packet p = guest.expect(CREDIT_UPDATE, GUEST_PORT, HOST_PORT);
        assertEquals(10, p.header().fwdCnt(), "fwd_cnt counts the bytes the host program took");
        assertEquals(BUF_ALLOC, p.header().bufAlloc());
        assertEquals(10, s.receivedBytes().length);
    }

    @Test
    void aSlowHostProgramHoldsAtMostBufAllocAndTheGuestHearsOfFreedRoom() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        s.room = 0; // the host program reads nothing for now
        byte[] up = bytes(BUF_ALLOC, 6);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 4096, 0, 65536, 0), Arrays.copyOfRange(up, 0, 4096));
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 4096, 0, 65536, 0), Arrays.copyOfRange(up, 4096, 8192));
        assertTrue(s.wantWrite, "bytes wait: the device wants to hear when the host side takes more");
        assertEquals(0, s.receivedBytes().length);
        guest.expectNothingElse(); // the guest used its whole credit legitimately: no reset
        s.room = 5000;
        s.listener.writable();
        Packet p = guest.expect(CREDIT_UPDATE, GUEST_PORT, HOST_PORT);
        assertEquals(5000, p.header().fwdCnt(), "the guest hears of the room freed");
        s.room = -1;
        s.listener.writable();
        assertArrayEquals(up, s.receivedBytes(), "held bytes reach the host program in order");
        assertFalse(s.wantWrite);
    }

    @Test
    void aGuestSendingBeyondItsCreditIsReset() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        s.room = 0;
        for (int i = 0; i < 2; i++) guest.send(header(RW, GUEST_PORT, HOST_PORT, 4096, 0, 65536, 0), bytes(4096, i));
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 1, 0, 65536, 0), new byte[1]);
        guest.expect(RST, GUEST_PORT, HOST_PORT);
        assertTrue(s.closed, "the host side is closed");
        assertEquals(0, device.connections());
    }

    @Test
    void hostEndOfStreamShutsTheGuestsReadSideAndTheGuestsCloseIsAnsweredWithReset() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        s.send("bye".getBytes());
        synchronized (s) {
            s.eof = true;
        }
        assertArrayEquals(
                "bye".getBytes(), guest.expect(RW, GUEST_PORT, HOST_PORT).payload());
        s.listener.readable();
        Packet p = guest.expect(SHUTDOWN, GUEST_PORT, HOST_PORT);
        assertEquals(VsockHeader.SHUTDOWN_SEND, p.header().flags(), "the host sends no more; it still reads");
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 2, 0, 65536, 0), "ok".getBytes());
        assertArrayEquals("ok".getBytes(), s.receivedBytes(), "half-closed: the guest's bytes still go through");
        guest.send(header(SHUTDOWN, GUEST_PORT, HOST_PORT, 0, 3, 65536, 0));
        guest.expect(RST, GUEST_PORT, HOST_PORT);
        assertTrue(s.closed);
        assertEquals(0, device.connections());
    }

    @Test
    void guestShutdownOfItsSendSideShutsTheHostProgramsReadSide() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        guest.send(header(SHUTDOWN, GUEST_PORT, HOST_PORT, 0, VsockHeader.SHUTDOWN_SEND, 65536, 0));
        assertTrue(s.outputShut, "the host program reads end of stream");
        assertFalse(s.closed);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 1, 0, 65536, 0), new byte[1]);
        guest.expect(RST, GUEST_PORT, HOST_PORT); // data after its own shutdown
    }

    @Test
    void aGuestCloseWaitsForHeldBytesBeforeTheReset() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        s.room = 0;
        byte[] up = bytes(500, 7);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, up.length, 0, 65536, 0), up);
        guest.send(header(SHUTDOWN, GUEST_PORT, HOST_PORT, 0, 3, 65536, 0));
        guest.expectNothingElse();
        assertFalse(s.closed, "held bytes are not thrown away");
        s.room = -1;
        s.listener.writable();
        guest.expect(RST, GUEST_PORT, HOST_PORT);
        assertArrayEquals(up, s.receivedBytes());
        assertTrue(s.closed);
    }

    @Test
    void guestResetClosesTheHostSideWithoutAnAnswer() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        guest.send(header(RST, GUEST_PORT, HOST_PORT, 0, 0, 0, 0));
        assertTrue(s.closed);
        assertEquals(0, device.connections());
        guest.expectNothingElse();
    }

    @Test
    void aVanishedHostProgramResetsOnlyItsConnection() throws Exception {
        start();
        FakeVsockBackend.Stream a = connect(65536);
        backend.listening.add(81);
        guest.send(header(REQUEST, 1001, 81, 0, 0, 65536, 0));
        guest.expect(RESPONSE, 1001, 81);
        FakeVsockBackend.Stream b = backend.byPort.get(81);
        synchronized (a) {
            a.writeError = true;
        }
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 3, 0, 65536, 0), "abc".getBytes());
        guest.expect(RST, GUEST_PORT, HOST_PORT);
        b.send("still here".getBytes());
        assertArrayEquals("still here".getBytes(), guest.expect(RW, 1001, 81).payload());
        synchronized (b) {
            b.readError = true;
            b.toGuest.add((byte) 1);
        }
        b.listener.readable();
        guest.expect(RST, 1001, 81);
        assertEquals(0, device.connections());
    }

    // ---- host-initiated

    @Test
    void hostProgramConnectsToAGuestPortAndIsToldTheHostPort() throws Exception {
        start();
        FakeVsockBackend.Stream s = backend.hostConnects(52);
        assertNotNull(s.listener, "the device took the connection");
        Packet req = guest.expect(REQUEST, 52, VirtioVsock.FIRST_HOST_PORT);
        assertEquals(BUF_ALLOC, req.header().bufAlloc());
        assertEquals(-1, s.acceptedPort, "not accepted before the guest answers");
        guest.send(header(RESPONSE, 52, VirtioVsock.FIRST_HOST_PORT, 0, 0, 65536, 0));
        assertEquals(VirtioVsock.FIRST_HOST_PORT, s.acceptedPort, "OK <host port>");
        s.send("ping".getBytes());
        assertArrayEquals(
                "ping".getBytes(),
                guest.expect(RW, 52, VirtioVsock.FIRST_HOST_PORT).payload());
        guest.send(header(RW, 52, VirtioVsock.FIRST_HOST_PORT, 4, 0, 65536, 4), "pong".getBytes());
        assertArrayEquals("pong".getBytes(), s.receivedBytes());
        // A second connection to the same guest port gets the next host port.
        FakeVsockBackend.Stream t = backend.hostConnects(52);
        guest.expect(REQUEST, 52, VirtioVsock.FIRST_HOST_PORT + 1);
        guest.send(header(RST, 52, VirtioVsock.FIRST_HOST_PORT + 1, 0, 0, 0, 0)); // nobody listens
        assertTrue(t.closed, "the guest refused: the host program's socket is closed");
        assertEquals(-1, t.acceptedPort);
    }

    @Test
    void aGuestThatNeverAnswersARequestIsResetAfterTheTimeout() throws Exception {
        start(Transport.PCI_MSIX, new VirtioVsock.Options(CID, 256, BUF_ALLOC, 16, Duration.ZERO, Duration.ZERO));
        FakeVsockBackend.Stream s = backend.hostConnects(52);
        guest.expect(REQUEST, 52, VirtioVsock.FIRST_HOST_PORT);
        backend.host.tick(System.nanoTime() + 1);
        guest.expect(RST, 52, VirtioVsock.FIRST_HOST_PORT);
        assertTrue(s.closed);
        assertEquals(0, device.connections());
    }

    @Test
    void responsesAndDataForConnectionsNotAskedForAreReset() throws Exception {
        start();
        guest.send(header(RESPONSE, 5, 6, 0, 0, 0, 0));
        guest.expect(RST, 5, 6);
        guest.send(header(RW, 5, 6, 3, 0, 0, 0), "abc".getBytes());
        guest.expect(RST, 5, 6);
        guest.send(header(SHUTDOWN, 5, 6, 0, 3, 0, 0));
        guest.expect(RST, 5, 6);
        guest.send(header(CREDIT_REQUEST, 5, 6, 0, 0, 0, 0));
        guest.expect(RST, 5, 6);
        guest.send(header(RST, 5, 6, 0, 0, 0, 0)); // never a reset for a reset
        guest.expectNothingElse();
    }

    @Test
    void dataBeforeTheGuestAcceptsResetsTheConnection() throws Exception {
        start();
        FakeVsockBackend.Stream s = backend.hostConnects(52);
        guest.expect(REQUEST, 52, VirtioVsock.FIRST_HOST_PORT);
        guest.send(header(RW, 52, VirtioVsock.FIRST_HOST_PORT, 1, 0, 65536, 0), new byte[1]);
        guest.expect(RST, 52, VirtioVsock.FIRST_HOST_PORT);
        assertTrue(s.closed);
    }

    // ---- hostile guests

    @Test
    void spoofedSourceCidIsDroppedWithoutAnAnswer() throws Exception {
        start();
        backend.listening.add(HOST_PORT);
        guest.send(new VsockHeader(99, 2, GUEST_PORT, HOST_PORT, 0, 1, REQUEST.code, 0, 65536, 0));
        guest.expectNothingElse();
        assertEquals(0, backend.streams.size(), "no host connection for a spoofed request");
        assertEquals(1, device.droppedPackets());
    }

    @Test
    void packetsForAnotherCidOrTypeOrWithUnknownOpsAreReset() throws Exception {
        start();
        guest.send(new VsockHeader(CID, 7, 10, 11, 0, 1, REQUEST.code, 0, 0, 0));
        Packet p = guest.receive();
        assertEquals(RST, p.op());
        assertEquals(7, p.header().srcCid(), "the reset comes from the CID the guest asked for");
        assertEquals(10, p.header().dstPort());
        guest.send(new VsockHeader(CID, 2, 10, 11, 0, VsockHeader.TYPE_SEQPACKET, REQUEST.code, 0, 0, 0));
        Packet q = guest.receive();
        assertEquals(RST, q.op());
        assertEquals(VsockHeader.TYPE_SEQPACKET, q.header().type());
        FakeVsockBackend.Stream s = connect(65536);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 0, 0, 0, 0).withOp(0));
        guest.expect(RST, GUEST_PORT, HOST_PORT);
        assertTrue(s.closed, "an op nobody knows ends the stream");
        guest.send(header(RW, 3, 4, 0, 0, 0, 0).withOp(0x4242));
        guest.expect(RST, 3, 4);
    }

    @Test
    void lyingPayloadLengthsResetTheConnection() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 100, 0, 65536, 0), new byte[10]);
        guest.expect(RST, GUEST_PORT, HOST_PORT);
        assertTrue(s.closed);
        assertEquals(0, s.receivedBytes().length, "nothing of a lying packet reaches the host");
        guest.send(header(RW, 7, 8, 0x10001, 0, 65536, 0), new byte[16]);
        guest.expect(RST, 7, 8);
        guest.send(header(RW, 7, 8, -1, 0, 65536, 0), new byte[16]);
        guest.expect(RST, 7, 8);
        assertTrue(device.droppedPackets() >= 3);
    }

    @Test
    void chainsWithoutAHeaderOrWithWritableBuffersAreDropped() throws Exception {
        start();
        long g = guest.ram.alloc(64, 8);
        guest.tx.add(in(g, 20));
        guest.sendChain();
        guest.tx.add(in(g, VsockHeader.SIZE), out(g + 48, 16));
        guest.sendChain();
        guest.tx.add(out(g, 64));
        guest.sendChain();
        guest.expectNothingElse();
        assertEquals(3, device.droppedPackets());
        assertEquals(0, guest.driver.status() & DeviceStatus.DEVICE_NEEDS_RESET, "the queue goes on");
    }

    @Test
    void aFloodOfRequestsIsBoundedByTheConnectionLimit() throws Exception {
        start(
                Transport.PCI_MSIX,
                VirtioVsock.Options.of(CID).withBufAlloc(BUF_ALLOC).withMaxConnections(4));
        backend.listening.add(HOST_PORT);
        for (int i = 0; i < 6; i++) guest.send(header(REQUEST, 2000 + i, HOST_PORT, 0, 0, 65536, 0));
        int responses = 0, resets = 0;
        for (int i = 0; i < 6; i++) {
            Packet p = guest.receive();
            if (p.op() == RESPONSE) responses++;
            else if (p.op() == RST) resets++;
        }
        assertEquals(4, responses);
        assertEquals(2, resets);
        assertEquals(4, device.connections());
        assertEquals(4, backend.streams.size());
        assertNull(backend.hostConnects(9).listener, "the host program's connection is refused too");
        // A request repeated on a live connection resets it (the guest lost track of it).
        guest.send(header(REQUEST, 2000, HOST_PORT, 0, 0, 65536, 0));
        guest.expect(RST, 2000, HOST_PORT);
        assertEquals(3, device.connections());
    }

    @Test
    void resetsOwedWithoutReceiveBuffersAreBounded() throws Exception {
        device = new VirtioVsock(backend, VirtioVsock.Options.of(CID));
        guest = new VsockTestGuest(Transport.PCI_MSIX, device, 0);
        for (int i = 0; i < VirtioVsock.MAX_ORPHAN_RESETS + 40; i++) guest.send(header(RW, 3000 + i, 9, 0, 0, 0, 0));
        guest.postRx(16, VsockTestGuest.RX_BUFFER);
        for (int i = 0; i < VirtioVsock.MAX_ORPHAN_RESETS; i++) guest.expect(RST, 3000 + i, 9);
        guest.expectNothingElse(); // the 40 beyond the bound were dropped, not queued
    }

    @Test
    void aReceiveBufferTooShortForAHeaderNeedsReset() throws Exception {
        device = new VirtioVsock(backend, VirtioVsock.Options.of(CID));
        guest = new VsockTestGuest(Transport.PCI_MSIX, device, 0);
        guest.postRx(1, 20);
        guest.send(header(RW, 1, 2, 0, 0, 0, 0));
        long deadline = System.currentTimeMillis() + 5000;
        while ((guest.driver.status() & DeviceStatus.DEVICE_NEEDS_RESET) == 0 && System.currentTimeMillis() < deadline)
            Thread.sleep(1);
        assertTrue((guest.driver.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0);
    }

    @Test
    void aHeaderOnlyReceiveBufferCarriesCreditNotData() throws Exception {
        device = new VirtioVsock(backend, VirtioVsock.Options.of(CID).withBufAlloc(BUF_ALLOC));
        guest = new VsockTestGuest(Transport.PCI_MSIX, device, 0);
        guest.postRx(1, VsockHeader.SIZE);
        FakeVsockBackend.Stream s = connect(65536);
        s.send("data".getBytes());
        // The header-only buffer is used (for the credit) rather than left to stall the queue.
        guest.expect(CREDIT_UPDATE, GUEST_PORT, HOST_PORT);
        guest.postRx(1, VsockTestGuest.RX_BUFFER);
        Packet p;
        int tries = 0;
        do p = guest.receive();
        while (p.op() == CREDIT_UPDATE && ++tries < 10);
        assertEquals(RW, p.op());
        assertArrayEquals("data".getBytes(), p.payload());
    }

    // ---- events and reset

    @Test
    void transportResetEventForgetsEveryConnection() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        long ev = guest.ram.alloc(8, 4);
        guest.event.add(out(ev, 8));
        guest.driver.notifyQueue(VirtioVsock.EVENT);
        device.transportReset();
        assertTrue(TestDriver.awaitUsed(guest.event, 1, 5000), "the event was delivered");
        int[] used = guest.event.takeUsed();
        assertEquals(4, used[1]);
        assertEquals(VirtioVsock.EVENT_TRANSPORT_RESET, guest.ram.memory.readInt(ev));
        assertTrue(s.closed);
        assertEquals(0, device.connections());
        guest.send(header(RW, GUEST_PORT, HOST_PORT, 0, 0, 0, 0));
        guest.expect(RST, GUEST_PORT, HOST_PORT); // forgotten
    }

    @Test
    void aRestoredDeviceTellsTheGuestItsConnectionsAreGone() throws Exception {
        start();
        connect(65536);
        dev.jvmm.core.snapshot.StateOutput saved = new dev.jvmm.core.snapshot.StateOutput();
        device.saveState(saved);
        long ev = guest.ram.alloc(8, 4);
        guest.event.add(out(ev, 8));
        guest.driver.notifyQueue(VirtioVsock.EVENT);
        // What the transport does after activating the device again on a restore.
        device.restoreState(1, dev.jvmm.core.snapshot.StateInput.of(saved.toByteArray(), "device vsock"));
        assertTrue(TestDriver.awaitUsed(guest.event, 1, 5000), "the event was delivered");
        guest.event.takeUsed();
        assertEquals(VirtioVsock.EVENT_TRANSPORT_RESET, guest.ram.memory.readInt(ev));
        assertEquals(0, device.connections());

        byte[] otherCid = new dev.jvmm.core.snapshot.StateOutput().u64(CID + 1).toByteArray();
        var e = org.junit.jupiter.api.Assertions.assertThrows(
                dev.jvmm.core.snapshot.SnapshotException.class,
                () -> device.restoreState(1, dev.jvmm.core.snapshot.StateInput.of(otherCid, "device vsock")));
        assertEquals(dev.jvmm.core.snapshot.SnapshotException.Kind.MACHINE_MISMATCH, e.kind());
    }

    @Test
    void deviceResetClosesEveryHostSide() throws Exception {
        start();
        FakeVsockBackend.Stream s = connect(65536);
        FakeVsockBackend.Stream h = backend.hostConnects(52);
        guest.driver.reset();
        assertTrue(s.closed);
        assertTrue(h.closed);
        assertEquals(0, device.connections());
        assertNull(backend.hostConnects(52).listener, "a device the driver reset takes no connection");
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        for (byte[] p : parts) o.writeBytes(p);
        return o.toByteArray();
    }
}
