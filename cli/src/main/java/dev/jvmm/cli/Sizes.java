package dev.jvmm.cli;

import java.util.Locale;
import picocli.CommandLine;

/** Sizes as QEMU takes them: a number with an optional K, M, G or T suffix (powers of 1024); bare numbers are MiB. */
public final class Sizes implements CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
        return parse(value, 1L << 20);
    }

    /** Parses a size; a bare number is multiplied by bareUnit. */
    public static long parse(String value, long bareUnit) {
        String v = value.trim().toUpperCase(Locale.ROOT);
        if (v.endsWith("B")) v = v.substring(0, v.length() - 1);
        if (v.endsWith("I")) v = v.substring(0, v.length() - 1); // "GiB"
        long unit = bareUnit;
        if (!v.isEmpty()) {
            switch (v.charAt(v.length() - 1)) {
                case 'K' -> unit = 1L << 10;
                case 'M' -> unit = 1L << 20;
                case 'G' -> unit = 1L << 30;
                case 'T' -> unit = 1L << 40;
                default -> {}
            }
            if (!Character.isDigit(v.charAt(v.length() - 1))) v = v.substring(0, v.length() - 1);
        }
        try {
            long n = Long.parseLong(v);
            if (n <= 0 || n > Long.MAX_VALUE / unit) throw new NumberFormatException();
            return n * unit;
        } catch (NumberFormatException e) {
            throw new CommandLine.TypeConversionException(
                    "'" + value + "' is not a size (examples: 512M, 2G, 1048576K)");
        }
    }
}
