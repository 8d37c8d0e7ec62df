package dev.jvmm.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * The CLI's logging: SLF4J's simple provider on stderr, which shares the terminal with the guest's console, so
 * a normal run shows jvmm's own warnings and errors only, and libraries' (Netty's) errors only. Settings are
 * system properties that the provider reads once, when the first logger is made: they are set before that, and
 * a property given on the java command line wins.
 */
final class Logging {
    static final Set<String> LEVELS = Set.of("error", "warn", "info", "debug", "trace");
    private static final String PREFIX = "org.slf4j.simpleLogger.";

    private Logging() {}

    static void defaults() {
        setIfAbsent("defaultLogLevel", "warn");
        setIfAbsent("log.io.netty", "error");
        setIfAbsent("showThreadName", "false");
        setIfAbsent("showShortLogName", "true");
        setIfAbsent("logFile", "System.err");
    }

    /** --log-level: jvmm's level, and Netty's too from debug on (a user chasing a network problem wants both). */
    static void level(String level) {
        String l = level.toLowerCase(Locale.ROOT);
        if (!LEVELS.contains(l))
            throw new IllegalArgumentException(
                    "--log-level must be error, warn, info, debug or trace, not '" + level + "'");
        System.setProperty(PREFIX + "defaultLogLevel", l);
        if (l.equals("debug") || l.equals("trace")) System.setProperty(PREFIX + "log.io.netty", l);
    }

    /**
     * Firecracker's PUT /logger: jvmm's messages go to {@code file} from now on (appended; a FIFO is opened without
     * waiting for its reader), and {@code level} applies to jvmm's loggers made from now on, which are the machine's:
     * the API allows it only before InstanceStart. The CLI's own one-line messages stay on the terminal.
     */
    static void configure(Optional<Path> file, Optional<String> level) throws IOException {
        if (file.isPresent()) {
            Path p = file.get();
            FileChannel c = Files.exists(p) && !Files.isRegularFile(p)
                    ? FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)
                    : FileChannel.open(
                            p, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
            // The simple provider writes to whatever System.err is at each message (it does not cache the stream).
            System.setErr(new PrintStream(Channels.newOutputStream(c), true, StandardCharsets.UTF_8));
        }
        level.ifPresent(l -> System.setProperty(PREFIX + "log.dev.jvmm", l));
    }

    private static void setIfAbsent(String key, String value) {
        if (System.getProperty(PREFIX + key) == null) System.setProperty(PREFIX + key, value);
    }
}
