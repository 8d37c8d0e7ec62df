package dev.jvmm.devices.net;

import java.util.HexFormat;

/** A 48-bit Ethernet address, held in the low bits of a long. */
public record MacAddress(long value) {
    public MacAddress {
        if ((value >>> 48) != 0)
            throw new IllegalArgumentException("MAC address value " + Long.toHexString(value) + " exceeds 48 bits");
    }

    /** Parses {@code 52:54:00:12:34:56} (colons or dashes). */
    public static MacAddress parse(String text) {
        String[] parts = text.split("[:-]", -1);
        if (parts.length != 6)
            throw new IllegalArgumentException(
                    "MAC address '" + text + "' is not six hex bytes like 52:54:00:12:34:56");
        long v = 0;
        for (String p : parts) {
            if (p.length() != 2 || !HexFormat.isHexDigit(p.charAt(0)) || !HexFormat.isHexDigit(p.charAt(1))) {
                throw new IllegalArgumentException(
                        "MAC address '" + text + "' is not six hex bytes like 52:54:00:12:34:56");
            }
            v = (v << 8) | Integer.parseInt(p, 16);
        }
        return new MacAddress(v);
    }

    public static MacAddress of(byte[] b, int off) {
        long v = 0;
        for (int i = 0; i < 6; i++) v = (v << 8) | (b[off + i] & 0xff);
        return new MacAddress(v);
    }

    public boolean isMulticast() {
        return ((value >>> 40) & 1) != 0;
    }

    public byte[] bytes() {
        byte[] b = new byte[6];
        for (int i = 0; i < 6; i++) b[i] = (byte) (value >>> (40 - 8 * i));
        return b;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(17);
        for (int i = 0; i < 6; i++) {
            if (i > 0) sb.append(':');
            sb.append(HexFormat.of().toHexDigits((byte) (value >>> (40 - 8 * i))));
        }
        return sb.toString();
    }
}
