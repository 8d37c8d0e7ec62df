package dev.jvmm.cli;

import dev.jvmm.boot.Machine;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Connects the guest's serial console to this process's terminal. On a terminal it switches to raw mode
 * (keys go to the guest as typed) and Ctrl-] leaves, as virsh console does; otherwise standard input is
 * copied to the guest until it ends.
 */
final class Console implements AutoCloseable {
    static final int ESCAPE = 0x1d; // Ctrl-]

    private final boolean interactive;
    private final String savedTty;
    private final Thread reader;
    private final InputStream source; // what reader reads (StdinInput.readerFor)

    private Console(boolean interactive, String savedTty, Thread reader, InputStream source) {
        this.interactive = interactive;
        this.savedTty = savedTty;
        this.reader = reader;
        this.source = source;
    }

    /**
     * Attaches for a whole run, across reboots: input goes to whichever machine {@code machine} gives at the time,
     * and waits while there is none (between a reset and the next boot), so piped input is not lost. Ctrl-] stops
     * the machine (waiting for it, if a reboot is between two).
     */
    static Console attach(Supplier<Machine> machine, InputStream in, PrintWriter err) {
        return attach(
                machine,
                () -> {
                    try {
                        current(machine).stop();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                },
                in,
                err);
    }

    /** As above, with what Ctrl-] does: an API-configured run ends also before its machine exists. */
    static Console attach(Supplier<Machine> machine, Runnable onEscape, InputStream in, PrintWriter err) {
        String saved = rawTerminal();
        boolean interactive = saved != null;
        if (interactive) {
            err.print("jvmm: serial console attached; press Ctrl-] to quit\r\n");
            err.flush();
        }
        boolean raw = interactive;
        InputStream source = StdinInput.readerFor(in);
        Thread t = Thread.ofPlatform().daemon().name("console-input").start(() -> {
            byte[] buf = new byte[4096];
            try {
                int n;
                while ((n = source.read(buf)) > 0) {
                    if (raw) {
                        for (int i = 0; i < n; i++) {
                            if ((buf[i] & 0xff) == ESCAPE) {
                                Machine now = machine.get();
                                if (i > 0 && now != null) now.consoleInput(java.util.Arrays.copyOf(buf, i));
                                onEscape.run();
                                return;
                            }
                        }
                    }
                    current(machine).consoleInput(java.util.Arrays.copyOf(buf, n));
                }
            } catch (IOException e) {
                // standard input went away: the guest simply gets no more input
            } catch (InterruptedException e) {
                // the console is being closed
            }
        });
        return new Console(interactive, saved, t, source);
    }

    private static Machine current(Supplier<Machine> machine) throws InterruptedException {
        Machine m;
        while ((m = machine.get()) == null) Thread.sleep(10);
        return m;
    }

    /**
     * Puts the terminal into raw mode (keys as typed, no echo) when this process runs on one; returns what {@link
     * #restoreTerminal} needs to undo it, or null when there is no terminal (input is piped).
     */
    static String rawTerminal() {
        if (System.console() == null || !System.console().isTerminal() || !new File("/dev/tty").canRead()) return null;
        String saved = stty("-g");
        if (saved == null || stty("raw", "-echo") == null) return null;
        return saved;
    }

    static void restoreTerminal(String saved) {
        if (saved != null) stty(saved);
    }

    private static String stty(String... args) {
        try {
            String[] cmd = new String[args.length + 1];
            cmd[0] = "stty";
            System.arraycopy(args, 0, cmd, 1, args.length);
            Process p = new ProcessBuilder(cmd)
                    .redirectInput(new File("/dev/tty"))
                    .redirectErrorStream(true)
                    .start();
            String out = new String(p.getInputStream().readAllBytes()).trim();
            if (!p.waitFor(5, TimeUnit.SECONDS) || p.exitValue() != 0) return null;
            return out;
        } catch (IOException | InterruptedException e) {
            return null;
        }
    }

    boolean interactive() {
        return interactive;
    }

    @Override
    public void close() {
        restoreTerminal(savedTty);
        try {
            StdinInput.stop(source, reader, 0);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
