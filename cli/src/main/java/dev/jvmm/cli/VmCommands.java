package dev.jvmm.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.cli.api.ConsoleHub;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * The verbs on named VMs, as virsh has them: {@code list}, {@code info}, {@code suspend}, {@code resume},
 * {@code shutdown}, {@code reboot}, {@code destroy} and {@code console}. Each is a client of the VM's API socket in
 * the runtime folder ({@link RuntimeDir}), and each request is one a script can send with curl:
 *
 * <pre>
 * list, info  GET /jvmm/vm, GET /jvmm/metrics          suspend, resume  PATCH /vm {"state": "Paused"|"Resumed"}
 * shutdown    PUT /actions {"action_type": "SendCtrlAltDel"}, then waits for the VM's process to end
 * reboot      PUT /jvmm/actions {"action_type": "Reboot"} (--hard: "Reset")
 * destroy     PUT /jvmm/actions {"action_type": "Stop"}, then waits for the VM's process to end
 * save        PATCH /vm Paused, PUT /snapshot/create, then Stop as destroy (--keep-running: PATCH /vm Resumed)
 * console     GET /jvmm/vm for console_socket, then raw bytes on that socket
 * </pre>
 *
 * A verb aimed at a VM that is gone says so in one line (exit status 1) and removes the sockets it left.
 */
final class VmCommands {
    private VmCommands() {}

    private static final String STOP = "{\"action_type\": \"Stop\"}";
    private static final String POWER_BUTTON = "{\"action_type\": \"SendCtrlAltDel\"}";

    /** How long destroy waits for the VM's process to end after the stop. */
    static final Duration DESTROY_WAIT = Duration.ofSeconds(30);

    /** What every verb has: the runtime folder (from the environment), out and err. */
    abstract static class Verb implements Callable<Integer> {
        @Spec
        picocli.CommandLine.Model.CommandSpec spec;

        Map<String, String> env = System.getenv();

        RuntimeDir dir() {
            return RuntimeDir.locate(env, RuntimeDir.uid());
        }

        PrintWriter out() {
            return spec.commandLine().getOut();
        }

        PrintWriter err() {
            return spec.commandLine().getErr();
        }
    }

    /** A verb on one VM, named by its one parameter. */
    abstract static class OnVm extends Verb {
        @Parameters(index = "0", paramLabel = "NAME", description = "The VM's name (jvmm run --name).")
        String name;

        /** The running VM's API, or a one-line refusal when there is none of that name. */
        Vm vm() {
            return Vm.find(dir(), RuntimeDir.checkName(name, "NAME"));
        }
    }

    /** A named VM's API; its failures in the verbs' words. */
    record Vm(RuntimeDir dir, String name, ApiClient api) {
        static Vm find(RuntimeDir dir, String name) {
            Path socket = dir.socket(name);
            if (!Files.exists(socket)) {
                if (dir.running(name))
                    throw new BootException(
                            Kind.VM_REQUEST_FAILED,
                            "VM '" + name + "' is starting or stopping (it has no API socket now); try again");
                throw new BootException(Kind.NO_SUCH_VM, "no VM named '" + name + "' is running" + where(dir));
            }
            return new Vm(dir, name, new ApiClient(socket));
        }

        private static String where(RuntimeDir dir) {
            return " (in " + dir.path() + ")";
        }

        /** One request; a refusal (4xx, 5xx) or no answer is a one-line failure. */
        ApiClient.Response call(String method, String path, String json) {
            ApiClient.Response r = send(method, path, json);
            if (!r.ok()) throw new BootException(Kind.VM_REQUEST_FAILED, name + ": " + r.fault());
            return r;
        }

        JsonNode json(String path) {
            try {
                return call("GET", path, null).json();
            } catch (IOException e) {
                throw new BootException(Kind.VM_REQUEST_FAILED, name + ": " + path + " is not JSON: " + e.getMessage());
            }
        }

        ApiClient.Response send(String method, String path, String json) {
            try {
                return api.send(method, path, json);
            } catch (ApiClient.Unreachable e) {
                throw gone(e);
            } catch (IOException e) {
                throw new BootException(
                        Kind.VM_REQUEST_FAILED,
                        name + " did not answer " + method + " " + path + ": " + e.getMessage());
            }
        }

