import java.io.IOException;
import java.io.InputStream;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassHierarchyResolver;
import java.lang.classfile.ClassFileVersion;
import java.lang.classfile.ClassModel;
import java.lang.classfile.ClassTransform;
import java.lang.classfile.CodeTransform;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * Rewrites, in place, every jar given whose classes are older than Java 6 (class-file major version below 50) so
 * that those classes become Java 8 class files (major 52) with stack maps. Why: the JVM's CDS and AOT caches can
 * only hold classes the split verifier can link, which needs version 50 or newer; picocli ships Java 5 class files,
 * so without this its 171 classes load from the jar and run interpreted at every launch (about 0.3 s of each
 * `jvmm` command). The bytecode itself is unchanged; only the version and the StackMapTable attributes the newer
 * version requires are written. Jars with nothing to upgrade are left as they are. Needs JDK 24+ (the ClassFile
 * API); run as a source file by stage-dist.sh:
 *
 * <pre>java UpgradeClassFiles.java A.jar [B.jar ...]</pre>
 */
public final class UpgradeClassFiles {
    private static final int OLDEST_ARCHIVABLE = 50;
    private static final int TARGET = ClassFile.JAVA_8_VERSION;

    public static void main(String[] args) throws IOException {
        for (String arg : args) upgrade(Path.of(arg));
    }

    private static void upgrade(Path jar) throws IOException {
        List<String> old = new ArrayList<>();
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            for (ZipEntry e : Collections.list(zip.entries())) {
                if (isClass(e) && majorVersion(zip, e) < OLDEST_ARCHIVABLE) old.add(e.getName());
            }
        }
        if (old.isEmpty()) return;
        Path out = jar.resolveSibling(jar.getFileName() + ".upgrading");
        // Stack maps need the common superclass of types that meet at branch targets: the jar's own classes are
        // read from the jar, the JDK's from the running JDK.
        try (URLClassLoader classes = new URLClassLoader(new URL[] {jar.toUri().toURL()}, null);
                ZipFile zip = new ZipFile(jar.toFile());
                ZipOutputStream zos = new ZipOutputStream(Files.newOutputStream(out))) {
            ClassFile cf = ClassFile.of(
                    ClassFile.StackMapsOption.GENERATE_STACK_MAPS,
                    ClassFile.ClassHierarchyResolverOption.of(ClassHierarchyResolver.defaultResolver()
                            .orElse(ClassHierarchyResolver.ofResourceParsing(classes))
                            .cached()));
            for (ZipEntry e : Collections.list(zip.entries())) {
                byte[] bytes;
                try (InputStream in = zip.getInputStream(e)) {
                    bytes = in.readAllBytes();
                }
                if (old.contains(e.getName())) bytes = upgradeClass(cf, bytes);
                ZipEntry copy = new ZipEntry(e.getName());
                copy.setTime(e.getTime());
                zos.putNextEntry(copy);
                zos.write(bytes);
                zos.closeEntry();
            }
        }
        FileTime modified = Files.getLastModifiedTime(jar);
        Files.move(out, jar, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        Files.setLastModifiedTime(jar, modified); // so that Maven's copy-if-newer does not copy the old one back
        System.out.printf(
                "upgraded %d class files in %s to version %d (CDS/AOT-archivable)%n", old.size(), jar, TARGET);
    }

    private static byte[] upgradeClass(ClassFile cf, byte[] bytes) {
        ClassModel model = cf.parse(bytes);
        // Every method's code is re-emitted (not copied), so its stack maps are generated for the new version.
        ClassTransform newVersion = (builder, element) -> {
            if (element instanceof ClassFileVersion) builder.withVersion(TARGET, 0);
            else builder.with(element);
        };
        return cf.transformClass(model, ClassTransform.transformingMethodBodies(CodeTransform.ACCEPT_ALL)
                .andThen(newVersion));
    }

    private static boolean isClass(ZipEntry e) {
        return e.getName().endsWith(".class") && !e.getName().startsWith("META-INF/");
    }

    private static int majorVersion(ZipFile zip, ZipEntry e) throws IOException {
        try (InputStream in = zip.getInputStream(e)) {
            byte[] head = in.readNBytes(8);
            return ((head[6] & 0xff) << 8) | (head[7] & 0xff);
        }
    }

    private UpgradeClassFiles() {}
}
