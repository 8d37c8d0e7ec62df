package dev.jvmm.devices.virtio.vsock;

/** The op field of a virtio-vsock packet header (virtio 1.2, 5.10.6). */
public enum VsockOp {
    REQUEST(1),
    RESPONSE(2),
    RST(3),
    SHUTDOWN(4),
    RW(5),
    CREDIT_UPDATE(6),
    CREDIT_REQUEST(7);

    private static final VsockOp[] BY_CODE = {null, REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST
    };

    /** The value in the header. */
    public final int code;

    VsockOp(int code) {
        this.code = code;
    }

    /** The op a header's 16-bit field names, or null for VIRTIO_VSOCK_OP_INVALID (0) and anything unknown. */
    public static VsockOp of(int code) {
        return code > 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