        /** The socket is there and nobody listens: a VM that died without removing it, unless its process lives. */
        private BootException gone(IOException e) {
            if (dir.running(name))
                return new BootException(
                        Kind.VM_REQUEST_FAILED,
                        "VM '" + name + "' does not accept connections on " + api.socket() + " (" + e.getMessage()
                                + "); it may be stopping");
            dir.removeStale(name);
            return new BootException(
                    Kind.NO_SUCH_VM,
                    "no VM named '" + name
                            + "' is running: it ended without removing its socket, which is removed now");
        }

        /**
         * A request after which the caller waits for the VM to end (Stop, the power button): a VM that ends before
         * its answer reaches us (the connection closes) did what was asked, and {@link #awaitEnd} tells whether it
         * ended; a refusal is a one-line failure.
         */
        void askThenAwait(String path, String json) {
            ApiClient.Response r;
            try {
                r = api.send("PUT", path, json);
            } catch (ApiClient.Unreachable e) {
                if (!dir.running(name)) throw gone(e); // it was gone before we asked
                return;
            } catch (IOException e) {
                return;
            }
            if (!r.ok()) throw new BootException(Kind.VM_REQUEST_FAILED, name + ": " + r.fault());
        }

        /** Waits for the VM's process to end (its lock to drop); false if it still runs after {@code timeout}. */
        boolean awaitEnd(Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (dir.running(name)) {
                if (System.nanoTime() - deadline > 0) return false;
                Thread.sleep(50);
            }
            dir.removeStale(name);
            return true;
        }
    }

    @Command(
            name = "list",
            mixinStandardHelpOptions = true,
            description = "List the running named VMs: name, state, pid, vCPUs, memory and uptime.")
    static final class ListCommand extends Verb {
        @Override
        public Integer call() {
            RuntimeDir dir = dir();
            List<String[]> rows = new ArrayList<>();
            rows.add(new String[] {"NAME", "STATE", "PID", "VCPUS", "MEMORY", "UPTIME"});
            for (String name : dir.names()) {
                if (!dir.running(name)) {
                    dir.removeStale(name); // a VM that died without cleaning up
                    continue;
                }
                try {
                    JsonNode vm =
                            new Vm(dir, name, new ApiClient(dir.socket(name), Duration.ofSeconds(5))).json("/jvmm/vm");
                    rows.add(new String[] {
                        name,
                        vm.path("state").asText("?"),
                        vm.path("pid").asText("?"),
                        vm.path("vcpu_count").asText("?"),
                        vm.has("mem_size_mib") ? vm.get("mem_size_mib").asLong() + " MiB" : "?",
                        vm.has("uptime_ms") ? duration(vm.get("uptime_ms").asLong()) : "-"
                    });
                } catch (BootException e) {
                    rows.add(new String[] {
                        name,
                        "not answering",
                        dir.pid(name).isPresent() ? Long.toString(dir.pid(name).getAsLong()) : "?",
                        "?",
                        "?",
                        "?"
                    });
                }
            }
            table(out(), rows);
            return 0;
        }
    }

    @Command(
            name = "info",
            mixinStandardHelpOptions = true,
            description = {
                "Show a named VM: state, vCPUs, memory, disks, NICs, uptime and its counters (vCPU exits by reason,"
                        + " each disk's requests, bytes and latency percentiles, each NIC's frames and bytes, and a"
                        + " user-mode NIC's connections)."
            })
    static final class InfoCommand extends OnVm {
        @Option(
                names = "--json",
                description =
                        "Print the API's answers as they came: {\"vm\": GET /jvmm/vm, \"metrics\": GET /jvmm/metrics}.")
        boolean json;

        @Override
        public Integer call() {
            Vm vm = vm();
            JsonNode info = vm.json("/jvmm/vm");
            JsonNode metrics = vm.json("/jvmm/metrics");
            if (json) out().println("{\"vm\":" + info + ",\"metrics\":" + metrics + "}");
            else print(out(), name, info, metrics);
            out().flush();
            return 0;
        }

