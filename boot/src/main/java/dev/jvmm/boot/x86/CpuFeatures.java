package dev.jvmm.boot.x86;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.core.CpuidEntry;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * CPUID feature flags by their Linux /proc/cpuinfo names, and the {@code --cpu-features} edits
 * ("-avx,-xsave,+x2apic"): hiding a feature makes the guest avoid its instructions, which matters on hosts
 * whose KVM cannot emulate them (see HOST.md) and for migration between different hosts.
 */
public final class CpuFeatures {
    public enum Reg {
        EAX,
        EBX,
        ECX,
        EDX
    }

    public record Feature(String name, int leaf, int subleaf, Reg reg, int bit) {}

    private static final Map<String, Feature> FEATURES = new LinkedHashMap<>();

    private static void f(String name, int leaf, int subleaf, Reg reg, int bit) {
        FEATURES.put(name, new Feature(name, leaf, subleaf, reg, bit));
    }

    static {
        String[] edx1 = {
            "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", null, "sep", "mtrr", "pge", "mca",
            "cmov", "pat", "pse36", "pn", "clflush", null, "dts", "acpi", "mmx", "fxsr", "sse", "sse2", "ss", "ht",
            "tm", "ia64", "pbe"
        };
        String[] ecx1 = {
            "pni",
            "pclmulqdq",
            "dtes64",
            "monitor",
            "ds_cpl",
            "vmx",
            "smx",
            "est",
            "tm2",
            "ssse3",
            "cid",
            "sdbg",
            "fma",
            "cx16",
            "xtpr",
            "pdcm",
            null,
            "pcid",
            "dca",
            "sse4_1",
            "sse4_2",
            "x2apic",
            "movbe",
            "popcnt",
            "tsc_deadline_timer",
            "aes",
            "xsave",
            "osxsave",
            "avx",
            "f16c",
            "rdrand",
            "hypervisor"
        };
        String[] ebx7 = {
            "fsgsbase",
            "tsc_adjust",
            "sgx",
            "bmi1",
            "hle",
            "avx2",
            "fdp_excptn_only",
            "smep",
            "bmi2",
            "erms",
            "invpcid",
            "rtm",
            "cqm",
            "zero_fcs_fds",
            "mpx",
            "rdt_a",
            "avx512f",
            "avx512dq",
            "rdseed",
            "adx",
            "smap",
            "avx512ifma",
            "pcommit",
            "clflushopt",
            "clwb",
            "intel_pt",
            "avx512pf",
            "avx512er",
            "avx512cd",
            "sha_ni",
            "avx512bw",
            "avx512vl"
        };
        String[] ecx7 = {
            "prefetchwt1",
            "avx512vbmi",
            "umip",
            "pku",
            "ospke",
            "waitpkg",
            "avx512_vbmi2",
            "cet_ss",
            "gfni",
            "vaes",
            "vpclmulqdq",
            "avx512_vnni",
            "avx512_bitalg",
            "tme",
            "avx512_vpopcntdq",
            null,
            "la57",
            null,
            null,
            null,
            null,
            null,
            "rdpid",
            null,
            null,
            "cldemote",
            null,
            "movdiri",
            "movdir64b",
            "enqcmd",
            "sgx_lc",
            null
        };
        for (int i = 0; i < 32; i++) {
            if (edx1[i] != null) f(edx1[i], 1, 0, Reg.EDX, i);
            if (ecx1[i] != null) f(ecx1[i], 1, 0, Reg.ECX, i);
            if (ebx7[i] != null) f(ebx7[i], 7, 0, Reg.EBX, i);
            if (ecx7[i] != null) f(ecx7[i], 7, 0, Reg.ECX, i);
        }
        f("xsaveopt", 0xd, 1, Reg.EAX, 0);
        f("xsavec", 0xd, 1, Reg.EAX, 1);
        f("xsaves", 0xd, 1, Reg.EAX, 3);
        f("syscall", 0x80000001, 0, Reg.EDX, 11);
        f("nx", 0x80000001, 0, Reg.EDX, 20);
        f("mmxext", 0x80000001, 0, Reg.EDX, 22);
        f("pdpe1gb", 0x80000001, 0, Reg.EDX, 26);
        f("rdtscp", 0x80000001, 0, Reg.EDX, 27);
        f("lm", 0x80000001, 0, Reg.EDX, 29);
        f("lahf_lm", 0x80000001, 0, Reg.ECX, 0);
        f("svm", 0x80000001, 0, Reg.ECX, 2);
        f("abm", 0x80000001, 0, Reg.ECX, 5);
        f("sse4a", 0x80000001, 0, Reg.ECX, 6);
        f("3dnowprefetch", 0x80000001, 0, Reg.ECX, 8);
        f("xop", 0x80000001, 0, Reg.ECX, 11);
        f("fma4", 0x80000001, 0, Reg.ECX, 16);
        f("tbm", 0x80000001, 0, Reg.ECX, 21);
        f("topoext", 0x80000001, 0, Reg.ECX, 22);
    }

