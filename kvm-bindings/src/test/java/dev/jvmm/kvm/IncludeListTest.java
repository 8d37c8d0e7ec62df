package dev.jvmm.kvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.kvm.gen.KvmHeaders;
import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * jextract can't be rerun on every machine, so the committed dev.jvmm.kvm.gen may be edited by hand: this test keeps
 * jextract/regenerate.sh's include lists, the COMMAND it last wrote and the generated files naming the same things.
 */
class IncludeListTest {
    private static final Path JEXTRACT = Path.of("jextract");
    private static final Path GEN = Path.of("src/main/java/dev/jvmm/kvm/gen");
    /** Written by jextract whatever the include list: the header class and its support base. */
    private static final Set<String> ALWAYS = Set.of("KvmHeaders", "KvmHeaders$shared");

    private static Set<String> scriptList(String name) throws IOException {
        String script = Files.readString(JEXTRACT.resolve("regenerate.sh"));
        Matcher m = Pattern.compile("(?ms)^" + name + "=\\(\\n(.*?)^\\)").matcher(script);
        assertTrue(m.find(), "regenerate.sh has no " + name + "=( ... ) list");
        return new TreeSet<>(Arrays.asList(m.group(1).trim().split("\\s+")));
    }

    private static Set<String> commandIncludes(String option) throws IOException {
        List<String> words = Arrays.asList(
                Files.readString(JEXTRACT.resolve("COMMAND")).trim().split("\\s+"));
        Set<String> names = new TreeSet<>();
        for (int i = 0; i + 1 < words.size(); i++) if (words.get(i).equals(option)) names.add(words.get(i + 1));
        return names;
    }

    private static Set<String> generatedStructs() throws IOException {
        try (Stream<Path> files = Files.list(GEN)) {
            return files.map(f -> f.getFileName().toString().replaceFirst("\\.java$", ""))
                    .filter(n -> !ALWAYS.contains(n))
                    .collect(Collectors.toCollection(TreeSet::new));
        }
    }

    private static Set<String> structs() throws IOException {
        Set<String> all = scriptList("structs");
        Set<String> embedded = scriptList("embedded");
        Set<String> both = new TreeSet<>(all);
        both.retainAll(embedded);
        assertEquals(Set.of(), both, "listed both as used and as embedded");
        all.addAll(embedded);
        return all;
    }

    @Test
    void everyGeneratedStructIsListedAndEveryListedStructGenerated() throws IOException {
        assertEquals(structs(), generatedStructs());
    }

    @Test
    void theConstantsListIsWhatKvmHeadersHas() throws IOException {
        Set<String> generated = new TreeSet<>();
        for (Method m : KvmHeaders.class.getDeclaredMethods())
            if (Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers())) generated.add(m.getName());
        assertEquals(scriptList("constants"), generated);
    }

    @Test
    void commandMatchesTheScript() throws IOException {
        assertEquals(structs(), commandIncludes("--include-struct"));
        assertEquals(scriptList("constants"), commandIncludes("--include-constant"));
    }

    /** An embedded struct is kept only because a kept generated struct lays it out by value. */
    @Test
    void everyEmbeddedStructIsEmbeddedInAnotherGeneratedStruct() throws IOException {
        List<String> notEmbedded = new ArrayList<>();
        for (String e : scriptList("embedded")) {
            Pattern use = Pattern.compile("\\b" + e + "\\.layout\\(\\)");
            boolean found = false;
            for (String other : generatedStructs())
                if (!other.equals(e)
                        && use.matcher(Files.readString(GEN.resolve(other + ".java")))
                                .find()) found = true;
            if (!found) notEmbedded.add(e);
        }
        assertEquals(List.of(), notEmbedded, "listed as embedded, but no generated struct lays them out");
    }
}