        static void print(PrintWriter out, String name, JsonNode vm, JsonNode metrics) {
            List<String[]> rows = new ArrayList<>();
            rows.add(new String[] {"Name:", name});
            rows.add(new String[] {"State:", vm.path("state").asText()});
            rows.add(new String[] {"PID:", vm.path("pid").asText()});
            rows.add(new String[] {"vCPUs:", vm.path("vcpu_count").asText()});
            rows.add(new String[] {"Memory:", vm.path("mem_size_mib").asText() + " MiB"});
            if (vm.has("uptime_ms"))
                rows.add(new String[] {
                    "Uptime:",
                    duration(vm.get("uptime_ms").asLong()) + " (since "
                            + vm.path("started_at").asText() + ", "
                            + vm.path("reboots").asLong() + " reboots)"
                });
            if (vm.has("kernel"))
                rows.add(new String[] {"Kernel:", vm.get("kernel").asText()});
            if (vm.has("cmdline"))
                rows.add(new String[] {"Cmdline:", vm.get("cmdline").asText()});
            if (vm.has("console_socket"))
                rows.add(new String[] {"Console:", vm.get("console_socket").asText()});
            if (vm.has("log_path"))
                rows.add(new String[] {"Log:", vm.get("log_path").asText()});
            JsonNode api = metrics.path("api_server");
            rows.add(new String[] {
                "API:",
                api.path("requests").asLong() + " requests, "
                        + api.path("refused").asLong() + " refused"
            });
            table(out, rows);

            out.println("Disks:");
            if (vm.path("disks").isEmpty()) out.println("  none");
            for (JsonNode d : vm.path("disks")) {
                String id = d.path("id").asText();
                out.println("  " + id + "  " + d.path("path").asText() + "  "
                        + (d.path("read_only").asBoolean() ? "read-only" : "read-write") + "  "
                        + d.path("transport").asText()
                        + (d.has("serial") ? "  serial=" + d.get("serial").asText() : ""));
                JsonNode b = metrics.path("block").path(id);
                if (!b.isMissingNode())
                    out.println("      " + b.path("requests").asLong() + " requests: "
                            + b.path("reads").asLong()
                            + " reads (" + bytes(b.path("read_bytes").asLong()) + "), "
                            + b.path("writes").asLong()
                            + " writes (" + bytes(b.path("write_bytes").asLong()) + "), "
                            + b.path("flushes").asLong()
                            + " flushes, " + b.path("discards").asLong() + " discards, "
                            + b.path("write_zeroes").asLong() + " write-zeroes, "
                            + b.path("refused").asLong()
                            + " refused, " + b.path("errors").asLong() + " errors, "
                            + b.path("throttled").asLong() + " throttled");
                for (String op : List.of("read", "write", "flush")) {
                    JsonNode l = b.path(op + "_agg");
                    long n = b.path(op.equals("flush") ? "flushes" : op + "s").asLong();
                    if (n > 0 && !l.isMissingNode())
                        out.println("      " + op + " latency: p50 "
                                + micros(l.path("p50_us").asLong())
                                + ", p90 " + micros(l.path("p90_us").asLong())
                                + ", p99 " + micros(l.path("p99_us").asLong())
                                + ", max " + micros(l.path("max_us").asLong())
                                + ", mean " + micros(l.path("sum_us").asLong() / n));
                }
            }
            out.println("NICs:");
            if (vm.path("nics").isEmpty()) out.println("  none");
            for (JsonNode n : vm.path("nics")) {
                String id = n.path("id").asText();
                out.println("  " + id + "  " + n.path("mac").asText("-") + "  "
                        + n.path("backend").asText() + "  "
                        + n.path("transport").asText());
                JsonNode c = metrics.path("net").path(id);
                if (!c.isMissingNode())
                    out.println("      tx " + c.path("tx_frames").asLong() + " frames ("
                            + bytes(c.path("tx_bytes").asLong()) + "), "
                            + c.path("tx_dropped").asLong()
                            + " dropped; rx " + c.path("rx_frames").asLong() + " frames ("
                            + bytes(c.path("rx_bytes").asLong()) + "), "
                            + c.path("rx_dropped").asLong() + " dropped, "
                            + c.path("rx_filtered").asLong() + " filtered; throttled "
                            + c.path("tx_throttled").asLong() + " tx, "
                            + c.path("rx_throttled").asLong() + " rx");
                JsonNode u = c.path("user_net");
                if (!u.isMissingNode())
                    out.println(
                            "      user network: tcp " + u.path("tcp_current").asLong() + " open ("
                                    + u.path("tcp_opened").asLong() + " opened, "
                                    + u.path("tcp_closed").asLong() + " closed, "
                                    + u.path("tcp_refused").asLong() + " refused; "
                                    + bytes(u.path("tcp_tx_bytes").asLong()) + " out, "
                                    + bytes(u.path("tcp_rx_bytes").asLong()) + " in), udp "
                                    + u.path("udp_flows_current").asLong() + " flows open ("
                                    + u.path("udp_flows_opened").asLong() + " opened; "
                                    + bytes(u.path("udp_tx_bytes").asLong()) + " out, "
                                    + bytes(u.path("udp_rx_bytes").asLong()) + " in), "
                                    + u.path("nat_refused").asLong() + " refused by the NAT policy");
            }
            for (JsonNode broken : metrics.path("broken_devices"))
                out.println("Broken device: " + broken.asText() + " (it failed inside jvmm; the guest must reset it)");
            JsonNode exits = metrics.path("vcpu_exits");
            if (!exits.isMissingNode()) {
                out.println("vCPU exits since the last boot:");
                List<String[]> e = new ArrayList<>();
                e.add(new String[] {"  REASON", "COUNT", "MEAN"});
                for (Iterator<Map.Entry<String, JsonNode>> it = exits.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> x = it.next();
                    e.add(new String[] {
                        "  " + x.getKey(),
                        x.getValue().path("count").asText(),
                        nanos(x.getValue().path("mean_ns").asLong())
                    });
                }
                if (e.size() == 1) out.println("  none");
                else table(out, e);
            }
        }
    }

