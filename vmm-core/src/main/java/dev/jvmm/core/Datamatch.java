package dev.jvmm.core;

import java.util.OptionalLong;

/**
 * Which guest writes KVM_IOEVENTFD completes in the kernel: by width ({@code length} bytes, 0 for any) and,
 * optionally, by the value written.
 */
public record Datamatch(int length, OptionalLong value) {
    public Datamatch {
        if (value == null) throw new NullPointerException("value");
        if (value.isPresent() ? !validWidth(length) : length != 0 && !validWidth(length))
            throw new IllegalArgumentException("a write of " + length + " bytes cannot be matched"
                    + (value.isPresent() ? " by value; use 1, 2, 4 or 8" : "; use 0 (any), 1, 2, 4 or 8"));
    }

    private static boolean validWidth(int length) {
        return length == 1 || length == 2 || length == 4 || length == 8;
    }

    /** Any write, of any width and value. */
    public static Datamatch none() {
        return new Datamatch(0, OptionalLong.empty());
    }

    /** Any value written with a {@code length}-byte access (0: any width). */
    public static Datamatch anyValue(int length) {
        return new Datamatch(length, OptionalLong.empty());
    }

    /** Only a {@code length}-byte write of {@code value}. */
    public static Datamatch of(long value, int length) {
        return new Datamatch(length, OptionalLong.of(value));
    }
}
