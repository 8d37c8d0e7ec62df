package dev.jvmm.bench;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

/**
 * Launch time and memory of a trivial guest with 512 MiB of RAM under refvmm, QEMU microvm and jvmm, the
 * latter with several JVM settings (each recorded with what it gave). CDS and AOT caches only hold classes
 * from jars, so directories on this JVM's class path are packed into jars first.
 */
final class LaunchBench {
    interface Say {
        void say(String format, Object... args);
    }

    static final int GUEST_MIB = 512;
    private static final Stats NONE = Stats.of(new double[0]);
    private final Report.Config config;
    private final NativeTools tools;
    private final Say say;
    private final Path work;

    LaunchBench(Report.Config config, NativeTools tools, Say say) {
        this.config = config;
        this.tools = tools;
        this.say = say;
        this.work = config.out().resolve("launch");
    }

    List<Report.LaunchRow> run() throws IOException {
        Files.createDirectories(work);
        List<Report.LaunchRow> rows = new ArrayList<>();
        String bin = tools.guestBinary().toString();
        rows.add(measure(
                "C reference (refvmm)",
                "-",
                List.of(tools.refvmm().toString(), bin, "kind=none", "--mem", "" + GUEST_MIB),
                List.of(tools.refvmm().toString(), bin, "kind=idle", "--mem", "" + GUEST_MIB),
                ""));
        NativeTools.qemu()
                .ifPresentOrElse(
                        q -> rows.add(measure(
                                "QEMU microvm",
                                "-M microvm -enable-kvm",
                                Qemu.command(q, tools.guestElf(), "kind=none", GUEST_MIB),
                                Qemu.command(q, tools.guestElf(), "kind=idle", GUEST_MIB),
                                "")),
                        () -> rows.add(notMeasured("QEMU microvm", "-", "qemu-system-x86_64 not installed")));

        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String cp = jarClasspath();
        List<String> serial = List.of("-XX:+UseSerialGC", "-Xms16m", "-Xmx64m");
        rows.add(jvmm(java, cp, "SerialGC -Xms16m -Xmx64m", serial, null));
        rows.add(cli());
        if (!config.everyJvmSetting()) return rows;
        rows.add(jvmm(java, cp, "JDK defaults (G1, default heap)", List.of(), null));
        rows.add(jvmm(
                java,
                cp,
                "SerialGC -Xmx64m, C1 only (TieredStopAtLevel=1)",
                plus(serial, "-XX:TieredStopAtLevel=1"),
                null));
        Path jsa = work.resolve("jvmm-dynamic.jsa");
        Files.deleteIfExists(jsa);
        rows.add(jvmm(
                java,
                cp,
                "SerialGC -Xmx64m, AppCDS dynamic archive",
                plus(serial, "-XX:SharedArchiveFile=" + jsa, "-XX:+AutoCreateSharedArchive"),
                List.of()));
        if (Runtime.version().feature() >= 25) {
            rows.add(jvmmWithAotCache(java, cp, "SerialGC -Xmx64m, AOT cache (JEP 483/514)", serial, "jvmm.aot"));
            List<String> leanFlags =
                    plus(serial, "-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=16m", "-Xss512k");
            rows.add(jvmmWithAotCache(
                    java, cp, "SerialGC -Xmx64m, C1 only, 16 MiB code cache, AOT cache", leanFlags, "jvmm-lean.aot"));
        }
        return rows;
    }

    /**
     * What a user runs: the distribution's bin/jvmm (its JVM options and the AOT cache the build trained on the
     * demo guest) booting the same guest through `jvmm run`, so the CLI's own start is in the figures.
     */
    private Report.LaunchRow cli() {
        return tools.distributionLauncher()
                .map(launcher -> {
                    List<String> run = List.of(
                            launcher.toString(),
                            "run",
                            "--kernel",
                            tools.guestElf().toString(),
                            "-m",
                            GUEST_MIB + "M",
                            "--debug-exit",
                            "0xf4",
                            "--debugcon",
                            "stdio",
                            "--cmdline");
                    return measure(
                            "jvmm CLI",
                            "bin/jvmm run (distribution)",
                            plus(run, "kind=none"),
                            plus(run, "kind=idle"),
                            "");
                })
                .orElseGet(() -> notMeasured(
                        "jvmm CLI",
                        "bin/jvmm run (distribution)",
                        "no staged distribution (mvn package stages cli/target/dist)"));
    }

    /** A jvmm row with an AOT cache (a fresh one in the work folder, made by a training run with the same flags). */
    private Report.LaunchRow jvmmWithAotCache(
            String java, String cp, String settings, List<String> flags, String cacheName) throws IOException {
        Path cache = work.resolve(cacheName);
        Files.deleteIfExists(cache);
        return jvmm(
                java, cp, settings, plus(flags, "-XX:AOTCache=" + cache), plus(flags, "-XX:AOTCacheOutput=" + cache));
    }

