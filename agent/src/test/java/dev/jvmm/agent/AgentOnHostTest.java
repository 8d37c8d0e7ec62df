package dev.jvmm.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent's protocol against the real agent binary, run on this host as an ordinary process listening on a Unix
 * socket ({@code --listen-unix}): everything but the PID 1 setup and vsock, in milliseconds.
 */
class AgentOnHostTest {
    @TempDir
    static Path dir;

    private static Process agent;
    private static Path socket;
    private static AgentClient client;

    @BeforeAll
    static void startAgent() throws Exception {
        Path binary = AgentBinary.write(dir.resolve("jvmm-agent"));
        socket = dir.resolve("agent.sock");
        agent = startListening(binary, socket);
        client = new AgentClient(AgentConnector.unix(socket));
    }

    static Process startListening(Path binary, Path socket) throws Exception {
        Process p = new ProcessBuilder(binary.toString(), "--listen-unix", socket.toString())
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .start();
        for (int i = 0; i < 500 && !Files.exists(socket); i++) Thread.sleep(10);
        assertTrue(Files.exists(socket), "the agent listens on " + socket);
        return p;
    }

    @AfterAll
    static void stopAgent() throws Exception {
        agent.destroy();
        agent.waitFor();
    }

    @Test
    void pingAnswersTheVersion() throws Exception {
        assertEquals("jvmm-agent 1", client.ping());
    }

    @Test
    void exitCodes() throws Exception {
        assertEquals(0, client.exec("true").exitCode());
        assertEquals(3, client.exec("sh", "-c", "exit 3").exitCode());
        assertEquals(128 + 9, client.exec("sh", "-c", "kill -9 $$").exitCode(), "killed by SIGKILL");
    }

    @Test
    void stdoutAndStderrArriveSeparately() throws Exception {
        ExecResult r = client.exec("sh", "-c", "echo out; echo err >&2; echo out2");
        assertEquals("out\nout2\n", r.stdout());
        assertEquals("err\n", r.stderr());
    }

    @Test
    void stdinReachesTheCommand() throws Exception {
        assertEquals("hello", client.exec(Command.of("cat").stdin("hello")).stdout());
        byte[] big = new byte[3 << 20];
        new Random(1).nextBytes(big);
        ExecResult r = client.exec(Command.of("sha256sum").stdin(big));
        assertEquals(sha256(big) + "  -\n", r.stdout());
        assertEquals("", client.exec(Command.of("cat")).stdout(), "no stdin: an empty one, not a wait");
    }

    @Test
    void environmentAndWorkingDirectory() throws Exception {
        Path cwd = Files.createDirectories(dir.resolve("cwd"));
        ExecResult r = client.exec(Command.of("sh", "-c", "echo \"$FOO|${HOME-unset}\"; pwd")
                .env("FOO", "bar baz")
                .unsetEnv("HOME")
                .cwd(cwd.toString()));
        assertEquals("bar baz|unset\n" + cwd.toRealPath() + "\n", r.stdout());
    }

