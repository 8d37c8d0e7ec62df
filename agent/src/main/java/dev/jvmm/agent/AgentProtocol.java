package dev.jvmm.agent;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The guest agent's wire format (the C side is src/main/c/jvmm-agent.c). One request per connection. Every frame,
 * both ways, is {@code u8 type, u32 length, length bytes}; integers are big-endian, a string is {@code u32 length}
 * and its UTF-8 bytes (no NUL), and no payload is longer than {@link #MAX_FRAME}.
 *
 * <ul>
 *   <li>{@code EXEC flags argc argv... envc env... cwd}: runs argv[0] (searched in PATH) in its own process group.
 *       {@code env} entries {@code NAME=VALUE} are set over the agent's environment ({@code NAME} alone unsets it);
 *       an empty {@code cwd} keeps the agent's. With flag {@link #EXEC_STDIN} the host sends {@code STDIN} frames
 *       (an empty one closes stdin), else stdin is empty; {@code SIGNAL signo} signals the process group. The agent
 *       answers {@code STDOUT} and {@code STDERR} chunks as they come, then {@code EXIT kind value} (kind 0: exit
 *       status, 1: killed by that signal), or {@code ERROR} if the command could not be started.
 *   <li>{@code COPY_IN mode path}, then {@code DATA} frames and an empty {@code DATA}: writes the file (parent
 *       folders made), answered {@code OK} or {@code ERROR}.
 *   <li>{@code COPY_OUT path}: answered with {@code DATA} frames, then {@code OK mode}, or {@code ERROR}.
 *   <li>{@code PING}: {@code OK version}. {@code POWEROFF}: {@code OK}, then the guest powers off.
 * </ul>
 * A frame the agent does not expect, or one too long, is answered with {@code ERROR} and the connection closed.
 */
public final class AgentProtocol {
    private AgentProtocol() {}

    /** The vsock port the agent listens on in a micro-VM. */
    public static final int DEFAULT_PORT = 1024;
    /** The largest payload either side sends or accepts. */
    public static final int MAX_FRAME = 1 << 20;
    /** Data goes out in chunks of this size. */
    static final int CHUNK = 64 << 10;

    static final int EXEC = 0x01, STDIN = 0x02, SIGNAL = 0x03, COPY_IN = 0x04, DATA = 0x05, COPY_OUT = 0x06;
    static final int POWEROFF = 0x07, PING = 0x08;
    static final int STDOUT = 0x11, STDERR = 0x12, EXIT = 0x13, OK = 0x20, ERROR = 0x21;
    /** EXEC flag: STDIN frames follow. */
    static final int EXEC_STDIN = 1;

    /** One frame as read. */
    record Frame(int type, byte[] payload) {
        int u32(int offset) {
            return ((payload[offset] & 0xff) << 24)
                    | ((payload[offset + 1] & 0xff) << 16)
                    | ((payload[offset + 2] & 0xff) << 8)
                    | (payload[offset + 3] & 0xff);
        }

        String text() {
            return new String(payload, StandardCharsets.UTF_8);
        }
    }

    /** Reads one frame; {@link EOFException} at the end of the stream, a length over the limit is an error. */
    static Frame read(DataInputStream in) throws IOException {
        int type = in.read();
        if (type < 0) throw new EOFException("the agent closed the connection");
        int len = in.readInt();
        if (len < 0 || len > MAX_FRAME)
            throw new IOException("agent frame 0x" + Integer.toHexString(type) + " of " + Integer.toUnsignedString(len)
                    + " bytes: over the limit of " + MAX_FRAME);
        byte[] payload = new byte[len];
        in.readFully(payload);
        return new Frame(type, payload);
    }

    static void write(DataOutputStream out, int type, byte[] data, int off, int len) throws IOException {
        out.write(type);
        out.writeInt(len);
        out.write(data, off, len);
    }

    static void write(DataOutputStream out, int type, byte[] data) throws IOException {
        write(out, type, data, 0, data.length);
    }

    /** Builds a payload of u32s and strings. */
    static final class Payload {
        private final java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        private final DataOutputStream out = new DataOutputStream(bytes);

        Payload u32(int v) throws IOException {
            out.writeInt(v);
            return this;
        }

        Payload string(String s) throws IOException {
            if (s.indexOf('\0') >= 0) throw new IllegalArgumentException("a NUL in " + s.replace('\0', '@'));
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            out.writeInt(b.length);
            out.write(b);
            return this;
        }

        Payload strings(List<String> list) throws IOException {
            u32(list.size());
            for (String s : list) string(s);
            return this;
        }

        byte[] bytes() {
            if (bytes.size() > MAX_FRAME)
                throw new IllegalArgumentException("request of " + bytes.size() + " bytes: over " + MAX_FRAME);
            return bytes.toByteArray();
        }
    }
}
