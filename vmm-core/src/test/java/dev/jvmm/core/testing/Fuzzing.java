package dev.jvmm.core.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Runs a Jazzer fuzz target (a {@code @FuzzTest} method) under Jazzer's own driver in a new JVM on this JVM's class
 * path, coverage-guided, for a while: each module's FuzzTargetsTest runs every target of the module briefly in the
 * test suite, and scripts/fuzz runs one for as long as asked. (Jazzer's JUnit integration fuzzes only one target
 * per JVM and only for the duration its annotation fixes, so it serves for replaying the saved inputs, which a
 * normal test run does.)
 *
 * <p>System properties: {@code jvmm.fuzz.seconds} (default 5: the suite runs every target) how long each target
 * runs; {@code jvmm.fuzz.target} runs only the targets whose {@code Class#method} contains it;
 * {@code jvmm.fuzz.corpus} a folder to keep each target's corpus in between runs (default: the module's
 * target/fuzz).
 */
public final class Fuzzing {
    /** What a run did: libFuzzer's executions and its exit code (0: no finding). */
    public record Result(long runs, int exitCode, Path log, List<Path> findings) {}

    private Fuzzing() {}

    /** Seconds per target from {@code jvmm.fuzz.seconds}. */
    public static int seconds() {
        return Integer.getInteger("jvmm.fuzz.seconds", 5);
    }

    /** The targets ({@code Class#method}) that {@code jvmm.fuzz.target} selects, all when it is unset. */
    public static Stream<String> selected(String... targets) {
        String only = System.getProperty("jvmm.fuzz.target", "");
        return Stream.of(targets).filter(t -> t.contains(only));
    }

    /**
     * Fuzzes {@code target} ({@code fully.qualified.Class#method}) for {@link #seconds()}, starting from its saved
     * inputs (src/test/resources/.../ClassInputs/method, which JUnit replays) and the corpus of earlier runs, and
     * fails the test on a finding, naming the input that caused it.
     */
    public static void fuzzWithoutFinding(String target) throws IOException, InterruptedException {
        Result r = run(target, seconds());
        String log = Files.readString(r.log(), StandardCharsets.UTF_8);
        String tail = log.substring(Math.max(0, log.length() - 6000));
        assertEquals(
                0,
                r.exitCode(),
                target + ": a finding (input: " + r.findings() + "; to keep it as a regression test, copy it into "
                        + "the target's Inputs folder under src/test/resources). Jazzer's output ends:\n" + tail);
        assertTrue(r.runs() > 0, target + ": no input was run:\n" + tail);
        System.out.println(target + ": " + r.runs() + " inputs in " + seconds() + " s, no finding");
    }

    public static Result run(String target, int seconds) throws IOException, InterruptedException {
        String[] parts = target.split("#", 2);
        Class<?> testClass;
        try {
            testClass = Class.forName(parts[0]);
        } catch (ClassNotFoundException e) {
            throw new IllegalArgumentException("no fuzz target class " + parts[0], e);
        }
        String name = testClass.getSimpleName() + "." + parts[1];
        Path base = Path.of(System.getProperty("jvmm.fuzz.corpus", "target/fuzz"));
        Path corpus = Files.createDirectories(base.resolve(name).resolve("corpus"));
        Path findings =
                Files.createDirectories(Path.of("target/fuzz").resolve(name).resolve("findings"));
        Path log = findings.getParent().resolve("jazzer.log");

        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx1g",
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow",
                "-cp",
                System.getProperty("java.class.path"),
                "com.code_intelligence.jazzer.Jazzer",
                "--target_class=" + parts[0],
                "--target_method=" + parts[1],
                "--instrumentation_includes=dev.jvmm.**",
                "-max_total_time=" + seconds,
                "-timeout=30",
                "-rss_limit_mb=0",
                "-artifact_prefix=" + findings.toAbsolutePath() + "/",
                corpus.toString()));
        seeds(testClass, parts[1]).ifPresent(s -> command.add(s.toString()));
        Process p = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        if (!p.waitFor(seconds + 300L, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor();
            throw new AssertionError(target + ": Jazzer did not end " + seconds + " s after it started; see " + log);
        }
        List<Path> found;
        try (Stream<Path> s = Files.list(findings)) {
            found = s.toList();
        }
        return new Result(doneRuns(Files.readString(log, StandardCharsets.UTF_8)), p.exitValue(), log, found);
    }

    private static final Pattern DONE = Pattern.compile("Done (\\d+) runs");

    private static long doneRuns(String log) {
        Matcher m = DONE.matcher(log);
        long runs = 0;
        while (m.find()) runs = Long.parseLong(m.group(1));
        return runs;
    }

    /** The saved inputs Jazzer's JUnit integration replays for the method, if the class has any. */
    private static Optional<Path> seeds(Class<?> testClass, String method) {
        URL url = testClass.getResource(testClass.getSimpleName() + "Inputs/" + method);
        if (url == null || !"file".equals(url.getProtocol())) return Optional.empty();
        try {
            return Optional.of(Path.of(url.toURI()));
        } catch (URISyntaxException e) {
            return Optional.empty();
        }
    }
}
