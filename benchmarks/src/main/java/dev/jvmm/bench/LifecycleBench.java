package dev.jvmm.bench;

import dev.jvmm.agent.DebianKernel;
import dev.jvmm.agent.ExecResult;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.x86.EntryState;
import dev.jvmm.devices.legacy.DebugExit;
import dev.jvmm.microvm.MicroVm;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The life of a VM used from a Java program or a test, in two parts.
 *
 * <p><b>In-process VM lifecycle</b>: a {@link VirtualMachine} built with its defaults (64 MiB, in-kernel irqchip
 * and PIT, one vCPU), given three instructions ("mov al, 0; out 0xf4, al; hlt"), started, run to the guest's
 * first exit (the OUT to {@link DebugExit}: with an in-kernel irqchip HLT never leaves the kernel) and closed,
 * against the C floor (src/main/c/lifecycle.c) doing the same ioctls for a VM of the same shape, in paired
 * rounds: per round one C process living {@code lives} VMs, then as many in this JVM (warm: its first lives are
 * not counted), and the ratio of the two medians.
 *
 * <p><b>A Linux micro-VM</b> ({@link MicroVm} on Debian's kernel with the agent's initramfs, no network): from
 * nothing to {@code exec("true")} answered, as a test that starts its own VM pays it, split into its phases; and
 * {@code exec("true")} on a VM that stays up, as tests sharing one VM pay it. Only where a whole Linux boots (not
 * under kvm_pvm, which stops Linux in its early boot: ../shared/HOST.md).
 */
final class LifecycleBench {
    record Lifecycle(int lives, Stats cMs, Stats jvmmMs, Stats ratio, String note) {}

    record MicroVmRow(
            int rounds,
            Stats launchMs,
            Stats bootMs,
            Stats connectMs,
            Stats firstExecMs,
            Stats totalMs,
            Stats reusedExecMs,
            Stats closeMs,
            String note) {}

    record Result(Lifecycle lifecycle, MicroVmRow microVm) {}

    static final long GUEST_ADDR = 0x10_0000;
    private static final byte[] GUEST = {(byte) 0xb0, 0x00, (byte) 0xe6, (byte) DebugExit.DEFAULT_IOBASE, (byte) 0xf4};
    private static final Stats NONE = Stats.of(new double[0]);

    private final int rounds;
    private final int lives;
    private final int execs;
    private final NativeTools tools;
    private final LaunchBench.Say say;

    LifecycleBench(int rounds, int lives, int execs, NativeTools tools, LaunchBench.Say say) {
        this.rounds = rounds;
        this.lives = lives;
        this.execs = execs;
        this.tools = tools;
        this.say = say;
    }

    static LifecycleBench of(Report.Config config, NativeTools tools, LaunchBench.Say say) {
        return new LifecycleBench(config.rounds(), config.quick() ? 8 : 30, config.quick() ? 10 : 50, tools, say);
    }

    /**
     * Both parts; the micro-VM's only in a full report (a quick one is a smoke test, and in the emulated machine a
     * Linux boot takes minutes): {@link #main} runs it alone.
     */
    Result run(boolean quick) {
        return new Result(
                lifecycle(),
                quick ? notMeasured("quick mode (the full report, or LifecycleBench's main, measures it)") : microVm());
    }

    Lifecycle lifecycle() {
        say.say(
                "[lifecycle] a VM created, run to its first exit and closed: C / jvmm, %d round(s) of %d",
                rounds, lives);
        try {
            for (int i = 0; i < Math.max(lives, 20); i++) jvmmLife(); // class loading, linkage, JIT
            List<Double> c = new ArrayList<>(), jvmm = new ArrayList<>(), ratio = new ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                Stats cRound = Stats.of(cLives(lives));
                double[] j = new double[lives];
                for (int i = 0; i < lives; i++) j[i] = jvmmLife() / 1e6;
                Stats jRound = Stats.of(j);
                c.add(cRound.median());
                jvmm.add(jRound.median());
                ratio.add(jRound.median() / cRound.median());
                say.say(
                        "    round %d: C %.2f ms, jvmm %.2f ms (medians of %d)",
                        r + 1, cRound.median(), jRound.median(), lives);
            }
            return new Lifecycle(lives, Stats.of(c), Stats.of(jvmm), Stats.of(ratio), "");
        } catch (IOException | RuntimeException e) {
            say.say("    failed: %s", e);
            return new Lifecycle(lives, NONE, NONE, NONE, "failed: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Lifecycle(lives, NONE, NONE, NONE, "interrupted");
        }
    }

