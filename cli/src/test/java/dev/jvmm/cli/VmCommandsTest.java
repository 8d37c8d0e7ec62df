package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jvmm.cli.api.Api;
import dev.jvmm.cli.api.ApiServer;
import dev.jvmm.cli.api.ConsoleHub;
import dev.jvmm.cli.api.ConsoleServer;
import dev.jvmm.cli.api.Instance;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The verbs as clients, without KVM: against a real API server in this process (a VM that waits to be configured,
 * holding its name as jvmm run does), against a recording server for the requests a started VM gets, and with
 * nobody there. Each answer or failure is what the user sees: a line on stdout, or one "jvmm: " line on stderr.
 */
class VmCommandsTest {
    private static final Duration WAIT = Duration.ofSeconds(20);

    @TempDir
    Path tmp;

    RuntimeDir dir;
    Map<String, String> env;
    final ByteArrayOutputStream local = new ByteArrayOutputStream();
    final ExecutorService threads = Executors.newCachedThreadPool();
    Instance instance;
    ConsoleHub hub;
    Thread vmProcess;

    @BeforeEach
    void setUp() {
        dir = new RuntimeDir(tmp.resolve("run")).ensure();
        env = Map.of(RuntimeDir.ENV, dir.path().toString());
    }

    @AfterEach
    void tearDown() throws Exception {
        if (instance != null) instance.stop();
        if (vmProcess != null) vmProcess.join(WAIT.toMillis());
        threads.shutdownNow();
    }

    record Result(int code, String out, String err) {
        String errLine() {
            String[] lines = err.strip().split("\n");
            assertEquals(1, lines.length, "one line: " + err);
            assertTrue(lines[0].startsWith("jvmm: "), lines[0]);
            return lines[0];
        }
    }

    private Result jvmm(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(
                InputStream.nullInputStream(), new PrintWriter(out, true), new PrintWriter(err, true), env, args);
        return new Result(code, out.toString(), err.toString());
    }

    /** A VM as `jvmm run --name NAME` serves one before it is configured; its "process" ends with the instance. */
    private void serve(String name) {
        RuntimeDir.Lock lock = dir.claim(name);
        instance = new Instance(new Instance.Host(
                name,
                b -> b,
                () -> true,
                Instance.Logs.IGNORED,
                Instance.Host.DEFAULT_PAUSE_TIMEOUT,
                Optional.of(dir.console(name)),
                Optional.empty()));
        ApiServer server = ApiServer.bind(dir.socket(name), new Api(instance));
        hub = new ConsoleHub(local, instance::current, () -> instance.ended().isPresent());
        ConsoleServer console = ConsoleServer.bind(dir.console(name), hub, "--console-sock");
        vmProcess = Thread.ofPlatform().daemon().start(() -> {
            try {
                instance.awaitEnd();
            } catch (InterruptedException e) {
                return;
            }
            server.close();
            console.close();
            lock.close();
        });
    }

