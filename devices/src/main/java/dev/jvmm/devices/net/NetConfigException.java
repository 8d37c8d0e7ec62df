package dev.jvmm.devices.net;

/** A --net option that cannot be used; the message is one line naming the value and what to write instead. */
public class NetConfigException extends IllegalArgumentException {
    public NetConfigException(String message) {
        super(message);
    }
}
