package dev.jvmm.bench;

import dev.jvmm.core.testing.DebianGuest;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Time from process spawn to the serial console's login prompt for a Debian guest (scripts/debian-image.sh),
 * jvmm (`jvmm run`, as a user starts it) against QEMU with KVM (q35, the host's CPU model), the same kernel,
 * initramfs and image, each boot on a fresh qcow2 overlay so that every boot is a first boot. The two alternate
 * and a ratio is taken per round.
 */
final class LoginBench {
    static final int CPUS = 2;
    static final String MEMORY = "1G";
    private static final String PROMPT = DebianGuest.LOGIN_PROMPT;

    private static final Duration TIMEOUT = Duration.ofMinutes(15);

    private final DebianGuest guest;
    private final Path work;
    private final int rounds;
    private final LaunchBench.Say say;

    LoginBench(Path image, Path work, int rounds, LaunchBench.Say say) {
        this.guest = new DebianGuest(image);
        this.work = work;
        this.rounds = rounds;
        this.say = say;
    }

    /** Why the measurement cannot run here, or null if it can. */
    static String unavailable(Path image) {
        if (dev.jvmm.core.Kvm.emulatesGuestKernel())
            return "kvm_pvm host: guest kernel code is emulated and a distribution kernel stops in early boot";
        if (NativeTools.qemu().isEmpty()) return "qemu-system-x86_64 not installed";
        DebianGuest guest = new DebianGuest(image);
        for (Path f : List.of(guest.kernel(), guest.initrd(), guest.disk()))
            if (!Files.isRegularFile(f)) return f + " missing (scripts/debian-image.sh makes it)";
        return null;
    }

    Report.LoginResult run() throws IOException, InterruptedException {
        Files.createDirectories(work);
        List<Double> jvmm = new ArrayList<>(), qemu = new ArrayList<>(), ratio = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            double j = secondsToLogin(jvmmCommand(overlay("jvmm-" + r)), work, "jvmm-" + r, TIMEOUT);
            double q = secondsToLogin(qemuCommand(overlay("qemu-" + r)), work, "qemu-" + r, TIMEOUT);
            jvmm.add(j);
            qemu.add(q);
            ratio.add(j / q);
            say.say("    round %d: jvmm %.1f s, QEMU %.1f s (ratio %.2f)", r + 1, j, q, j / q);
        }
        return new Report.LoginResult(Stats.of(jvmm), Stats.of(qemu), Stats.of(ratio), "");
    }

    private Path overlay(String name) throws IOException, InterruptedException {
        Path overlay = work.resolve(name + ".qcow2");
        Files.deleteIfExists(overlay);
        return guest.overlay(overlay);
    }

    private List<String> jvmmCommand(Path overlay) {
        return guest.jvmmCommand(overlay, CPUS, MEMORY, "user");
    }

    private List<String> qemuCommand(Path overlay) {
        return guest.qemuCommand(
                NativeTools.qemu().orElseThrow().toString(),
                overlay,
                CPUS,
                MEMORY,
                List.of("-nodefaults", "-serial", "stdio"));
    }

    /**
     * Spawns the VMM and reads its stdout (the guest's console, copied to {@code work/name.log}) until the login
     * prompt; then kills it.
     */
    static double secondsToLogin(List<String> command, Path work, String name, Duration timeout)
            throws IOException, InterruptedException {
        Path log = work.resolve(name + ".log");
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(command)
                .redirectError(work.resolve(name + ".err").toFile())
                .start();
        CompletableFuture<Long> prompt = new CompletableFuture<>();
        // A thread of its own: a reader blocked on a console that never ends must not hold up the next one.
        Thread.ofPlatform()
                .daemon()
                .name("console-" + name)
                .start(() -> prompt.complete(awaitPrompt(p.getInputStream(), log)));
        try {
            Long at = prompt.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (at == null)
                throw new IllegalStateException(name + ": the console ended before a login prompt; see " + log);
            return (at - t0) / 1e9;
        } catch (TimeoutException e) {
            throw new IllegalStateException(name + ": no login prompt within " + timeout + "; see " + log);
        } catch (ExecutionException e) {
            throw new IllegalStateException(name + ": " + e.getCause().getMessage(), e.getCause());
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor();
        }
    }

    /** The nanoTime at which the prompt appeared, or null at end of stream; the console is copied into log. */
    private static Long awaitPrompt(InputStream console, Path log) {
        byte[] buf = new byte[8192];
        StringBuilder text = new StringBuilder();
        try (var out = Files.newOutputStream(log)) {
            for (int n; (n = console.read(buf)) > 0; ) {
                long now = System.nanoTime();
                out.write(buf, 0, n);
                text.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                if (text.indexOf(PROMPT, Math.max(0, text.length() - n - PROMPT.length())) >= 0) return now;
            }
            return null;
        } catch (IOException e) {
            return null;
        }
    }
}
