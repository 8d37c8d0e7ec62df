package dev.jvmm.cli;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.boot.MachineConfigException;
import dev.jvmm.core.KvmUnavailableException;
import dev.jvmm.kvm.SyscallException;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The jvmm command line. With no subcommand it runs the bundled demo guest. */
@Command(
        name = "jvmm",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = {
            "A virtual machine monitor on /dev/kvm, in Java.",
            "",
            "With no command, boots a small bundled demo guest that greets you on the serial console and ends the run.",
            "The ./jvmm launcher also runs the benchmark suite: ./jvmm bench [--quick].",
            "",
            "Named VMs (jvmm run --name NAME [--detach]) are reached by name: list, info, console, suspend, resume,"
                    + " shutdown, reboot, destroy."
        },
        subcommands = {
            RunCommand.class,
            ImgCommand.class,
            VmCommands.ListCommand.class,
            VmCommands.InfoCommand.class,
            VmCommands.ConsoleCommand.class,
            VmCommands.SuspendCommand.class,
            VmCommands.ResumeCommand.class,
            VmCommands.ShutdownCommand.class,
            VmCommands.RebootCommand.class,
            VmCommands.DestroyCommand.class,
            VmCommands.SaveCommand.class,
            RunCommand.RestoreHelp.class
        })