    /** One VM's life in this JVM, in nanoseconds. */
    static long jvmmLife() throws InterruptedException {
        long t0 = System.nanoTime();
        try (VirtualMachine vm = VirtualMachine.builder().build()) {
            vm.memory().write(GUEST_ADDR, GUEST);
            vm.ioBus().register("debug-exit", DebugExit.DEFAULT_IOBASE, 1, new DebugExit(vm));
            vm.setEntry(0, EntryState.protectedMode(GUEST_ADDR));
            vm.start();
            ExitStatus status = vm.awaitExit(Duration.ofSeconds(30))
                    .orElseThrow(() -> new IllegalStateException("the lifecycle guest did not exit in 30 s"));
            if (!(status instanceof ExitStatus.GuestExit exit) || exit.code() != 0)
                throw new IllegalStateException("the lifecycle guest ended with " + status);
        }
        return System.nanoTime() - t0;
    }

    private double[] cLives(int n) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(tools.lifecycle().toString(), Integer.toString(n))
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IOException("lifecycle (C) did not finish");
        }
        List<Double> ms = new ArrayList<>();
        for (String line : out.split("\n"))
            if (line.startsWith("lifecycle "))
                ms.add(Long.parseLong(line.substring(10).trim()) / 1e6);
        if (p.exitValue() != 0 || ms.size() != n)
            throw new IOException("lifecycle (C) failed with status " + p.exitValue() + ": " + out.strip());
        return ms.stream().mapToDouble(Double::doubleValue).toArray();
    }

    MicroVmRow microVm() {
        String why = wholeLinuxUnavailable();
        say.say(
                "[micro-VM] Debian's kernel and the agent's initramfs to exec(\"true\"), %d round(s)%s",
                rounds, why == null ? "" : ": skipped, " + why);
        if (why != null) return notMeasured(why);
        try {
            DebianKernel debian = DebianKernel.resolve();
            debian.kernel();
            List<Double> launch = new ArrayList<>(),
                    boot = new ArrayList<>(),
                    connect = new ArrayList<>(),
                    first = new ArrayList<>(),
                    total = new ArrayList<>(),
                    reused = new ArrayList<>(),
                    close = new ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                long t0 = System.nanoTime();
                MicroVm vm = MicroVm.builder().kernel(debian).launch();
                long t1, t2, t3, t4;
                try {
                    t1 = System.nanoTime();
                    vm.awaitConsole(MicroVm.AGENT_LISTENING, Duration.ofMinutes(5));
                    t2 = System.nanoTime();
                    vm.awaitAgent(Duration.ofMinutes(1));
                    t3 = System.nanoTime();
                    check(vm.exec("true"));
                    t4 = System.nanoTime();
                    for (int i = 0; i < execs; i++) {
                        long e0 = System.nanoTime();
                        check(vm.exec("true"));
                        reused.add((System.nanoTime() - e0) / 1e6);
                    }
                } finally {
                    long c0 = System.nanoTime();
                    vm.close();
                    close.add((System.nanoTime() - c0) / 1e6);
                }
                launch.add((t1 - t0) / 1e6);
                boot.add((t2 - t1) / 1e6);
                connect.add((t3 - t2) / 1e6);
                first.add((t4 - t3) / 1e6);
                total.add((t4 - t0) / 1e6);
                say.say(
                        "    round %d: exec(\"true\") answered %.0f ms after start (launch %.0f, boot to the agent "
                                + "%.0f, connect %.0f, first exec %.0f)",
                        r + 1, total.getLast(), launch.getLast(), boot.getLast(), connect.getLast(), first.getLast());
            }
            return new MicroVmRow(
                    rounds,
                    Stats.of(launch),
                    Stats.of(boot),
                    Stats.of(connect),
                    Stats.of(first),
                    Stats.of(total),
                    Stats.of(reused),
                    Stats.of(close),
                    "");
        } catch (Exception e) {
            if (e instanceof InterruptedException) Thread.currentThread().interrupt();
            say.say("    failed: %s", e);
            return notMeasured("failed: " + e.getMessage());
        }
    }

    private static void check(ExecResult result) {
        if (result.exitCode() != 0)
            throw new IllegalStateException("exec(\"true\") ended with " + result.exitCode() + ": " + result.stderr());
    }

    private static MicroVmRow notMeasured(String why) {
        return new MicroVmRow(0, NONE, NONE, NONE, NONE, NONE, NONE, NONE, why);
    }

    /** Why a whole Linux cannot boot here, or null. */
    static String wholeLinuxUnavailable() {
        if (dev.jvmm.core.Kvm.emulatesGuestKernel())
            return "/dev/kvm is kvm_pvm here, under which Linux stops in its early boot";
        return null;
    }

    /**
     * Runs the lifecycle and micro-VM parts alone (for the emulated machine, where the whole report would take too
     * long): {@code LifecycleBench [ROUNDS [LIVES [EXECS]]]}.
     */
    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        int lives = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        int execs = args.length > 2 ? Integer.parseInt(args[2]) : 20;
        LaunchBench.Say say = (format, a) -> System.out.println(String.format(format, a));
        Result r = new LifecycleBench(rounds, lives, execs, NativeTools.locate(), say).run(false);
        System.out.println(r.lifecycle());
        System.out.println(r.microVm());
    }
}