    /** A socket file nobody listens on: what a VM killed with SIGKILL leaves. */
    private void stale(String name) throws IOException {
        try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.bind(UnixDomainSocketAddress.of(dir.socket(name)));
        }
        assertTrue(Files.exists(dir.socket(name)));
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(10);
        }
    }

    @Test
    void listShowsTheRunningVmsAndDropsStaleOnes() throws Exception {
        assertEquals("NAME  STATE  PID  VCPUS  MEMORY  UPTIME\n", jvmm("list").out());
        serve("web");
        stale("old");
        Result r = jvmm("list");
        assertEquals(0, r.code(), r.err());
        String[] lines = r.out().split("\n");
        assertEquals(2, lines.length, r.out());
        assertTrue(lines[0].startsWith("NAME "), r.out());
        assertEquals(
                List.of(
                        "web",
                        "Not",
                        "started",
                        Long.toString(ProcessHandle.current().pid()),
                        "1",
                        "128",
                        "MiB",
                        "-"),
                List.of(lines[1].split("\\s+")));
        assertFalse(Files.exists(dir.socket("old")), "the stale socket is gone");
    }

    @Test
    void infoShowsWhatTheApiSays() throws Exception {
        serve("web");
        Result r = jvmm("info", "web");
        assertEquals(0, r.code(), r.err());
        for (String part : List.of(
                "Name:     web\n",
                "State:    Not started\n",
                "PID:      " + ProcessHandle.current().pid() + "\n",
                "Memory:   128 MiB\n",
                "Console:  " + dir.console("web") + "\n",
                "API:      ",
                "Disks:\n  none\nNICs:\n  none\n")) assertTrue(r.out().contains(part), part + " in:\n" + r.out());
        JsonNode json =
                new ObjectMapper().readTree(jvmm("info", "--json", "web").out());
        assertEquals("Not started", json.get("vm").get("state").asText());
        assertTrue(json.get("metrics").get("api_server").get("requests").asLong() >= 2, json.toString());
    }

    @Test
    void infoShowsEachDisksLatenciesAndEachUserNicsConnections() throws Exception {
        ObjectMapper json = new ObjectMapper();
        JsonNode vm = json.readTree("""
                {"state": "Running", "pid": 7, "vcpu_count": 2, "mem_size_mib": 1024,
                 "disks": [{"id": "vda", "path": "/d.qcow2", "read_only": false, "transport": "pci"}],
                 "nics": [{"id": "net0", "mac": "52:54:00:12:34:56", "backend": "user", "transport": "pci"}]}""");
        JsonNode metrics = json.readTree("""
                {"api_server": {"requests": 3, "refused": 0},
                 "block": {"vda": {"requests": 11, "reads": 10, "read_bytes": 40960, "writes": 1, "write_bytes": 512,
                   "flushes": 0, "read_agg": {"min_us": 3, "max_us": 25000, "sum_us": 26000, "p50_us": 12,
                   "p90_us": 40, "p99_us": 300}, "write_agg": {"min_us": 9, "max_us": 9, "sum_us": 9, "p50_us": 9,
                   "p90_us": 9, "p99_us": 9}, "flush_agg": {"min_us": 0, "max_us": 0, "sum_us": 0, "p50_us": 0,
                   "p90_us": 0, "p99_us": 0}}},
                 "net": {"net0": {"tx_frames": 5, "tx_bytes": 600, "rx_frames": 4, "rx_bytes": 2000,
                   "user_net": {"tcp_opened": 12, "tcp_closed": 9, "tcp_refused": 1, "tcp_current": 3,
                   "udp_flows_opened": 5, "udp_flows_current": 1, "nat_refused": 2, "tcp_tx_bytes": 12288,
                   "tcp_rx_bytes": 4194304, "udp_tx_bytes": 80, "udp_rx_bytes": 160}}}}""");
        StringWriter out = new StringWriter();
        VmCommands.InfoCommand.print(new PrintWriter(out, true), "web", vm, metrics);
        for (String line : List.of(
                "      read latency: p50 12 µs, p90 40 µs, p99 300 µs, max 25.0 ms, mean 2600 µs\n",
                "      write latency: p50 9 µs, p90 9 µs, p99 9 µs, max 9 µs, mean 9 µs\n",
                "      user network: tcp 3 open (12 opened, 9 closed, 1 refused; 12.0 KiB out, 4.0 MiB in), udp 1 flows"
                        + " open (5 opened; 80 B out, 160 B in), 2 refused by the NAT policy\n"))
            assertTrue(out.toString().contains(line), line + " in:\n" + out);
        assertFalse(out.toString().contains("flush latency"), "no line for a kind never served:\n" + out);
    }

    @Test
    void aVerbOnAVmThatIsNotThereSaysSoInOneLine() throws Exception {
        for (String verb : List.of("info", "suspend", "resume", "shutdown", "reboot", "destroy", "console")) {
            Result r = jvmm(verb, "nope");
            assertEquals(1, r.code(), verb);
            assertEquals("jvmm: no VM named 'nope' is running (in " + dir.path() + ")", r.errLine(), verb);
        }
        stale("old");
        Result r = jvmm("suspend", "old");
        assertEquals(1, r.code());
        assertEquals(
                "jvmm: no VM named 'old' is running: it ended without removing its socket, which is removed now",
                r.errLine());
        assertFalse(Files.exists(dir.socket("old")));
        stale("old");
        assertEquals(
                "jvmm: no VM named 'old' is running: it ended without removing its socket, which is removed now",
                jvmm("destroy", "old").errLine());
        assertTrue(jvmm("info", "a_b").errLine().startsWith("jvmm: NAME must be 1 to 64 letters"));
    }

    @Test
    void whatTheVmRefusesComesBackAsItsFaultMessage() throws Exception {
        serve("web");
        for (List<String> args : List.of(
                List.of("suspend", "web"),
                List.of("resume", "web"),
                List.of("reboot", "web"),
                List.of("reboot", "--hard", "web"))) {
            Result r = jvmm(args.toArray(String[]::new));
            assertEquals(1, r.code(), args.toString());
            assertEquals(
                    "jvmm: web: The requested operation is not supported before starting the microVM.",
                    r.errLine(),
                    args.toString());
        }
        assertEquals(
                "jvmm: --timeout must be 0 or more, not -1",
                jvmm("shutdown", "--timeout", "-1", "web").errLine());
    }

    @Test
    void destroyStopsTheVmAndReturnsOnceItsProcessHasEnded() throws Exception {
        serve("web");
        Result r = jvmm("destroy", "web");
        assertEquals(0, r.code(), r.err());
        assertEquals("web destroyed\n", r.out());
        assertFalse(dir.running("web"));
        assertFalse(Files.exists(dir.socket("web")) || Files.exists(dir.console("web")));
        assertEquals(1, jvmm("destroy", "web").code(), "gone");
    }

    @Test
    void shutdownOfAVmThatWasNeverStartedStopsIt() throws Exception {
        serve("web");
        Result r = jvmm("shutdown", "web");
        assertEquals(0, r.code(), r.err());
        assertEquals("web shut down\n", r.out());
        assertFalse(dir.running("web"));
    }

    /** An API that answers as a running VM would and records each request as curl would show it. */
    private List<String> recordingVm(String name, String state) throws IOException {
        List<String> requests = new CopyOnWriteArrayList<>();
        RuntimeDir.Lock lock = dir.claim(name);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(dir.socket(name)));
        threads.submit(() -> {
            try (server;
                    lock) {
                while (true) {
                    try (SocketChannel c = server.accept()) {
                        String head = "", body = "";
                        ByteBuffer buf = ByteBuffer.allocate(65536);
                        while (true) {
                            c.read(buf);
                            String s = new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8);
                            int end = s.indexOf("\r\n\r\n");
                            if (end < 0) continue;
                            head = s.substring(0, end);
                            int length = head.contains("Content-Length: ")
                                    ? Integer.parseInt(head.replaceAll("(?s).*Content-Length: (\\d+).*", "$1"))
                                    : 0;
                            if (s.length() < end + 4 + length) continue;
                            body = s.substring(end + 4, end + 4 + length);
                            break;
                        }
                        String line = head.split("\r\n")[0].replace(" HTTP/1.1", "");
                        requests.add((line + " " + body).strip());
                        String reply = line.equals("GET /jvmm/vm")
                                ? "{\"id\":\"" + name + "\",\"state\":\"" + state + "\",\"pid\":1}"
                                : null;
                        String response = reply == null
                                ? "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
                                : "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                        + reply.length() + "\r\nConnection: close\r\n\r\n" + reply;
                        c.write(ByteBuffer.wrap(response.getBytes(StandardCharsets.UTF_8)));
                    }
                }
            } catch (IOException e) {
                return null;
            }
        });
        return requests;
    }

    @Test
    void eachVerbIsTheRequestCurlWouldSend() throws Exception {
        List<String> requests = recordingVm("vm1", "Running");
        assertEquals("vm1 suspended\n", jvmm("suspend", "vm1").out());
        assertEquals("vm1 resumed\n", jvmm("resume", "vm1").out());
        assertEquals("vm1 is rebooting\n", jvmm("reboot", "vm1").out());
        assertEquals("vm1 reset\n", jvmm("reboot", "--hard", "vm1").out());
        assertEquals(
                "vm1 is shutting down\n",
                jvmm("shutdown", "--timeout", "0", "vm1").out());
        Result late = jvmm("shutdown", "--timeout", "1", "vm1");
        assertEquals(1, late.code());
        assertEquals(
                "jvmm: vm1 did not shut down within 1 s; it keeps running ('jvmm destroy vm1' stops it)",
                late.errLine());
        assertEquals(
                List.of(
                        "PATCH /vm {\"state\": \"Paused\"}",
                        "PATCH /vm {\"state\": \"Resumed\"}",
                        "PUT /jvmm/actions {\"action_type\": \"Reboot\"}",
                        "PUT /jvmm/actions {\"action_type\": \"Reset\"}",
                        "GET /jvmm/vm",
                        "PUT /actions {\"action_type\": \"SendCtrlAltDel\"}",
                        "GET /jvmm/vm",
                        "PUT /actions {\"action_type\": \"SendCtrlAltDel\"}"),
                requests);

        List<String> paused = recordingVm("vm2", "Paused");
        assertEquals(
                "jvmm: vm2 is paused and cannot act on its power button:"
                        + " 'jvmm resume vm2' first, or 'jvmm destroy vm2'",
                jvmm("shutdown", "vm2").errLine());
        assertEquals(List.of("GET /jvmm/vm"), paused);
    }

    /** `jvmm console NAME` as a test drives it: keys through a pipe, the console's bytes into a buffer. */
    private final class Client {
        final PipedOutputStream keys = new PipedOutputStream();
        final ByteArrayOutputStream screen = new ByteArrayOutputStream();
        final StringWriter err = new StringWriter();
        final Future<Integer> result;

        Client(String name) throws IOException {
            PipedInputStream in = new PipedInputStream(keys);
            VmCommands.Vm vm = VmCommands.Vm.find(dir, name);
            result = threads.submit(
                    () -> VmCommands.ConsoleCommand.attach(vm, in, screen, new PrintWriter(err, true), null));
        }

        String screen() {
            return screen.toString(StandardCharsets.UTF_8);
        }

        /** Prints on the guest's console until this client shows it (it may not have attached yet). */
        void sees(String text) throws Exception {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (!screen().contains(text)) {
                if (System.nanoTime() > deadline) throw new AssertionError("no '" + text + "' in: " + screen());
                hub.write(text.getBytes(StandardCharsets.UTF_8));
                Thread.sleep(20);
            }
        }
    }

    @Test
    void consoleShowsTheGuestsOutputAndTheNewestClientWins() throws Exception {
        serve("web");
        Client first = new Client("web");
        first.sees("login: ");
        assertTrue(local.toString(StandardCharsets.UTF_8).contains("login: "), "the VM's own stdout has it too");

        Client second = new Client("web");
        assertEquals(1, first.result.get(WAIT.toSeconds(), TimeUnit.SECONDS), first.err.toString());
        assertTrue(
                first.err.toString().endsWith("jvmm: another client took web's console over\n"), first.err.toString());
        assertTrue(
                first.screen().endsWith(new String(ConsoleHub.takenOverNotice(), StandardCharsets.US_ASCII)),
                "told in its stream: " + first.screen());
        second.sees("second");
        assertFalse(first.screen().contains("second"));

        second.keys.write("ls\r".getBytes(StandardCharsets.US_ASCII));
        second.keys.write(Console.ESCAPE);
        second.keys.flush();
        assertEquals(0, second.result.get(WAIT.toSeconds(), TimeUnit.SECONDS), second.err.toString());
        assertTrue(second.err.toString().contains("jvmm: detached from web's console; it keeps running"));
        assertTrue(dir.running("web"), "Ctrl-] leaves the VM running");

        Client third = new Client("web");
        third.sees("third");
        instance.stop();
        assertEquals(0, third.result.get(WAIT.toSeconds(), TimeUnit.SECONDS));
        assertTrue(
                third.err.toString().endsWith("jvmm: web's console closed: the VM has ended\n"), third.err.toString());
        await(() -> !dir.running("web"), "the VM's end");
    }

    @Test
    void namedRunMistakesAreOneLineAndLeaveNothingBehind() throws Exception {
        Path kernel = Files.writeString(tmp.resolve("kernel"), "not a kernel");
        Path config = Files.writeString(tmp.resolve("vm.json"), "{}");
        assertEquals(
                "jvmm: --detach needs --name: a VM in the background is reached by its name (jvmm console NAME)",
                jvmm("run", "--detach", "--kernel", kernel.toString()).errLine());
        assertTrue(jvmm("run", "--name", "a_b", "--kernel", kernel.toString())
                .errLine()
                .startsWith("jvmm: --name must be 1 to 64 letters"));
        assertEquals(
                "jvmm: --api-sock cannot be combined with --name: a named VM's sockets are in the runtime folder",
                jvmm("run", "--name", "web", "--api-sock", tmp.resolve("a.sock").toString())
                        .errLine());
        assertEquals(
                "jvmm: --memory needs --kernel: without it, a named VM waits to be configured through its API",
                jvmm("run", "--name", "web", "--memory", "1G").errLine());
        assertEquals(
                "jvmm: --kernel and --config-file both describe the machine: give one of them",
                jvmm("run", "--name", "web", "--kernel", kernel.toString(), "--config-file", config.toString())
                        .errLine());
        assertEquals(
                "jvmm: --console-sock needs --api-sock",
                jvmm("run", "--console-sock", tmp.resolve("c.sock").toString(), "--kernel", kernel.toString())
                        .errLine());

        // A machine that cannot be built: its error, and the name and the sockets are free again.
        String bad = jvmm("run", "--name", "web", "--kernel", kernel.toString()).errLine();
        assertTrue(bad.contains(kernel.toString()), bad);
        assertFalse(dir.running("web"));
        assertEquals(List.of("web.lock"), List.of(dir.path().toFile().list()));

        serve("web");
        String inUse = "jvmm: a VM named 'web' is running already (pid "
                + ProcessHandle.current().pid()
                + "): choose another --name, or stop it with 'jvmm shutdown web' or 'jvmm destroy web'";
        assertEquals(
                inUse,
                jvmm("run", "--name", "web", "--kernel", kernel.toString()).errLine());
        assertEquals(
                inUse,
                jvmm("run", "--name", "web", "--detach", "--kernel", kernel.toString())
                        .errLine());
        assertTrue(Files.exists(dir.socket("web")), "the running VM's socket is left alone");
    }
}