    @Command(
            name = "suspend",
            mixinStandardHelpOptions = true,
            description = "Pause a named VM's vCPUs (PATCH /vm Paused); its devices and console stay.")
    static final class SuspendCommand extends OnVm {
        @Override
        public Integer call() {
            vm().call("PATCH", "/vm", "{\"state\": \"Paused\"}");
            out().println(name + " suspended");
            return 0;
        }
    }

    @Command(name = "resume", mixinStandardHelpOptions = true, description = "Resume a suspended named VM.")
    static final class ResumeCommand extends OnVm {
        @Override
        public Integer call() {
            vm().call("PATCH", "/vm", "{\"state\": \"Resumed\"}");
            out().println(name + " resumed");
            return 0;
        }
    }

    @Command(
            name = "shutdown",
            mixinStandardHelpOptions = true,
            description = {
                "Ask a named VM to shut down: press its ACPI power button, then wait for it to end.",
                "Exit status 1 if it has not ended within --timeout (it keeps running: 'jvmm destroy' stops it)."
            })
    static final class ShutdownCommand extends OnVm {
        @Option(
                names = "--timeout",
                paramLabel = "SECONDS",
                defaultValue = "90",
                description = "How long to wait for the VM to end (default ${DEFAULT-VALUE}; 0: return at once).")
        int timeout;

        @Override
        public Integer call() throws InterruptedException {
            if (timeout < 0) throw new BootException(Kind.BAD_OPTION, "--timeout must be 0 or more, not " + timeout);
            Vm vm = vm();
            String state = vm.json("/jvmm/vm").path("state").asText();
            switch (state) {
                case "Not started" -> vm.askThenAwait("/jvmm/actions", STOP); // no OS to ask
                case "Paused" ->
                    throw new BootException(
                            Kind.VM_REQUEST_FAILED,
                            name + " is paused and cannot act on its power button: 'jvmm resume " + name
                                    + "' first, or 'jvmm destroy " + name + "'");
                default -> {
                    if (timeout == 0) vm.call("PUT", "/actions", POWER_BUTTON);
                    else vm.askThenAwait("/actions", POWER_BUTTON);
                }
            }
            if (timeout == 0) {
                out().println(name + " is shutting down");
                return 0;
            }
            if (!vm.awaitEnd(Duration.ofSeconds(timeout))) {
                err().println("jvmm: " + name + " did not shut down within " + timeout
                        + " s; it keeps running ('jvmm destroy " + name + "' stops it)");
                return 1;
            }
            out().println(name + " shut down");
            return 0;
        }
    }

    @Command(
            name = "reboot",
            mixinStandardHelpOptions = true,
            description = {
                "Reboot a named VM: press its ACPI power button and, once the guest has powered off, boot it again"
                        + " from the same configuration (as libvirt reboots a guest without an agent).",
                "--hard resets it at once instead, as a reset button does."
            })
    static final class RebootCommand extends OnVm {
        @Option(names = "--hard", description = "Reset at once, without asking the guest.")
        boolean hard;

        @Override
        public Integer call() {
            vm().call("PUT", "/jvmm/actions", "{\"action_type\": \"" + (hard ? "Reset" : "Reboot") + "\"}");
            out().println(name + (hard ? " reset" : " is rebooting"));
            return 0;
        }
    }

