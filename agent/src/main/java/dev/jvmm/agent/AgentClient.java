package dev.jvmm.agent;

import static dev.jvmm.agent.AgentProtocol.CHUNK;

import dev.jvmm.agent.AgentProtocol.Frame;
import dev.jvmm.agent.AgentProtocol.Payload;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;

/**
 * Talks to a guest agent: runs commands, copies files, powers the guest off. Each call opens its own connection,
 * so calls from several threads run at once. Thread-safe.
 */
public final class AgentClient {
    private final AgentConnector connector;

    public AgentClient(AgentConnector connector) {
        this.connector = connector;
    }

    /** Runs a command to its end and collects both outputs. */
    public ExecResult exec(String... argv) throws IOException, InterruptedException {
        return exec(Command.of(argv));
    }

    /** Runs a command to its end and collects both outputs. */
    public ExecResult exec(Command command) throws IOException, InterruptedException {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = exec(command, out, err);
        return new ExecResult(code, out.toByteArray(), err.toByteArray());
    }

    /**
     * Runs a command, writing its stdout and stderr to the streams chunk by chunk as the guest produces them, and
     * returns its exit code (128 + the signal if a signal killed it). A command that cannot be started (no such
     * program, no such working directory) is an {@link AgentException}. Interrupting the calling thread closes the
     * connection, and the agent kills the command.
     */
    public int exec(Command command, OutputStream stdout, OutputStream stderr)
            throws IOException, InterruptedException {
        byte[] request = new Payload()
                .u32(command.stdin().isPresent() ? AgentProtocol.EXEC_STDIN : 0)
                .strings(command.argv())
                .strings(command.env())
                .string(command.cwd())
                .bytes();
        try (SocketChannel ch = connector.connect()) {
            DataInputStream in = input(ch);
            DataOutputStream out = output(ch);
            synchronized (out) {
                AgentProtocol.write(out, AgentProtocol.EXEC, request);
                out.flush();
            }
            Thread feeder = command.stdin()
                    .map(s -> Thread.ofVirtual().name("agent-stdin").start(() -> feed(s.get(), out)))
                    .orElse(null);
            Thread killer = command.timeout()
                    .map(t -> Thread.ofVirtual().name("agent-timeout").start(() -> {
                        try {
                            Thread.sleep(t);
                            synchronized (out) {
                                AgentProtocol.write(
                                        out,
                                        AgentProtocol.SIGNAL,
                                        new Payload().u32(9).bytes());
                                out.flush();
                            }
                        } catch (InterruptedException | IOException e) {
                            // the command ended first
                        }
                    }))
                    .orElse(null);
            try {
                while (true) {
                    if (Thread.interrupted()) throw new InterruptedException();
                    Frame f = AgentProtocol.read(in);
                    switch (f.type()) {
                        case AgentProtocol.STDOUT -> stdout.write(f.payload());
                        case AgentProtocol.STDERR -> stderr.write(f.payload());
                        case AgentProtocol.EXIT -> {
                            if (f.payload().length != 8) throw unexpected(f, "EXEC");
                            return f.u32(0) == 0 ? f.u32(4) : 128 + f.u32(4);
                        }
                        case AgentProtocol.ERROR -> throw new AgentException(command + ": " + f.text());
                        default -> throw unexpected(f, "EXEC");
                    }
                }
            } catch (java.nio.channels.ClosedByInterruptException e) {
                throw new InterruptedException("interrupted while " + command + " ran");
            } finally {
                if (feeder != null) feeder.interrupt();
                if (killer != null) killer.interrupt();
            }
        }
    }

    /** Sends stdin as STDIN frames, then an empty one; stops quietly once the command has ended. */
    private static void feed(InputStream stdin, DataOutputStream out) {
        byte[] buf = new byte[CHUNK];
        try (stdin) {
            int n;
            while ((n = stdin.read(buf)) > 0) {
                synchronized (out) {
                    AgentProtocol.write(out, AgentProtocol.STDIN, buf, 0, n);
                    out.flush();
                }
            }
        } catch (IOException e) {
            // the command ended (the connection closed), or the stream failed: either way stdin ends here
        }
        try {
            synchronized (out) {
                AgentProtocol.write(out, AgentProtocol.STDIN, new byte[0]);
                out.flush();
            }
        } catch (IOException e) {
            // the command ended
        }
    }

    /** Copies a host file into the guest with the host file's permissions, making missing parent folders. */
    public void copyIn(Path host, String guestPath) throws IOException {
        int mode = 0644;
        try {
            mode = permissionBits(Files.getPosixFilePermissions(host));
        } catch (UnsupportedOperationException e) {
            // a file system without POSIX permissions: rw-r--r--
        }
        try (InputStream data = Files.newInputStream(host)) {
            copyIn(data, mode, guestPath);
        }
    }

