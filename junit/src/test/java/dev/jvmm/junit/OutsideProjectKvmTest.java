package dev.jvmm.junit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.agent.DebianKernel;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The "done when": a project outside jvmm (src/it/outside-project), whose only jvmm dependency is
 * dev.jvmm:junit, runs a test that boots a micro-VM through the extension, runs {@code uname -r} through the agent
 * and copies a file in and back. It sees only installed artifacts: this build's jars and poms are put in a private
 * local repository (target/outside/repo) in Maven's layout, beside links to the third-party artifacts of the
 * build's own local repository, and {@code mvn -o test} runs on a copy of the project with that repository.
 *
 * <p>On a kvm_pvm host no whole Linux boots, so the project's test JVM is started inside the emulated machine
 * ({@code -Djvm=scripts/emulated-jdk/bin/java}, as ./test's emulated-kvm profile does), where it does; Maven itself
 * runs here. Elsewhere (hardware virtualisation, or already inside the emulated machine) everything runs directly.
 */
@RequiresKvm
@Tag("slow")
class OutsideProjectKvmTest {
    /** The jvmm modules dev.jvmm:junit needs, in build order (its dependency chain). */
    private static final List<String> MODULES =
            List.of("kvm-bindings", "vmm-core", "devices", "boot", "agent", "junit");

    @Test
    void anOutsideProjectBootsAVmThroughTheInstalledArtifacts() throws Exception {
        Path root = Path.of(property("jvmm.it.root"));
        String version = property("jvmm.it.version");
        Path m2 = Path.of(property("jvmm.it.localRepository"));
        Path mvn = Path.of(property("jvmm.it.mavenHome"), "bin", "mvn");
        String release = kernelRelease();

        Path work = root.resolve("junit/target/outside");
        deleteTree(work);
        Path repo = Files.createDirectories(work.resolve("repo"));
        seedThirdParty(m2, repo);
        install(repo, "jvmm-parent", version, root.resolve("pom.xml"), null);
        for (String module : MODULES)
            install(repo, module, version, root.resolve(module).resolve("pom.xml"), root.resolve(module));
        Path project = work.resolve("project");
        copyTree(root.resolve("junit/src/it/outside-project"), project);

        List<String> command = new ArrayList<>(List.of(
                mvn.toString(),
                "-o",
                "-B",
                "-ntp",
                "test",
                "-Dmaven.repo.local=" + repo,
                "-Djvmm.version=" + version,
                "-Dexpected.kernel.release=" + release));
        ProcessBuilder pb = new ProcessBuilder(command).directory(project.toFile());
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        boolean emulated = KvmHost.emulatesGuestKernel() && System.getenv("JVMM_EMULATED") == null;
        if (emulated) {
            command.add("-Djvm=" + root.resolve("scripts/emulated-jdk/bin/java"));
            pb.command(command);
            pb.environment().put("JVMM_EMULATE", "1");
            pb.environment().put("JVMM_TEST_JDK", System.getProperty("java.home"));
        }
        Path log = work.resolve("mvn.log");
        pb.redirectErrorStream(true).redirectOutput(log.toFile());
        long t0 = System.nanoTime();
        Process p = pb.start();
        if (!p.waitFor(50, TimeUnit.MINUTES)) {
            p.descendants().forEach(ProcessHandle::destroy);
            p.destroy();
            throw new AssertionError("mvn test did not end within 50 minutes; its log:\n" + tail(log));
        }
        long seconds = (System.nanoTime() - t0) / 1_000_000_000;
        assertEquals(0, p.exitValue(), "mvn test in the outside project failed; its log:\n" + tail(log));

        Path report = project.resolve("target/surefire-reports/TEST-example.GuestTest.xml");
        assertTrue(Files.isRegularFile(report), "no surefire report; the log:\n" + tail(log));
        String xml = Files.readString(report);
        assertEquals("2", attribute(xml, "tests"), xml);
        for (String none : List.of("failures", "errors", "skipped")) assertEquals("0", attribute(xml, none), xml);
        assertTrue(xml.contains("uname -r: " + release), "the guest's kernel release in the test's output");
        String outcome =
                "an outside project's mvn -o test (uname -r " + release + ", a file in and back) in " + seconds + " s";
        // KvmHost.checked would name this kvm_pvm host, where Linux stops early; the VM ran in the emulated machine
        if (emulated)
            System.out.println("anOutsideProjectBootsAVmThroughTheInstalledArtifacts: checked " + outcome
                    + " (its test JVM in the emulated machine, hardware-virtualisation KVM)");
        else KvmHost.checked("anOutsideProjectBootsAVmThroughTheInstalledArtifacts", outcome);
    }

    private static String property(String name) {
        String v = System.getProperty(name);
        if (v == null) throw new IllegalStateException(name + " is not set (junit/pom.xml's surefire passes it)");
        return v;
    }

    /** The default kernel of a MicroVm, fetched here (where apt-get reaches Debian) before the project runs. */
    private static String kernelRelease() throws Exception {
        try {
            DebianKernel debian = DebianKernel.resolve();
            debian.kernel();
            return debian.release();
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("Debian's kernel could not be fetched: " + e.getMessage());
            throw e;
        }
    }

    /** Links to everything in the build's repository except jvmm's own, which comes from this build only. */
    private static void seedThirdParty(Path m2, Path repo) throws IOException {
        try (Stream<Path> top = Files.list(m2)) {
            for (Path group : (Iterable<Path>) top::iterator) {
                Path name = group.getFileName();
                if (!name.toString().equals("dev")) {
                    Files.createSymbolicLink(repo.resolve(name), group);
                    continue;
                }
                Path dev = Files.createDirectories(repo.resolve("dev"));
                try (Stream<Path> inDev = Files.list(group)) {
                    for (Path g : (Iterable<Path>) inDev::iterator)
                        if (!g.getFileName().toString().equals("jvmm"))
                            Files.createSymbolicLink(dev.resolve(g.getFileName()), g);
                }
            }
        }
    }

    /**
     * What {@code mvn install} leaves for a module: its pom as written (Maven installs it unchanged) and, for a
     * module, a jar of its compiled classes and resources, made from target/classes (in this phase of the build
     * the module's own jar does not exist yet).
     */
    private static void install(Path repo, String artifactId, String version, Path pom, Path module)
            throws IOException {
        Path dir = Files.createDirectories(
                repo.resolve("dev/jvmm").resolve(artifactId).resolve(version));
        Files.copy(pom, dir.resolve(artifactId + "-" + version + ".pom"));
        if (module == null) return;
        Path classes = module.resolve("target/classes");
        if (!Files.isDirectory(classes))
            throw new IllegalStateException(classes + " is missing: build the modules first (mvn -pl junit -am)");
        Manifest manifest = new Manifest();
        manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        manifest.getMainAttributes().put(Attributes.Name.IMPLEMENTATION_TITLE, artifactId);
        manifest.getMainAttributes().put(Attributes.Name.IMPLEMENTATION_VERSION, version);
        try (OutputStream out = Files.newOutputStream(dir.resolve(artifactId + "-" + version + ".jar"));
                JarOutputStream jar = new JarOutputStream(out, manifest);
                Stream<Path> files = Files.walk(classes)) {
            for (Path f : files.sorted().toList()) {
                if (f.equals(classes)) continue;
                String name = classes.relativize(f).toString().replace('\\', '/');
                boolean isDir = Files.isDirectory(f);
                JarEntry e = new JarEntry(isDir ? name + "/" : name);
                e.setLastModifiedTime(
                        FileTime.fromMillis(Files.getLastModifiedTime(f).toMillis()));
                jar.putNextEntry(e);
                if (!isDir) Files.copy(f, jar);
                jar.closeEntry();
            }
        }
    }

    private static String attribute(String xml, String name) {
        Matcher m =
                Pattern.compile("<testsuite [^>]*\\b" + name + "=\"([^\"]*)\"").matcher(xml);
        return m.find() ? m.group(1) : "(no " + name + ")";
    }

    private static String tail(Path log) throws IOException {
        if (!Files.exists(log)) return "(no log)";
        String s = Files.readString(log, java.nio.charset.StandardCharsets.ISO_8859_1);
        return s.length() <= 20_000 ? s : "..." + s.substring(s.length() - 20_000);
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path f : s.toList()) {
                Path t = to.resolve(from.relativize(f).toString());
                if (Files.isDirectory(f)) Files.createDirectories(t);
                else Files.copy(f, t);
            }
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        // Links into the build's repository are removed as links: Files.walk does not follow them.
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
        }
    }
}
