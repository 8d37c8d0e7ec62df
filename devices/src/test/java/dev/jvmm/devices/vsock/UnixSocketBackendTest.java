package dev.jvmm.devices.vsock;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.devices.virtio.Transport;
import dev.jvmm.devices.virtio.vsock.VirtioVsock;
import dev.jvmm.devices.virtio.vsock.VsockHeader;
import dev.jvmm.devices.virtio.vsock.VsockOp;
import dev.jvmm.devices.virtio.vsock.VsockTestGuest;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Firecracker's host-side convention with real Unix sockets and the device driven by a mock guest driver: a host
 * program's CONNECT and OK lines, a guest's connection to {@code uds_path_PORT}, bytes both ways and the ends of
 * streams, and what the backend refuses.
 */
class UnixSocketBackendTest {
    @TempDir
    Path dir;

    UnixSocketBackend backend;
    VsockTestGuest guest;

    @AfterEach
    void tearDown() {
        if (guest != null) guest.close();
        if (backend != null) backend.close();
    }

    void start() throws Exception {
        backend = UnixSocketBackend.open(dir.resolve("v.sock"));
        guest = VsockTestGuest.start(Transport.PCI_MSIX, new VirtioVsock(backend, VirtioVsock.Options.of(3)));
    }

    static SocketChannel hostConnect(Path p) throws IOException {
        SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
        c.connect(UnixDomainSocketAddress.of(p));
        return c;
    }

    static void write(SocketChannel c, String s) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(s.getBytes(StandardCharsets.US_ASCII));
        while (b.hasRemaining()) c.write(b);
    }

    /** Reads until {@code n} bytes or end of stream. */
    static String read(SocketChannel c, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining() && c.read(b) >= 0) {}
        return new String(b.array(), 0, b.position(), StandardCharsets.US_ASCII);
    }

    /** A line, or null when the socket was closed (or reset: closed with bytes of ours unread) first. */
    static String readLine(SocketChannel c) throws IOException {
        StringBuilder s = new StringBuilder();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (true) {
            one.clear();
            int n;
            try {
                n = c.read(one);
            } catch (java.net.SocketException e) {
                n = -1;
            }
            if (n < 0) return s.isEmpty() ? null : s.toString();
            if (one.get(0) == '\n') return s.toString();
            s.append((char) one.get(0));
        }
    }

    @Test
    void hostProgramConnectsWithConnectLineAndTalksToTheGuest() throws Exception {
        start();
        try (SocketChannel c = hostConnect(backend.udsPath())) {
            write(c, "CONNECT 52\n");
            VsockHeader req = guest.expect(VsockOp.REQUEST, 52);
            int hostPort = req.srcPort();
            guest.send(VsockOp.RESPONSE, 52, hostPort, 0, "");
            assertEquals("OK " + Integer.toUnsignedString(hostPort), readLine(c), "Firecracker's OK line");
            write(c, "hello");
            assertEquals("hello", guest.expectData(52, hostPort, 5));
            guest.send(VsockOp.RW, 52, hostPort, 0, "world");
            assertEquals("world", read(c, 5));
            c.shutdownOutput();
            VsockHeader sh = guest.expect(VsockOp.SHUTDOWN, 52);
            assertEquals(VsockHeader.SHUTDOWN_SEND, sh.flags());
            guest.send(VsockOp.SHUTDOWN, 52, hostPort, 3, "");
            guest.expect(VsockOp.RST, 52);
            assertEquals(-1, c.read(ByteBuffer.allocate(1)), "the host program reads end of stream");
        }
    }

    @Test
    void guestConnectsToTheSocketOfItsPort() throws Exception {
        start();
        try (ServerSocketChannel l = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            l.bind(UnixDomainSocketAddress.of(dir.resolve("v.sock_1234")));
            guest.send(VsockOp.REQUEST, 7000, 1234, 0, "");
            guest.expect(VsockOp.RESPONSE, 7000);
            try (SocketChannel c = l.accept()) {
                guest.send(VsockOp.RW, 7000, 1234, 0, "from guest");
                assertEquals("from guest", read(c, 10));
                write(c, "from host");
                assertEquals("from host", guest.expectData(7000, 1234, 9));
            }
            // The host program closed: the guest reads end of stream, then closes its side and gets the reset.
            assertEquals(
                    VsockHeader.SHUTDOWN_SEND,
                    guest.expect(VsockOp.SHUTDOWN, 7000).flags());
            guest.send(VsockOp.SHUTDOWN, 7000, 1234, 3, "");
            guest.expect(VsockOp.RST, 7000);
        }
        guest.send(VsockOp.REQUEST, 7001, 1235, 0, "");
        guest.expect(VsockOp.RST, 7001); // nothing listens on v.sock_1235
    }

    @Test
    void aConnectionTheGuestRefusesIsClosed() throws Exception {
        start();
        try (SocketChannel c = hostConnect(backend.udsPath())) {
            write(c, "CONNECT 99\n");
            VsockHeader req = guest.expect(VsockOp.REQUEST, 99);
            guest.send(VsockOp.RST, 99, req.srcPort(), 0, "");
            assertNull(readLine(c), "closed without an OK line");
        }
    }

    @Test
    void badConnectLinesAreClosed() throws Exception {
        start();
        for (String line :
                new String[] {"CONNECT\n", "CONNECT -1\n", "CONNECT 4294967296\n", "HELLO 5\n", "x".repeat(40)})
            try (SocketChannel c = hostConnect(backend.udsPath())) {
                write(c, line);
                assertNull(readLine(c), "closed: " + line.strip());
            }
        assertEquals(52, UnixSocketBackend.parseConnect("CONNECT 52"));
        assertEquals(4294967295L, UnixSocketBackend.parseConnect("CONNECT 4294967295"));
        assertEquals(-1, UnixSocketBackend.parseConnect("CONNECT 0x10"));
    }

    @Test
    void aHostProgramBeforeTheDriverIsReadyIsClosed() throws Exception {
        backend = UnixSocketBackend.open(dir.resolve("v.sock"));
        new VirtioVsock(backend, VirtioVsock.Options.of(3)); // never activated
        try (SocketChannel c = hostConnect(backend.udsPath())) {
            write(c, "CONNECT 52\n");
            assertNull(readLine(c));
        }
    }

    @Test
    void pathsThatAreTakenOrTooLongAreRefusedAndTheSocketIsRemovedAtClose() throws Exception {
        Path p = dir.resolve("v.sock");
        Files.writeString(p, "");
        VsockBackendException e = assertThrows(VsockBackendException.class, () -> UnixSocketBackend.open(p));
        assertTrue(e.getMessage().contains("exists"), e.getMessage());
        Files.delete(p);
        Path longPath = dir.resolve("x".repeat(100));
        e = assertThrows(VsockBackendException.class, () -> UnixSocketBackend.open(longPath));
        assertTrue(e.getMessage().contains("too long"), e.getMessage());
        UnixSocketBackend b = UnixSocketBackend.open(p);
        assertTrue(Files.exists(p));
        b.close();
        assertFalse(Files.exists(p), "uds_path removed at close");
    }
}