    @Command(
            name = "destroy",
            mixinStandardHelpOptions = true,
            description = "Stop a named VM at once (its guest is not asked: as pulling the plug).")
    static final class DestroyCommand extends OnVm {
        @Override
        public Integer call() throws InterruptedException {
            Vm vm = vm();
            vm.askThenAwait("/jvmm/actions", STOP);
            if (!vm.awaitEnd(DESTROY_WAIT)) {
                err().println("jvmm: " + name + " was stopped but its process has not ended within "
                        + DESTROY_WAIT.toSeconds() + " s (pid "
                        + vm.dir().pid(name).orElse(-1) + ")");
                return 1;
            }
            out().println(name + " destroyed");
            return 0;
        }
    }

    @Command(
            name = "save",
            mixinStandardHelpOptions = true,
            description = {
                "Save a running named VM to FILE (its state and memory, one file) and stop it, as virsh save does;"
                        + " 'jvmm restore FILE' runs it again where it was.",
                "The VM is paused while it is saved; with --keep-running it is resumed afterwards. Its disks are"
                        + " not copied: restore it with the images as they are now (a raw image written after the"
                        + " save is refused)."
            })
    static final class SaveCommand extends OnVm {
        @Parameters(index = "1", paramLabel = "FILE", description = "The snapshot file (replaced atomically).")
        Path file;

        @Option(names = "--keep-running", description = "Resume the VM after saving it instead of stopping it.")
        boolean keepRunning;

        @Override
        public Integer call() throws InterruptedException, IOException {
            Vm vm = vm();
            String state = vm.json("/jvmm/vm").path("state").asText();
            if (!state.equals("Running") && !state.equals("Paused"))
                throw new BootException(
                        Kind.VM_REQUEST_FAILED, name + " is " + state.toLowerCase(Locale.ROOT) + ": nothing to save");
            boolean wasRunning = state.equals("Running");
            String path = file.toAbsolutePath().toString();
            String body = new com.fasterxml.jackson.databind.ObjectMapper()
                    .writeValueAsString(Map.of("snapshot_type", "Full", "snapshot_path", path, "mem_file_path", path));
            if (wasRunning) vm.call("PATCH", "/vm", "{\"state\": \"Paused\"}");
            try {
                vm.call("PUT", "/snapshot/create", body);
            } catch (BootException e) {
                if (wasRunning) vm.send("PATCH", "/vm", "{\"state\": \"Resumed\"}"); // as it was
                throw e;
            }
            if (keepRunning) {
                if (wasRunning) vm.call("PATCH", "/vm", "{\"state\": \"Resumed\"}");
                out().println(name + " saved to " + path + (wasRunning ? "; it runs on" : "; it stays paused"));
                return 0;
            }
            vm.askThenAwait("/jvmm/actions", STOP);
            if (!vm.awaitEnd(DESTROY_WAIT)) {
                err().println("jvmm: " + name + " was saved to " + path + " and stopped, but its process has not ended"
                        + " within " + DESTROY_WAIT.toSeconds() + " s (pid "
                        + vm.dir().pid(name).orElse(-1) + ")");
                return 1;
            }
            out().println(name + " saved to " + path + " and stopped; 'jvmm restore " + path + "' runs it again");
            return 0;
        }
    }

    @Command(
            name = "console",
            mixinStandardHelpOptions = true,
            description = {
                "Attach to a named VM's serial console. Ctrl-] detaches; the VM keeps running.",
                "One client at a time: attaching takes the console over from a client attached before, which is told"
                        + " so and detached."
            })
    static final class ConsoleCommand extends OnVm {
        InputStream input = System.in;
        OutputStream output = new FileOutputStream(FileDescriptor.out);

        @Override
        public Integer call() throws IOException, InterruptedException {
            return attach(vm(), input, output, err(), Console.rawTerminal());
        }

