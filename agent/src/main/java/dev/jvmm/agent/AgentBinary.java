package dev.jvmm.agent;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/** The guest agent's static x86-64 Linux binary, built from src/main/c and carried in this jar. */
public final class AgentBinary {
    private static final String RESOURCE = "jvmm-agent";

    private AgentBinary() {}

    /** Its bytes. */
    public static byte[] bytes() throws IOException {
        try (InputStream in = AgentBinary.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IOException("the jar has no " + RESOURCE + " (the build compiles it with gcc)");
            return in.readAllBytes();
        }
    }

    /** Writes it to {@code file} as an executable (to run it on the host, as the tests do). */
    public static Path write(Path file) throws IOException {
        Files.write(file, bytes());
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
        return file;
    }
}
