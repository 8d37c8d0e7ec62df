package dev.jvmm.agent;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.ar.ArArchiveEntry;
import org.apache.commons.compress.archivers.ar.ArArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.compressors.xz.XZCompressorInputStream;

/**
 * Debian's stock kernel ({@code linux-image-amd64}) and its modules, from a cache that {@code apt-get download}
 * fills: the same cache as the project's scripts/debian-kernel.sh, {@code $JVMM_CACHE}, else
 * {@code $XDG_CACHE_HOME/jvmm}, else {@code ~/.cache/jvmm}, under {@code debian-kernel/}. The bzImage and the
 * modules asked for are unpacked from the package once (in Java: ar, tar, xz) and kept there.
 */
public final class DebianKernel {
    private final Path cache;
    private final Path deb;
    private final String release;

    private DebianKernel(Path cache, Path deb, String release) {
        this.cache = cache;
        this.deb = deb;
        this.release = release;
    }

    /** The cached package, downloaded with {@code apt-get download} first if the cache has none. */
    public static DebianKernel resolve() throws IOException, InterruptedException {
        Path cache = AptPackages.cacheDir().resolve("debian-kernel");
        Optional<Path> deb = cachedPackage(cache);
        return fromPackage(deb.isPresent() ? deb.get() : download(cache), cache);
    }

    /** A given linux-image .deb, unpacked into the cache as needed. */
    public static DebianKernel fromPackage(Path deb) throws IOException {
        return fromPackage(deb, AptPackages.cacheDir().resolve("debian-kernel"));
    }

    private static DebianKernel fromPackage(Path deb, Path cache) throws IOException {
        // linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb holds kernel release 6.1.0-57-amd64.
        String file = deb.getFileName().toString();
        if (!file.startsWith("linux-image-") || !file.contains("_"))
            throw new IOException(deb + ": not a Debian linux-image package (linux-image-RELEASE_VERSION_ARCH.deb)");
        return new DebianKernel(cache, deb, file.substring("linux-image-".length(), file.indexOf('_')));
    }

    /** The kernel release, e.g. {@code 6.1.0-57-amd64}. */
    public String release() {
        return release;
    }

    /** The bzImage ({@code /boot/vmlinuz-RELEASE}). */
    public Path kernel() throws IOException {
        Path vmlinuz = cache.resolve("boot").resolve("vmlinuz-" + release);
        if (!Files.isRegularFile(vmlinuz)) unpack(Set.of(), true);
        if (!Files.isRegularFile(vmlinuz)) throw new IOException(deb + " has no /boot/vmlinuz-" + release);
        return vmlinuz;
    }

    /**
     * The named modules and those they need, in load order; modules compiled into the kernel are left out.
     * Throws if the package has one of them neither as a module nor built in.
     */
    public List<KernelModule> modules(Collection<String> names) throws IOException {
        Path dir = cache.resolve("modules").resolve(release);
        Set<String> builtin = builtin(dir);
        Set<String> wanted = new LinkedHashSet<>();
        for (String n : names) wanted.add(KernelModule.canonical(n));
        // Each pass unpacks what is missing; dependencies show only once a module is there, so a few passes at most.
        for (int pass = 0; ; pass++) {
            List<KernelModule> found = new ArrayList<>();
            Set<String> missing = new LinkedHashSet<>();
            Set<String> seen = new HashSet<>();
            List<String> queue = new ArrayList<>(wanted);
            while (!queue.isEmpty()) {
                String n = queue.removeFirst();
                if (!seen.add(n) || builtin.contains(n)) continue;
                Path ko = dir.resolve(n + ".ko");
                if (!Files.isRegularFile(ko)) {
                    missing.add(n);
                    continue;
                }
                KernelModule m = KernelModule.read(ko);
                found.add(m);
                queue.addAll(m.depends());
            }
            if (missing.isEmpty()) return KernelModule.loadOrder(found, builtin);
            if (pass == 4) throw new IOException(deb + " has no module " + String.join(", ", missing));
            unpack(missing, false);
            builtin = builtin(dir);
            Set<String> stillMissing = new LinkedHashSet<>();
            for (String n : missing)
                if (!Files.isRegularFile(dir.resolve(n + ".ko")) && !builtin.contains(n)) stillMissing.add(n);
            if (!stillMissing.isEmpty())
                throw new IOException(deb + " has no module " + String.join(", ", stillMissing));
        }
    }

