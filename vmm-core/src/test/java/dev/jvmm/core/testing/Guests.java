package dev.jvmm.core.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** Test guests built by the Maven build from src/test/guest into the test classpath under /guests. */
public final class Guests {
    private Guests() {}

    public static byte[] load(String name) {
        try (InputStream in = Guests.class.getResourceAsStream("/guests/" + name)) {
            if (in == null)
                throw new IllegalStateException("test guest " + name + " was not built (see src/test/guest)");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
