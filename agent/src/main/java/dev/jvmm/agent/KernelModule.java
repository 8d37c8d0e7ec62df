package dev.jvmm.agent;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A Linux kernel module file (.ko, uncompressed) and what its {@code .modinfo} section says: its name and the
 * modules it needs loaded first. Read directly from the ELF file, so no depmod or modules.dep is needed.
 */
public record KernelModule(String name, List<String> depends, Path file) {
    public KernelModule {
        depends = List.copyOf(depends);
    }

    /** Reads a module's name and dependencies from its ELF {@code .modinfo} section. */
    public static KernelModule read(Path ko) throws IOException {
        Map<String, String> info = modinfo(Files.readAllBytes(ko), ko);
        String name = info.getOrDefault("name", nameOf(ko));
        String deps = info.getOrDefault("depends", "");
        List<String> depends = deps.isEmpty()
                ? List.of()
                : Arrays.stream(deps.split(",")).map(KernelModule::canonical).toList();
        return new KernelModule(canonical(name), depends, ko);
    }

    /** The module name a file name stands for: {@code virtio-rng.ko} is module {@code virtio_rng}. */
    public static String nameOf(Path ko) {
        String f = ko.getFileName().toString();
        int dot = f.indexOf(".ko");
        return canonical(dot >= 0 ? f.substring(0, dot) : f);
    }

    static String canonical(String name) {
        return name.replace('-', '_');
    }

    /**
     * The modules in an order where each comes after those it depends on. A dependency not among them is an
     * error (unless {@code builtin} names it: compiled into the kernel).
     */
    public static List<KernelModule> loadOrder(Collection<KernelModule> modules, Set<String> builtin) {
        Map<String, KernelModule> byName = new LinkedHashMap<>();
        for (KernelModule m : modules) byName.put(m.name(), m);
        List<KernelModule> order = new ArrayList<>();
        Set<String> done = new HashSet<>(), visiting = new HashSet<>();
        for (KernelModule m : byName.values()) visit(m, byName, builtin, done, visiting, order);
        return order;
    }

    private static void visit(
            KernelModule m,
            Map<String, KernelModule> byName,
            Set<String> builtin,
            Set<String> done,
            Set<String> visiting,
            List<KernelModule> order) {
        if (done.contains(m.name())) return;
        if (!visiting.add(m.name())) throw new IllegalArgumentException("modules depend on each other: " + m.name());
        for (String d : m.depends()) {
            KernelModule dep = byName.get(d);
            if (dep != null) visit(dep, byName, builtin, done, visiting, order);
            else if (!builtin.contains(d))
                throw new IllegalArgumentException("module " + m.name() + " needs " + d + ", which is not given");
        }
        visiting.remove(m.name());
        done.add(m.name());
        order.add(m);
    }

    /** The key=value strings of the ELF64 section {@code .modinfo}. */
    static Map<String, String> modinfo(byte[] elf, Path where) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(elf).order(ByteOrder.LITTLE_ENDIAN);
        try {
            if (elf.length < 64 || b.getInt(0) != 0x464c457f || elf[4] != 2 || elf[5] != 1)
                throw new IOException(where + ": not a 64-bit little-endian ELF file (a compressed module?)");
            long shoff = b.getLong(0x28);
            int shentsize = Short.toUnsignedInt(b.getShort(0x3a)), shnum = Short.toUnsignedInt(b.getShort(0x3c));
            int shstrndx = Short.toUnsignedInt(b.getShort(0x3e));
            if (shentsize < 64 || shstrndx >= shnum) throw new IOException(where + ": bad ELF section table");
            long strOff = b.getLong(Math.toIntExact(shoff + (long) shstrndx * shentsize + 24));
            for (int i = 0; i < shnum; i++) {
                int sh = Math.toIntExact(shoff + (long) i * shentsize);
                String name = cString(elf, Math.toIntExact(strOff + Integer.toUnsignedLong(b.getInt(sh))));
                if (!name.equals(".modinfo")) continue;
                int off = Math.toIntExact(b.getLong(sh + 24)), size = Math.toIntExact(b.getLong(sh + 32));
                Map<String, String> info = new LinkedHashMap<>();
                for (String kv : new String(elf, off, size, StandardCharsets.UTF_8).split("\0")) {
                    int eq = kv.indexOf('=');
                    if (eq > 0) info.putIfAbsent(kv.substring(0, eq), kv.substring(eq + 1));
                }
                return info;
            }
            throw new IOException(where + ": no .modinfo section: not a kernel module");
        } catch (IndexOutOfBoundsException | ArithmeticException e) {
            throw new IOException(where + ": a truncated or damaged ELF file", e);
        }
    }

    private static String cString(byte[] b, int off) {
        int end = off;
        while (b[end] != 0) end++;
        return new String(b, off, end - off, StandardCharsets.US_ASCII);
    }
}