    /** Writes the stream's bytes to a guest file with this mode (e.g. 0755), making missing parent folders. */
    public void copyIn(InputStream data, int mode, String guestPath) throws IOException {
        byte[] request = new Payload().u32(mode).string(guestPath).bytes();
        try (SocketChannel ch = connector.connect()) {
            DataInputStream in = input(ch);
            DataOutputStream out = output(ch);
            AgentProtocol.write(out, AgentProtocol.COPY_IN, request);
            byte[] buf = new byte[CHUNK];
            int n;
            try {
                while ((n = data.readNBytes(buf, 0, buf.length)) > 0)
                    AgentProtocol.write(out, AgentProtocol.DATA, buf, 0, n);
                AgentProtocol.write(out, AgentProtocol.DATA, new byte[0]);
                out.flush();
            } catch (IOException e) {
                // the agent may have stopped reading after an error it is about to report: read that first
                Frame f;
                try {
                    f = AgentProtocol.read(in);
                } catch (IOException ignored) {
                    throw e;
                }
                if (f.type() == AgentProtocol.ERROR) throw new AgentException("copy to " + guestPath + ": " + f.text());
                throw e;
            }
            Frame f = AgentProtocol.read(in);
            if (f.type() == AgentProtocol.ERROR) throw new AgentException("copy to " + guestPath + ": " + f.text());
            if (f.type() != AgentProtocol.OK) throw unexpected(f, "COPY_IN");
        }
    }

    /** Copies a guest file to the host; the host file is replaced only once the whole file arrived. */
    public void copyOut(String guestPath, Path host) throws IOException {
        Path dir = host.toAbsolutePath().getParent();
        Path tmp = Files.createTempFile(dir, "." + host.getFileName(), ".part");
        try {
            try (OutputStream out = Files.newOutputStream(tmp)) {
                copyOut(guestPath, out);
            }
            Files.move(tmp, host, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Writes a guest file's bytes to the stream; returns its mode (permission bits). */
    public int copyOut(String guestPath, OutputStream to) throws IOException {
        byte[] request = new Payload().string(guestPath).bytes();
        try (SocketChannel ch = connector.connect()) {
            DataInputStream in = input(ch);
            DataOutputStream out = output(ch);
            AgentProtocol.write(out, AgentProtocol.COPY_OUT, request);
            out.flush();
            while (true) {
                Frame f = AgentProtocol.read(in);
                switch (f.type()) {
                    case AgentProtocol.DATA -> to.write(f.payload());
                    case AgentProtocol.OK -> {
                        if (f.payload().length != 4) throw unexpected(f, "COPY_OUT");
                        return f.u32(0);
                    }
                    case AgentProtocol.ERROR -> throw new AgentException("copy from " + guestPath + ": " + f.text());
                    default -> throw unexpected(f, "COPY_OUT");
                }
            }
        }
    }

    /** A guest file's bytes. */
    public byte[] readFile(String guestPath) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        copyOut(guestPath, out);
        return out.toByteArray();
    }

    /** Asks the agent whether it is there; returns its version. */
    public String ping() throws IOException {
        try (SocketChannel ch = connector.connect()) {
            DataOutputStream out = output(ch);
            AgentProtocol.write(out, AgentProtocol.PING, new byte[0]);
            out.flush();
            Frame f = AgentProtocol.read(input(ch));
            if (f.type() != AgentProtocol.OK) throw unexpected(f, "PING");
            return f.text();
        }
    }

    /**
     * Asks the guest to power off (after a sync). Returns once the agent acknowledged it, or the connection ended
     * because the guest already went down.
     */
    public void powerOff() throws IOException {
        try (SocketChannel ch = connector.connect()) {
            DataOutputStream out = output(ch);
            AgentProtocol.write(out, AgentProtocol.POWEROFF, new byte[0]);
            out.flush();
            Frame f = AgentProtocol.read(input(ch));
            if (f.type() == AgentProtocol.ERROR) throw new AgentException("power off: " + f.text());
        } catch (EOFException e) {
            // the guest went down before its answer reached us
        }
    }

    private static DataInputStream input(SocketChannel ch) {
        return new DataInputStream(new BufferedInputStream(ChannelStreams.in(ch), CHUNK + 5));
    }

    private static DataOutputStream output(SocketChannel ch) {
        return new DataOutputStream(new BufferedOutputStream(ChannelStreams.out(ch), CHUNK + 5));
    }

    private static IOException unexpected(Frame f, String request) {
        return new IOException("agent: unexpected frame 0x" + Integer.toHexString(f.type()) + " of "
                + f.payload().length + " bytes in answer to " + request);
    }

    private static int permissionBits(Set<PosixFilePermission> perms) {
        int mode = 0;
        for (PosixFilePermission p : perms) mode |= 1 << (8 - p.ordinal());
        return mode;
    }
}
