package dev.jvmm.core.testing;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A DNS server on the host's loopback for tests of a guest's name resolution (the user-mode network's resolver=
 * option points the forwarder at 10.0.2.3 to it). Known names get their A record, AAAA queries for them an empty
 * answer, everything else NXDOMAIN. It records every question it was asked, so a test can tell its answer came
 * from here and not from a guest-side hosts file.
 */
public final class FakeDnsServer implements AutoCloseable {
    private static final int TYPE_A = 1, CLASS_IN = 1, NXDOMAIN = 3;

    private final DatagramSocket socket;
    private final Map<String, Inet4Address> names;
    private final List<String> questions = new CopyOnWriteArrayList<>();

    public FakeDnsServer(Map<String, Inet4Address> names) throws IOException {
        this.names = Map.copyOf(names);
        socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        Thread.ofPlatform().daemon().name("fake-dns").start(this::serve);
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) socket.getLocalSocketAddress();
    }

    /** "name TYPE" for each question received, in order (TYPE as a number: 1 is A, 28 AAAA). */
    public List<String> questions() {
        return List.copyOf(questions);
    }

    private void serve() {
        byte[] buf = new byte[512];
        while (!socket.isClosed()) {
            try {
                DatagramPacket query = new DatagramPacket(buf, buf.length);
                socket.receive(query);
                byte[] reply = answer(buf, query.getLength());
                if (reply != null) socket.send(new DatagramPacket(reply, reply.length, query.getSocketAddress()));
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    /** The reply to one query, or null for a packet that is not a one-question query. */
    private byte[] answer(byte[] q, int length) {
        if (length < 12 || (q[2] & 0x80) != 0 || q[4] != 0 || q[5] != 1) return null;
        StringBuilder name = new StringBuilder();
        int at = 12;
        while (at < length && q[at] != 0) {
            int label = q[at] & 0xff;
            if (label > 63 || at + 1 + label > length) return null;
            if (!name.isEmpty()) name.append('.');
            name.append(new String(q, at + 1, label, StandardCharsets.US_ASCII));
            at += 1 + label;
        }
        int questionEnd = at + 5; // the root label, QTYPE, QCLASS
        if (questionEnd > length) return null;
        int type = (q[at + 1] & 0xff) << 8 | (q[at + 2] & 0xff);
        int klass = (q[at + 3] & 0xff) << 8 | (q[at + 4] & 0xff);
        String key = name.toString().toLowerCase(Locale.ROOT);
        questions.add(key + " " + type);
        Inet4Address address = names.get(key);
        boolean withAnswer = address != null && type == TYPE_A && klass == CLASS_IN;
        byte[] r = new byte[questionEnd + (withAnswer ? 16 : 0)];
        System.arraycopy(q, 0, r, 0, questionEnd); // id, flags, counts and the question, echoed
        r[2] = (byte) (0x80 | (q[2] & 0x01)); // a response; recursion desired as asked
        r[3] = (byte) (0x80 | (address == null ? NXDOMAIN : 0)); // recursion available
        r[6] = 0;
        r[7] = (byte) (withAnswer ? 1 : 0);
        r[8] = r[9] = r[10] = r[11] = 0;
        if (withAnswer) {
            byte[] ip = address.getAddress();
            byte[] record = {(byte) 0xc0, 12, 0, TYPE_A, 0, CLASS_IN, 0, 0, 0, 60, 0, 4, ip[0], ip[1], ip[2], ip[3]};
            System.arraycopy(record, 0, r, questionEnd, record.length);
        }
        return r;
    }

    @Override
    public void close() {
        socket.close();
    }
}