    @Test
    void bigOutputOnBothStreams() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = client.exec(
                Command.of("sh", "-c", "head -c 6000000 /dev/urandom | tee /dev/stderr; head -c 3000000 /dev/zero"),
                out,
                err);
        assertEquals(0, code);
        assertEquals(9_000_000, out.size());
        assertEquals(6_000_000, err.size());
        assertArrayEquals(err.toByteArray(), java.util.Arrays.copyOf(out.toByteArray(), 6_000_000));
    }

    @Test
    void copyInAndOutKeepTheBytesAndTheMode() throws Exception {
        byte[] data = new byte[(5 << 20) + 12345];
        new Random(2).nextBytes(data);
        Path src = dir.resolve("src.bin");
        Files.write(src, data);
        Files.setPosixFilePermissions(src, PosixFilePermissions.fromString("rwxr-x---"));
        String guestPath = dir.resolve("in/deeper/copied.bin").toString(); // parent folders made by the agent
        client.copyIn(src, guestPath);
        assertEquals(sha256(data), sha256(Files.readAllBytes(Path.of(guestPath))));
        assertEquals("rwxr-x---", PosixFilePermissions.toString(Files.getPosixFilePermissions(Path.of(guestPath))));
        Path back = dir.resolve("back.bin");
        client.copyOut(guestPath, back);
        assertEquals(sha256(data), sha256(Files.readAllBytes(back)));
        assertEquals(0750, client.copyOut(guestPath, java.io.OutputStream.nullOutputStream()));
    }

    @Test
    void failuresAreReportedNotFatal() throws Exception {
        AgentException e = assertThrows(AgentException.class, () -> client.exec("no-such-program-jvmm"));
        assertTrue(e.getMessage().contains("cannot run no-such-program-jvmm: No such file"), e.getMessage());
        e = assertThrows(
                AgentException.class, () -> client.exec(Command.of("true").cwd("/no/such/dir")));
        assertTrue(e.getMessage().contains("working directory /no/such/dir"), e.getMessage());
        e = assertThrows(AgentException.class, () -> client.copyOut("/no/such/file", dir.resolve("x")));
        assertTrue(e.getMessage().contains("No such file"), e.getMessage());
        e = assertThrows(AgentException.class, () -> client.readFile(dir.toString()));
        assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        e = assertThrows(
                AgentException.class,
                () -> client.copyIn(new java.io.ByteArrayInputStream(new byte[200_000]), 0644, "/proc/no/file"));
        assertTrue(e.getMessage().contains("open /proc/no/file"), e.getMessage());
        assertEquals("jvmm-agent 1", client.ping());
    }

    @Test
    void timeoutKillsTheCommand() throws Exception {
        assertEquals(
                128 + 9,
                client.exec(Command.of("sleep", "60").timeout(Duration.ofMillis(200)))
                        .exitCode());
    }

    @Test
    void aBackgroundProcessHoldingTheOutputDoesNotHoldTheAnswer() throws Exception {
        ExecResult r =
                client.exec(Command.of("sh", "-c", "sleep 5 & echo started").timeout(Duration.ofSeconds(60)));
        assertEquals(0, r.exitCode(), "answered when sh exited, not when its background sleep did");
        assertEquals("started\n", r.stdout());
    }

    @Test
    void interruptingTheCallerKillsTheCommand() throws Exception {
        Path pidFile = dir.resolve("sleeper.pid");
        Thread caller = Thread.ofVirtual().start(() -> {
            try {
                client.exec(Command.of("sh", "-c", "echo $$ > " + pidFile + "; exec sleep 60"));
            } catch (InterruptedException e) {
                // expected
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        for (int i = 0; i < 1000 && (!Files.exists(pidFile) || Files.size(pidFile) == 0); i++) Thread.sleep(10);
        long pid = Long.parseLong(Files.readString(pidFile).strip());
        caller.interrupt();
        caller.join();
        for (int i = 0;
                i < 1000 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
                i++) Thread.sleep(10);
        assertTrue(ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true), "the agent killed the command");
    }

    /** Each command waits until all of them run: they can only finish if the agent serves them at once. */
    @Test
    void concurrentExecs() throws Exception {
        Path meet = Files.createDirectories(dir.resolve("meet"));
        int n = 8;
        try (ExecutorService pool = Executors.newFixedThreadPool(n)) {
            List<Future<ExecResult>> results = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Command c = Command.of(
                                "sh",
                                "-c",
                                "touch $N; while [ $(ls | wc -l) -lt " + n + " ]; do sleep 0.02; done; echo $N")
                        .env("N", "c" + i)
                        .cwd(meet.toString())
                        .timeout(Duration.ofSeconds(60));
                results.add(pool.submit(() -> client.exec(c)));
            }
            for (int i = 0; i < n; i++) {
                ExecResult r = results.get(i).get();
                assertEquals(0, r.exitCode(), "command " + i + " was not killed waiting for the others");
                assertEquals("c" + i + "\n", r.stdout());
            }
        }
    }

    @Test
    void badFramesAreAnsweredWithAnError() throws Exception {
        assertEquals("unknown request 0x7f (0 bytes)", rawRequest(new byte[] {0x7f, 0, 0, 0, 0}));
        assertTrue(rawRequest(new byte[] {1, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff})
                .startsWith("frame of 4294967295 bytes"));
        // argc says 5, no strings follow
        assertEquals("bad EXEC request: argv[0]", rawRequest(new byte[] {1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5}));
        // a string length past the end of the frame
        assertEquals("bad COPY_OUT request", rawRequest(new byte[] {6, 0, 0, 0, 5, 0x10, 0, 0, 0, 'x'}));
        // a NUL inside a path
        assertEquals("bad COPY_OUT request", rawRequest(new byte[] {6, 0, 0, 0, 7, 0, 0, 0, 3, 'a', 0, 'b'}));
        // a frame the EXEC does not expect, while the command runs
        try (SocketChannel ch = AgentConnector.unix(socket).connect()) {
            DataOutputStream out = new DataOutputStream(ChannelStreams.out(ch));
            byte[] exec = new AgentProtocol.Payload()
                    .u32(AgentProtocol.EXEC_STDIN)
                    .strings(List.of("sleep", "60"))
                    .strings(List.of())
                    .string("")
                    .bytes();
            AgentProtocol.write(out, AgentProtocol.EXEC, exec);
            AgentProtocol.write(out, AgentProtocol.COPY_OUT, new byte[3]);
            AgentProtocol.Frame f = AgentProtocol.read(new DataInputStream(ChannelStreams.in(ch)));
            assertEquals(AgentProtocol.ERROR, f.type());
            assertEquals("unexpected frame 0x06 of 3 bytes during EXEC", f.text());
        }
        assertEquals("jvmm-agent 1", client.ping(), "the agent still serves");
        assertTrue(agent.isAlive());
    }

    /** Every request cut short at every byte is refused with an error, and the agent serves on. */
    @Test
    void everyTruncatedRequestIsRefused() throws Exception {
        byte[] exec = new AgentProtocol.Payload()
                .u32(0)
                .strings(List.of("true", "x"))
                .strings(List.of("A=b"))
                .string("/")
                .bytes();
        byte[] copyIn = new AgentProtocol.Payload().u32(0644).string("/tmp/x").bytes();
        byte[] copyOut = new AgentProtocol.Payload().string("/etc/hostname").bytes();
        for (Object[] req : new Object[][] {{1, exec}, {4, copyIn}, {6, copyOut}}) {
            byte[] payload = (byte[]) req[1];
            for (int cut = 0; cut < payload.length; cut++) {
                ByteBuffer frame = ByteBuffer.allocate(5 + cut);
                frame.put((byte) (int) (Integer) req[0]).putInt(cut).put(payload, 0, cut);
                String error = rawRequest(frame.array());
                assertTrue(error.startsWith("bad "), "request " + req[0] + " cut at " + cut + ": " + error);
            }
        }
        assertEquals("jvmm-agent 1", client.ping());
        assertTrue(agent.isAlive());
    }

    private static String rawRequest(byte[] bytes) throws IOException {
        try (SocketChannel ch = AgentConnector.unix(socket).connect()) {
            ch.write(ByteBuffer.wrap(bytes));
            AgentProtocol.Frame f = AgentProtocol.read(new DataInputStream(ChannelStreams.in(ch)));
            assertEquals(AgentProtocol.ERROR, f.type(), "an ERROR frame");
            return f.text();
        }
    }

    @Test
    void powerOffStopsAHostAgent(@TempDir Path own) throws Exception {
        Path sock = own.resolve("p.sock");
        Process p = startListening(dir.resolve("jvmm-agent"), sock);
        new AgentClient(AgentConnector.unix(sock)).powerOff();
        assertEquals(0, p.waitFor(), "the listener ended");
        assertTrue(!Files.exists(sock), "and removed its socket");
    }

    static String sha256(byte[] data) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }
}
