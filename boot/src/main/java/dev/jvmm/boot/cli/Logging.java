package dev.jvmm.boot.cli;

import java.util.Locale;
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
            throw new IllegalArgumentException("--log-level must be error, warn, info, debug or trace, not '" + level + "'");
        System.setProperty(PREFIX + "defaultLogLevel", l);
        if (l.equals("debug") || l.equals("trace")) System.setProperty(PREFIX + "log.io.netty", l);
    }

    private static void setIfAbsent(String key, String value) {
        if (System.getProperty(PREFIX + key) == null) System.setProperty(PREFIX + key, value);
    }
}
