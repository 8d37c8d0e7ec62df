package dev.jvmm.core.memory;

/** A guest-physical access outside guest RAM (or spanning a hole). Raised at the edge, never a host fault. */
public final class GuestMemoryException extends RuntimeException {
    private final long address;
    private final long length;

    public GuestMemoryException(long address, long length) {
        super(String.format("guest address 0x%x (+%d bytes) is outside guest RAM", address, length));
        this.address = address;
        this.length = length;
    }

    public long address() {
        return address;
    }

    public long length() {
        return length;
    }
}
