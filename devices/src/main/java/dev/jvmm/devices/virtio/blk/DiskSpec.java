package dev.jvmm.devices.virtio.blk;

import java.nio.file.Path;

/**
 * One {@code --disk} option: {@code PATH[,readonly][,serial=ID][,transport=mmio|pci][,queues=N]}. A path
 * containing commas cannot be given (as with QEMU's simple form); everything after the first comma is options.
 */
public record DiskSpec(Path path, boolean readOnly, String serial, Transport transport, int queues) {
    public enum Transport { MMIO, PCI }

    public DiskSpec {
        if (serial == null) serial = "";
        // Validate through Options so the CLI reports the same limits the device enforces.
        new VirtioBlock.Options(readOnly, serial, queues, 256, 512);
    }

    /** Parses the option's value; IllegalArgumentException with one line naming the bad part. */
    public static DiskSpec parse(String value) {
        String[] parts = value.split(",", -1);
        if (parts[0].isEmpty()) throw new IllegalArgumentException("--disk '" + value + "': the disk image path is missing");
        boolean readOnly = false;
        String serial = "";
        Transport transport = Transport.MMIO;
        int queues = 1;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            int eq = p.indexOf('=');
            String key = eq < 0 ? p : p.substring(0, eq), val = eq < 0 ? null : p.substring(eq + 1);
            switch (key) {
                case "readonly", "ro" -> {
                    if (val != null && !val.equals("on") && !val.equals("true"))
                        throw new IllegalArgumentException("--disk '" + value + "': readonly takes no value");
                    readOnly = true;
                }
                case "serial" -> {
                    if (val == null) throw new IllegalArgumentException("--disk '" + value + "': serial needs a value (serial=ID)");
                    serial = val;
                }
                case "transport" -> {
                    if ("mmio".equals(val)) transport = Transport.MMIO;
                    else if ("pci".equals(val)) transport = Transport.PCI;
                    else throw new IllegalArgumentException("--disk '" + value + "': transport must be mmio or pci, not '" + val + "'");
                }
                case "queues" -> {
                    try {
                        queues = Integer.parseInt(val == null ? "" : val);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("--disk '" + value + "': queues must be a number, not '" + val + "'");
                    }
                }
                default -> throw new IllegalArgumentException("--disk '" + value + "': unknown option '" + p
                        + "' (use readonly, serial=ID, transport=mmio|pci, queues=N)");
            }
        }
        try {
            return new DiskSpec(Path.of(parts[0]), readOnly, serial, transport, queues);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--disk '" + value + "': " + e.getMessage());
        }
    }

    /** The device options this disk asks for. */
    public VirtioBlock.Options options() {
        return new VirtioBlock.Options(readOnly, serial, queues, 256, 512);
    }
}
