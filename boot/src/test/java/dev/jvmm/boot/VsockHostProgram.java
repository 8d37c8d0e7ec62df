package dev.jvmm.boot;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;

/** What a host program on a vsock Unix socket does in the tests: blocking reads and writes of ASCII. */
final class VsockHostProgram {
    private VsockHostProgram() {}

    static void write(SocketChannel c, String s) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(s.getBytes(StandardCharsets.US_ASCII));
        while (b.hasRemaining()) c.write(b);
    }

    /** Up to {@code n} bytes: fewer only at end of stream. */
    static String read(SocketChannel c, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining() && c.read(b) >= 0) {}
        return new String(b.array(), 0, b.position(), StandardCharsets.US_ASCII);
    }

    /** A line without its newline, or null when the socket closed (or was reset) first. */
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
            if (n < 0) return null;
            if (one.get(0) == '\n') return s.toString();
            s.append((char) one.get(0));
        }
    }
}