    /** One edit: set or clear a feature. */
    public record Edit(Feature feature, boolean enable) {}

    private CpuFeatures() {}

    /** Parses "-avx,-xsave,+x2apic" (a bare name means +); unknown names are one clear error. */
    public static List<Edit> parse(String spec) {
        List<Edit> edits = new ArrayList<>();
        if (spec == null || spec.isBlank()) return edits;
        for (String raw : spec.split(",")) {
            String item = raw.trim().toLowerCase(Locale.ROOT);
            if (item.isEmpty()) continue;
            boolean enable = !item.startsWith("-");
            String name = item.startsWith("-") || item.startsWith("+") ? item.substring(1) : item;
            Feature f = FEATURES.get(name);
            if (f == null)
                throw new BootException(
                        Kind.BAD_OPTION,
                        "unknown CPU feature '" + name
                                + "' in --cpu-features (names as in /proc/cpuinfo, e.g. -avx,-xsave)");
            edits.add(new Edit(f, enable));
        }
        return edits;
    }

    /** Applies edits; enabling what the host's KVM does not offer is refused. */
    public static List<CpuidEntry> apply(List<CpuidEntry> supported, List<Edit> edits) {
        List<CpuidEntry> out = new ArrayList<>(supported);
        for (Edit edit : edits) {
            Feature f = edit.feature();
            boolean found = false;
            for (int i = 0; i < out.size(); i++) {
                CpuidEntry e = out.get(i);
                if (e.function() != f.leaf() || e.index() != f.subleaf()) continue;
                found = true;
                int mask = 1 << f.bit();
                int v = switch (f.reg()) {
                    case EAX -> e.eax();
                    case EBX -> e.ebx();
                    case ECX -> e.ecx();
                    case EDX -> e.edx();
                };
                if (edit.enable() && (v & mask) == 0)
                    throw new BootException(
                            Kind.CPU_FEATURE_UNAVAILABLE,
                            "CPU feature '" + f.name() + "' cannot be enabled: this host's KVM does not offer it");
                v = edit.enable() ? v | mask : v & ~mask;
                out.set(
                        i,
                        switch (f.reg()) {
                            case EAX -> e.withRegisters(v, e.ebx(), e.ecx(), e.edx());
                            case EBX -> e.withRegisters(e.eax(), v, e.ecx(), e.edx());
                            case ECX -> e.withRegisters(e.eax(), e.ebx(), v, e.edx());
                            case EDX -> e.withRegisters(e.eax(), e.ebx(), e.ecx(), v);
                        });
            }
            if (!found && edit.enable())
                throw new BootException(
                        Kind.CPU_FEATURE_UNAVAILABLE,
                        "CPU feature '" + f.name() + "' cannot be enabled: this host's KVM does not offer CPUID leaf 0x"
                                + Integer.toHexString(f.leaf()));
        }
        return out;
    }

    public static boolean has(List<CpuidEntry> entries, String name) {
        Feature f = FEATURES.get(name);
        for (CpuidEntry e : entries) {
            if (e.function() != f.leaf() || e.index() != f.subleaf()) continue;
            int v = switch (f.reg()) {
                case EAX -> e.eax();
                case EBX -> e.ebx();
                case ECX -> e.ecx();
                case EDX -> e.edx();
            };
            return (v & (1 << f.bit())) != 0;
        }
        return false;
    }
}
