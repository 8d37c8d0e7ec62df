package dev.jvmm.boot.acpi;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * The few ACPI Machine Language encodings jvmm's DSDT needs (ACPI 6.5 section 20): names, integers,
 * packages, buffers, scopes and devices. Each method returns the encoded bytes of one term.
 */
final class Aml {
    private static final int ZERO_OP = 0x00,
            ONE_OP = 0x01,
            NAME_OP = 0x08,
            BYTE_PREFIX = 0x0a,
            WORD_PREFIX = 0x0b,
            DWORD_PREFIX = 0x0c,
            QWORD_PREFIX = 0x0e,
            SCOPE_OP = 0x10,
            BUFFER_OP = 0x11,
            PACKAGE_OP = 0x12,
            EXT_OP_PREFIX = 0x5b,
            DEVICE_OP = 0x82,
            ROOT_CHAR = '\\';

    private Aml() {}

    /** Name(name, value). */
    static byte[] name(String name, byte[] value) {
        return concat(new byte[] {NAME_OP}, nameString(name), value);
    }

    /** An integer in its shortest encoding. */
    static byte[] integer(long v) {
        if (v == 0) return new byte[] {ZERO_OP};
        if (v == 1) return new byte[] {ONE_OP};
        if (v >= 0 && v <= 0xff) return new byte[] {BYTE_PREFIX, (byte) v};
        if (v >= 0 && v <= 0xffff) return new byte[] {WORD_PREFIX, (byte) v, (byte) (v >> 8)};
        if (v >= 0 && v <= 0xffff_ffffL) return concat(new byte[] {DWORD_PREFIX}, le(v, 4));
        return concat(new byte[] {QWORD_PREFIX}, le(v, 8));
    }

    /** EisaId("PNP0A03"): three letters and four hex digits compressed into 32 bits, stored byte-swapped. */
    static byte[] eisaId(String id) {
        if (id.length() != 7) throw new IllegalArgumentException("EISA id " + id);
        int v = ((id.charAt(0) - 0x40) << 26)
                | ((id.charAt(1) - 0x40) << 21)
                | ((id.charAt(2) - 0x40) << 16)
                | Integer.parseInt(id.substring(3), 16);
        return concat(new byte[] {DWORD_PREFIX}, le(Integer.reverseBytes(v) & 0xffff_ffffL, 4));
    }

    /** Package(){elements}. */
    static byte[] packageOf(byte[]... elements) {
        if (elements.length > 255) throw new IllegalArgumentException("package of " + elements.length);
        byte[] body = concat(new byte[] {(byte) elements.length}, concat(elements));
        return concat(new byte[] {PACKAGE_OP}, pkgLength(body.length), body);
    }

    /** Buffer(){bytes}. */
    static byte[] buffer(byte[] bytes) {
        byte[] body = concat(integer(bytes.length), bytes);
        return concat(new byte[] {BUFFER_OP}, pkgLength(body.length), body);
    }

    /** ResourceTemplate(){descriptors}: a buffer of small resource descriptors closed by the end tag. */
    static byte[] resourceTemplate(byte[]... descriptors) {
        return buffer(concat(concat(descriptors), new byte[] {0x79, 0})); // end tag, checksum 0 (treated as correct)
    }

    /** IO(Decode16, port, port, 1, length): a fixed range of ports (ACPI 6.5 section 6.4.2.5). */
    static byte[] io(int port, int length) {
        return new byte[] {0x47, 1, (byte) port, (byte) (port >> 8), (byte) port, (byte) (port >> 8), 1, (byte) length};
    }

    /** IRQNoFlags(){irq}: an ISA interrupt, edge-triggered and active high (ACPI 6.5 section 6.4.2.1). */
    static byte[] irqNoFlags(int irq) {
        if (irq < 0 || irq > 15) throw new IllegalArgumentException("ISA IRQ " + irq);
        return new byte[] {0x22, (byte) (1 << irq), (byte) ((1 << irq) >> 8)};
    }

    /** Scope(name){terms}. */
    static byte[] scope(String name, byte[]... terms) {
        byte[] body = concat(nameString(name), concat(terms));
        return concat(new byte[] {SCOPE_OP}, pkgLength(body.length), body);
    }

    /** Device(name){terms}. */
    static byte[] device(String name, byte[]... terms) {
        byte[] body = concat(nameString(name), concat(terms));
        return concat(new byte[] {EXT_OP_PREFIX, (byte) DEVICE_OP}, pkgLength(body.length), body);
    }

    /** A name of one segment, optionally rooted ("\\_SB"); segments shorter than four are padded with '_'. */
    static byte[] nameString(String name) {
        boolean rooted = name.startsWith("\\");
        String seg = rooted ? name.substring(1) : name;
        if (seg.isEmpty() || seg.length() > 4 || !seg.matches("[A-Z_][A-Z0-9_]*"))
            throw new IllegalArgumentException("AML name segment " + name);
        byte[] s = (seg + "___".substring(0, 4 - seg.length())).getBytes(StandardCharsets.US_ASCII);
        return rooted ? concat(new byte[] {ROOT_CHAR}, s) : s;
    }

    /**
     * PkgLength for a body of n bytes; the encoded length counts its own bytes. One byte holds up to 63;
     * longer lengths take 1-3 more bytes, the lead byte keeping the low nibble and the count in bits 7:6.
     */
    static byte[] pkgLength(int n) {
        if (n + 1 <= 0x3f) return new byte[] {(byte) (n + 1)};
        for (int extra = 1; extra <= 3; extra++) {
            long total = n + 1 + extra;
            if (total < (1L << (4 + 8 * extra))) {
                byte[] out = new byte[1 + extra];
                out[0] = (byte) ((extra << 6) | (total & 0xf));
                for (int i = 1; i <= extra; i++) out[i] = (byte) (total >>> (4 + 8 * (i - 1)));
                return out;
            }
        }
        throw new IllegalArgumentException("AML package of " + n + " bytes");
    }

    static byte[] le(long v, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) (v >>> (8 * i));
        return b;
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }
}