        /**
         * Copies the console socket to {@code out} and {@code in} to the socket until Ctrl-] in the input, the VM's
         * end, or another client's attaching. A terminal ({@code savedTty} non-null) is put back as it was.
         */
        static int attach(Vm vm, InputStream in, OutputStream out, PrintWriter err, String savedTty)
                throws IOException, InterruptedException {
            String crlf = savedTty != null ? "\r\n" : "\n";
            try {
                String path = vm.json("/jvmm/vm").path("console_socket").asText(null);
                if (path == null)
                    throw new BootException(
                            Kind.VM_REQUEST_FAILED, vm.name() + " has no console socket (it was not started by name)");
                SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
                try {
                    ch.connect(UnixDomainSocketAddress.of(path));
                } catch (IOException e) {
                    ch.close();
                    throw new BootException(
                            Kind.VM_REQUEST_FAILED, vm.name() + ": cannot connect to its console " + path + ": " + e);
                }
                err.print(
                        "jvmm: attached to " + vm.name() + "'s console; Ctrl-] detaches (the VM keeps running)" + crlf);
                err.flush();
                AtomicBoolean detached = new AtomicBoolean();
                InputStream keysIn = StdinInput.readerFor(in);
                Thread keys = Thread.ofPlatform().daemon().name("console-keys").start(() -> {
                    byte[] buf = new byte[4096];
                    try {
                        int n;
                        while ((n = keysIn.read(buf)) >= 0) {
                            int escape = indexOf(buf, n, Console.ESCAPE);
                            int send = escape < 0 ? n : escape;
                            ByteBuffer b = ByteBuffer.wrap(buf, 0, send);
                            while (b.hasRemaining()) ch.write(b);
                            if (escape >= 0) {
                                detached.set(true);
                                ch.close();
                                return;
                            }
                        }
                        // End of input: nothing more to send; the output goes on until the VM ends or Ctrl-C.
                    } catch (IOException e) {
                        // the console closed
                    }
                });
                byte[] tail = new byte[0];
                try {
                    ByteBuffer buf = ByteBuffer.allocate(8192);
                    while (ch.read(buf.clear()) >= 0) {
                        out.write(buf.array(), 0, buf.position());
                        out.flush();
                        tail = tail(tail, buf.array(), buf.position());
                    }
                } catch (IOException e) {
                    // closed by Ctrl-] (or the VM went away)
                } finally {
                    ch.close();
                    keys.interrupt();
                }
                Console.restoreTerminal(savedTty);
                savedTty = null;
                StdinInput.stop(keysIn, keys, 100);
                if (detached.get()) {
                    err.print(crlf + "jvmm: detached from " + vm.name() + "'s console; it keeps running" + crlf);
                    err.flush();
                    return 0;
                }
                if (Arrays.equals(tail, TAKEN_OVER)) {
                    err.println("jvmm: another client took " + vm.name() + "'s console over");
                    return 1;
                }
                err.println("jvmm: " + vm.name() + "'s console closed: the VM has ended");
                return 0;
            } finally {
                Console.restoreTerminal(savedTty);
            }
        }

        private static final byte[] TAKEN_OVER = ConsoleHub.takenOverNotice();

        private static byte[] tail(byte[] tail, byte[] more, int n) {
            byte[] all = new byte[tail.length + n];
            System.arraycopy(tail, 0, all, 0, tail.length);
            System.arraycopy(more, 0, all, tail.length, n);
            return all.length <= TAKEN_OVER.length
                    ? all
                    : Arrays.copyOfRange(all, all.length - TAKEN_OVER.length, all.length);
        }

        private static int indexOf(byte[] b, int n, int value) {
            for (int i = 0; i < n; i++) if ((b[i] & 0xff) == value) return i;
            return -1;
        }
    }

    /** Columns two spaces apart, each as wide as its widest cell. */
    static void table(PrintWriter out, List<String[]> rows) {
        int cols = rows.stream().mapToInt(r -> r.length).max().orElse(0);
        int[] width = new int[cols];
        for (String[] r : rows) for (int i = 0; i < r.length; i++) width[i] = Math.max(width[i], r[i].length());
        for (String[] r : rows) {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < r.length; i++) {
                line.append(r[i]);
                if (i < r.length - 1) line.append(" ".repeat(width[i] - r[i].length() + 2));
            }
            out.println(line.toString().stripTrailing());
        }
        out.flush();
    }

    /** 3d 04:05:06, 04:05:06 or 0:00:07. */
    static String duration(long millis) {
        long s = millis / 1000, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
        String hms = String.format(Locale.ROOT, "%d:%02d:%02d", h, m, s % 60);
        return d > 0 ? d + "d " + hms : hms;
    }

    static String bytes(long n) {
        if (n < 1024) return n + " B";
        if (n < 1L << 20) return String.format(Locale.ROOT, "%.1f KiB", n / 1024.0);
        if (n < 1L << 30) return String.format(Locale.ROOT, "%.1f MiB", n / (double) (1L << 20));
        return String.format(Locale.ROOT, "%.1f GiB", n / (double) (1L << 30));
    }

    static String micros(long us) {
        if (us < 10_000) return us + " µs";
        return String.format(Locale.ROOT, "%.1f ms", us / 1000.0);
    }

    static String nanos(long ns) {
        if (ns < 10_000) return ns + " ns";
        if (ns < 10_000_000) return ns / 1000 + " µs";
        return ns / 1_000_000 + " ms";
    }
}