    private static Set<String> builtin(Path dir) throws IOException {
        Path list = dir.resolve("modules.builtin");
        if (!Files.isRegularFile(list)) return Set.of();
        Set<String> names = new HashSet<>();
        for (String line : Files.readAllLines(list))
            if (!line.isBlank()) names.add(KernelModule.nameOf(Path.of(line.strip())));
        return names;
    }

    /**
     * One pass over the package's data.tar: the bzImage (if asked), modules.builtin, and the named modules
     * (decompressed if the package has them as .ko.xz), each written to a temporary name and moved into place.
     */
    private void unpack(Set<String> modules, boolean kernel) throws IOException {
        Path modDir = Files.createDirectories(cache.resolve("modules").resolve(release));
        Path bootDir = Files.createDirectories(cache.resolve("boot"));
        try (InputStream file = new BufferedInputStream(Files.newInputStream(deb));
                ArArchiveInputStream ar = new ArArchiveInputStream(file)) {
            ArArchiveEntry e;
            while ((e = ar.getNextEntry()) != null) {
                if (!e.getName().startsWith("data.tar")) continue;
                if (!e.getName().equals("data.tar.xz"))
                    throw new IOException(deb + ": " + e.getName() + " is not supported (only data.tar.xz)");
                try (TarArchiveInputStream tar =
                        new TarArchiveInputStream(new XZCompressorInputStream(new BufferedInputStream(ar, 1 << 16)))) {
                    TarArchiveEntry t;
                    while ((t = tar.getNextEntry()) != null) {
                        if (!t.isFile()) continue;
                        String name = t.getName().startsWith("./") ? t.getName().substring(2) : t.getName();
                        String modPrefix = "lib/modules/" + release + "/";
                        if (kernel && name.equals("boot/vmlinuz-" + release)) {
                            store(tar, bootDir.resolve("vmlinuz-" + release));
                        } else if (name.equals(modPrefix + "modules.builtin")) {
                            store(tar, modDir.resolve("modules.builtin"));
                        } else if (name.startsWith(modPrefix) && name.contains(".ko")) {
                            Path p = Path.of(name);
                            String mod = KernelModule.nameOf(p);
                            if (!modules.contains(mod)) continue;
                            String f = p.getFileName().toString();
                            if (f.endsWith(".ko")) store(tar, modDir.resolve(mod + ".ko"));
                            else if (f.endsWith(".ko.xz"))
                                store(new XZCompressorInputStream(tar, true), modDir.resolve(mod + ".ko"));
                            else
                                throw new IOException(
                                        deb + ": " + name + ": only .ko and .ko.xz modules are supported");
                        }
                    }
                }
                return;
            }
            throw new IOException(deb + " has no data.tar.xz: not a Debian package");
        }
    }

    private static void store(InputStream in, Path target) throws IOException {
        Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName(), ".tmp");
        try {
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static Optional<Path> cachedPackage(Path cache) throws IOException {
        Path dir = cache.resolve("deb");
        if (!Files.isDirectory(dir)) return Optional.empty();
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> {
                        String f = p.getFileName().toString();
                        return f.startsWith("linux-image-") && f.endsWith(".deb");
                    })
                    .sorted()
                    .findFirst();
        }
    }

    /** {@code apt-get download} of the package linux-image-amd64 depends on (as scripts/debian-kernel.sh does). */
    private static Path download(Path cache) throws IOException, InterruptedException {
        String depends = AptPackages.run(List.of("apt-cache", "depends", "linux-image-amd64"), cache);
        String pkg = depends.lines()
                .map(String::strip)
                .filter(l -> l.startsWith("Depends: linux-image-") && Character.isDigit(l.charAt(21)))
                .map(l -> l.substring("Depends: ".length()))
                .findFirst()
                .orElseThrow(() -> new IOException(
                        "cannot find Debian's linux-image-amd64 with apt-cache (not Debian, or run apt-get update)"));
        return AptPackages.download(pkg, cache.resolve("deb"));
    }
}
