package dev.jvmm.devices.net;

/** A backend that cannot start: the message is one line naming the interface, file or address and what to do. */
public class NetBackendException extends RuntimeException {
    public NetBackendException(String message) {
        super(message);
    }

    public NetBackendException(String message, Throwable cause) {
        super(message, cause);
    }
}
