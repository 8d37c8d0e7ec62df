package dev.jvmm.cli;

import picocli.CommandLine;

/** An I/O port number, decimal or 0x-prefixed hexadecimal. */
public final class Ports implements CommandLine.ITypeConverter<Integer> {
    @Override
    public Integer convert(String value) {
        try {
            String v = value.trim().toLowerCase();
            int port = v.startsWith("0x") ? Integer.parseInt(v.substring(2), 16) : Integer.parseInt(v);
            if (port < 0 || port > 0xfffc) throw new NumberFormatException();
            return port;
        } catch (NumberFormatException e) {
            throw new CommandLine.TypeConversionException(
                    "'" + value + "' is not an I/O port (0 to 0xfffc, e.g. 0xf4)");
        }
    }
}
