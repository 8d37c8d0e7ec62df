package dev.jvmm.devices.block.qcow2;

import java.io.IOException;

/** A qcow2 image that is corrupt, hostile or uses a feature jvmm does not support; the message names what. */
public class Qcow2Exception extends IOException {
    public Qcow2Exception(String message) {
        super(message);
    }

    public Qcow2Exception(String message, Throwable cause) {
        super(message, cause);
    }
}
