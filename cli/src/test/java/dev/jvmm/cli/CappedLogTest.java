package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A detached VM's log stays bounded: past the limit it moves to NAME.log.1 and starts again. */
class CappedLogTest {
    @TempDir
    Path dir;

    @Test
    void pastTheLimitTheLogMovesAsideAndStartsAgain() throws Exception {
        Path log = dir.resolve("vm.log");
        try (FileChannel fd = FileChannel.open(log, StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            CappedLog out = new CappedLog(log, 10, fd);
            out.write("12345".getBytes(StandardCharsets.US_ASCII));
            out.write("6789".getBytes(StandardCharsets.US_ASCII));
            assertEquals("123456789", Files.readString(log));
            out.write("abc".getBytes(StandardCharsets.US_ASCII)); // 12 bytes: over the limit
            assertEquals("", Files.readString(log));
            assertEquals("123456789abc", Files.readString(dir.resolve("vm.log.1")));
            out.write("next".getBytes(StandardCharsets.US_ASCII));
            fd.write(java.nio.ByteBuffer.wrap("|jvm".getBytes(StandardCharsets.US_ASCII))); // the JVM's own stderr
            assertEquals("next|jvm", Files.readString(log), "appends go on at the new end");
            out.write("0123456789".getBytes(StandardCharsets.US_ASCII));
            assertEquals("next|jvm0123456789", Files.readString(dir.resolve("vm.log.1")), "the one before replaced");
        }
    }
}
