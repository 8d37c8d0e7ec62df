package dev.jvmm.boot;

/** A kernel, initrd or option that cannot be booted; the message is one line for the user. */
public class BootException extends RuntimeException {
    public BootException(String message) {
        super(message);
    }

    public BootException(String message, Throwable cause) {
        super(message, cause);
    }
}
