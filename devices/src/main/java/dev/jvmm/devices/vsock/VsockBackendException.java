package dev.jvmm.devices.vsock;

/** A vsock backend could not be set up: its socket path is taken, too long, or cannot be bound (the message says). */
public final class VsockBackendException extends Exception {
    public VsockBackendException(String message) {
        super(message);
    }

    public VsockBackendException(String message, Throwable cause) {
        super(message, cause);
    }
}