public final class Main implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    InputStream input = System.in;

    public static void main(String[] args) {
        Logging.defaults();
        System.exit(execute(
                StdinInput.ofProcess(), new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    public static int execute(String... args) {
        return execute(System.in, new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
    }

    /** Runs a command with the guest console's input from in and messages going to out and err (tests, embedding). */
    public static int execute(InputStream in, PrintWriter out, PrintWriter err, String... args) {
        return execute(in, out, err, System.getenv(), args);
    }

    /** As above, with the environment the command sees (where named VMs live: see {@link RuntimeDir}). */
    static int execute(InputStream in, PrintWriter out, PrintWriter err, Map<String, String> env, String... args) {
        // picocli builds its model by reflection over every option of every command it is given, and its classes
        // (old bytecode) cannot go into the JDK's AOT cache: a command that is named first gets only its own model,
        // which keeps the launch of `jvmm run` short. Help, version and unknown commands get the whole tree.
        String first = args.length == 0 ? "" : args[0];
        String[] rest = args.length == 0 ? args : java.util.Arrays.copyOfRange(args, 1, args.length);
        CommandLine cl;
        switch (first) {
            case "" -> {
                return runDemo(in, err);
            }
            case "run" -> {
                RunCommand run = new RunCommand();
                run.input = in;
                run.env = env;
                cl = new CommandLine(run).setCommandName("jvmm run");
                args = rest;
            }
            case "restore" -> {
                // jvmm restore FILE [options]: a run whose machine comes from the snapshot (RunCommand --restore).
                RunCommand run = new RunCommand();
                run.input = in;
                run.env = env;
                cl = new CommandLine(run).setCommandName("jvmm restore");
                if (rest.length > 0 && !rest[0].startsWith("-")) {
                    String[] translated = new String[rest.length + 1];
                    translated[0] = "--restore";
                    System.arraycopy(rest, 0, translated, 1, rest.length);
                    args = translated;
                } else if (rest.length > 0 && (rest[0].equals("--help") || rest[0].equals("-h"))) {
                    cl = new CommandLine(new RunCommand.RestoreHelp()).setCommandName("jvmm restore");
                    args = rest;
                } else {
                    err.println(
                            "jvmm: restore needs the snapshot FILE first: jvmm restore FILE [--name NAME] [--detach]");
                    return 1;
                }
            }
            case "list", "info", "console", "suspend", "resume", "shutdown", "reboot", "destroy", "save" -> {
                VmCommands.Verb verb = verb(first);
                verb.env = env;
                if (verb instanceof VmCommands.ConsoleCommand c) c.input = in;
                cl = new CommandLine(verb).setCommandName("jvmm " + first);
                args = rest;
            }
            case "img" -> {
                cl = new CommandLine(new ImgCommand()).setCommandName("jvmm img");
                args = rest;
            }
            default -> {
                Main main = new Main();
                main.input = in;
                cl = new CommandLine(main);
                RunCommand run = (RunCommand) cl.getSubcommands().get("run").getCommand();
                run.input = in;
                run.env = env;
                for (CommandLine sub : cl.getSubcommands().values())
                    if (sub.getCommand() instanceof VmCommands.Verb v) {
                        v.env = env;
                        if (v instanceof VmCommands.ConsoleCommand c) c.input = in;
                    }
            }
        }
        cl.setOut(out);
        cl.setErr(err);
        cl.setParameterExceptionHandler((ex, a) -> {
            ex.getCommandLine()
                    .getErr()
                    .println("jvmm: " + ex.getMessage() + " (see '"
                            + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help')");
            return 1;
        });
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            commandLine.getErr().println("jvmm: " + userMessage(ex));
            if (!(ex instanceof BootException
                    || ex instanceof SyscallException
                    || ex instanceof IllegalArgumentException)) ex.printStackTrace(commandLine.getErr());
            return 1;
        });
        return cl.execute(args);
    }

    private static VmCommands.Verb verb(String name) {
        return switch (name) {
            case "list" -> new VmCommands.ListCommand();
            case "info" -> new VmCommands.InfoCommand();
            case "console" -> new VmCommands.ConsoleCommand();
            case "suspend" -> new VmCommands.SuspendCommand();
            case "resume" -> new VmCommands.ResumeCommand();
            case "shutdown" -> new VmCommands.ShutdownCommand();
            case "reboot" -> new VmCommands.RebootCommand();
            case "save" -> new VmCommands.SaveCommand();
            default -> new VmCommands.DestroyCommand();
        };
    }

    static String userMessage(Exception ex) {
        // The library says what is wrong with a config in its own terms; the user gave options.
        String m = ex instanceof MachineConfigException c ? RunCommand.optionMessage(c) : ex.getMessage();
        if (m == null) m = ex.getClass().getSimpleName();
        // The launcher can run jvmm where KVM works after all: inside an emulated machine (scripts/with-kvm).
        if (ex instanceof KvmUnavailableException k && k.deviceMissing())
            m += "; or run jvmm inside an emulated machine with KVM:"
                    + " JVMM_EMULATE=1 ./jvmm ... (20-40x slower; see README)";
        return m;
    }

    @Override
    public Integer call() throws Exception {
        return runDemo(input, spec.commandLine().getErr());
    }

    /** The default job: the bundled demo guest, as `jvmm run --kernel demo.elf --memory 64M` would boot it. */
    private static int runDemo(InputStream in, PrintWriter err) {
        try {
            Path demo = extractDemo();
            try {
                RunCommand run = new RunCommand();
                run.input = in;
                CommandLine cl = new CommandLine(run);
                cl.setErr(err);
                cl.parseArgs("--kernel", demo.toString(), "--memory", "64M", "--cmdline", "demo");
                return run.call();
            } finally {
                Files.deleteIfExists(demo);
            }
        } catch (Exception e) {
            err.println("jvmm: " + userMessage(e));
            if (!(e instanceof BootException || e instanceof SyscallException)) e.printStackTrace(err);
            err.flush();
            return 1;
        }
    }

    private static Path extractDemo() throws IOException {
        try (InputStream in = Main.class.getResourceAsStream("/guests/demo.elf")) {
            if (in == null)
                throw new BootException(
                        Kind.FILE_NOT_FOUND,
                        "the demo guest is missing from the jar (was it built with make and gcc?)");
            Path p = Files.createTempFile("jvmm-demo", ".elf");
            Files.write(p, in.readAllBytes());
            return p;
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"jvmm " + (v != null ? v : "(development build)") + " on Java " + Runtime.version()};
        }
    }
}
