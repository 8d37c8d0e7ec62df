package dev.jvmm.bench;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The benchmark guest as a multiboot kernel under {@code qemu-system-x86_64 -M microvm -enable-kvm}, timed by
 * the guest itself (rdtsc), as QEMU offers no hook to time from outside.
 */
public final class Qemu {
    private static final Pattern CYCLES = Pattern.compile("R kind=\\S+ cpl=\\d n=\\d+ cycles=([0-9a-f]+)");

    private Qemu() {}

    /** The command line used for every QEMU run (exit benchmarks, launch, memory). */
    public static List<String> command(Path qemu, Path elf, String cmdline, int memoryMiB) {
        return List.of(
                qemu.toString(),
                "-M",
                "microvm",
                "-enable-kvm",
                "-m",
                memoryMiB + "M",
                "-nodefaults",
                "-no-reboot",
                "-display",
                "none",
                "-kernel",
                elf.toString(),
                "-append",
                cmdline,
                "-debugcon",
                "stdio",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=4");
    }

    /** The guest's rdtsc delta of each batch. */
    public static List<Long> runCycles(Path qemu, Path elf, String cmdline) {
        String out;
        int rc;
        try {
            Process p = new ProcessBuilder(command(qemu, elf, cmdline, 64))
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            out = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("QEMU did not finish for '" + cmdline + "'");
            }
            rc = p.exitValue();
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + qemu + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        List<Long> cycles = new ArrayList<>();
        Matcher m = CYCLES.matcher(out);
        while (m.find()) cycles.add(Long.parseUnsignedLong(m.group(1), 16));
        // isa-debug-exit makes QEMU exit with (code << 1) | 1: the guest's 0 is status 1.
        if (rc != 1 || cycles.isEmpty())
            throw new IllegalStateException("QEMU run failed (status " + rc + ") for '" + cmdline + "':\n" + out);
        return cycles;
    }
}