    /** A jvmm row; training flags, when given, run once first (to create a CDS archive or AOT cache). */
    private Report.LaunchRow jvmm(String java, String cp, String settings, List<String> flags, List<String> training) {
        if (training != null) {
            List<String> t = command(java, cp, training.isEmpty() ? flags : training, "kind=none");
            try {
                Footprint.launch(t);
            } catch (RuntimeException e) {
                return notMeasured("jvmm", settings, "training run failed: " + e.getMessage());
            }
        }
        return measure(
                "jvmm", settings, command(java, cp, flags, "kind=none"), command(java, cp, flags, "kind=idle"), "");
    }

    private List<String> command(String java, String cp, List<String> flags, String cmdline) {
        // JVM logging goes to stderr so that stdout carries only guest output (its first byte is timed).
        List<String> c = new ArrayList<>(List.of(
                java,
                "--enable-native-access=ALL-UNNAMED",
                "-Xlog:disable",
                "-Xlog:all=warning:stderr",
                Footprint.T0_ARGUMENT));
        c.addAll(flags);
        c.addAll(List.of(
                "-cp", cp, LaunchMain.class.getName(), tools.guestBinary().toString(), "" + GUEST_MIB, cmdline));
        return c;
    }

    private Report.LaunchRow measure(String vmm, String settings, List<String> launch, List<String> idle, String note) {
        say.say("[launch] %s %s", vmm, settings);
        try {
            List<Double> first = new ArrayList<>(),
                    exit = new ArrayList<>(),
                    main = new ArrayList<>(),
                    ffm = new ArrayList<>(),
                    built = new ArrayList<>();
            for (int i = 0; i < config.launchRuns(); i++) {
                Footprint.Launch l = Footprint.launch(launch);
                first.add(l.firstOutputMs());
                exit.add(l.exitMs());
                if (!Double.isNaN(l.mainMs())) {
                    main.add(l.mainMs());
                    ffm.add(l.ffmMs());
                    built.add(l.vmBuiltMs());
                }
            }
            Footprint.Memory m = Footprint.memory(idle, (long) GUEST_MIB << 20);
            say.say(
                    "    first output %.1f ms, exit %.1f ms, RSS %d kB (%d kB beyond guest RAM)",
                    Stats.of(first).median(), Stats.of(exit).median(), m.rssKb(), m.beyondGuestKb());
            return new Report.LaunchRow(
                    vmm,
                    settings,
                    Stats.of(first),
                    Stats.of(exit),
                    Stats.of(main),
                    Stats.of(ffm),
                    Stats.of(built),
                    m,
                    note);
        } catch (RuntimeException e) {
            say.say("    failed: %s", e.getMessage());
            return notMeasured(
                    vmm,
                    settings,
                    "failed: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }

    /** A row without figures, saying why. */
    private static Report.LaunchRow notMeasured(String vmm, String settings, String why) {
        return new Report.LaunchRow(vmm, settings, NONE, NONE, NONE, NONE, NONE, null, why);
    }

    private static List<String> plus(List<String> base, String... more) {
        List<String> l = new ArrayList<>(base);
        l.addAll(List.of(more));
        return l;
    }

    /** This JVM's class path as jars only: manifest Class-Path entries expanded, directories packed. */
    private String jarClasspath() throws IOException {
        List<Path> entries = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            if (e.isEmpty()) continue;
            Path p = Path.of(e).toAbsolutePath();
            entries.add(p);
            if (Files.isRegularFile(p) && p.toString().endsWith(".jar")) {
                try (JarFile jar = new JarFile(p.toFile())) {
                    var mf = jar.getManifest();
                    String more = mf == null ? null : mf.getMainAttributes().getValue(Attributes.Name.CLASS_PATH);
                    if (more != null) {
                        for (String u : more.trim().split("\\s+")) {
                            URI uri = p.toUri().resolve(u);
                            entries.add(Path.of(uri));
                        }
                    }
                }
            }
        }
        Path cpDir = work.resolve("classpath");
        Files.createDirectories(cpDir);
        List<String> out = new ArrayList<>();
        int i = 0;
        for (Path p : entries) {
            if (Files.isDirectory(p)) {
                Path jar = cpDir.resolve("dir" + (i++) + "-" + p.getParent().getFileName() + ".jar");
                packDirectory(p, jar);
                out.add(jar.toString());
            } else if (Files.isRegularFile(p)) {
                out.add(p.toString());
            }
        }
        return String.join(java.io.File.pathSeparator, out);
    }

    private static void packDirectory(Path dir, Path jar) throws IOException {
        try (OutputStream fo = Files.newOutputStream(jar);
                JarOutputStream jo = new JarOutputStream(fo);
                Stream<Path> files = Files.walk(dir)) {
            for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile).sorted()::iterator) {
                jo.putNextEntry(new JarEntry(dir.relativize(f).toString().replace('\\', '/')));
                try {
                    Files.copy(f, jo);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                jo.closeEntry();
            }
        }
    }
}
