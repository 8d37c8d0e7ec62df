package dev.jvmm.kvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checks the hand-encoded ioctl numbers and the generated struct layouts against the C compiler's view of
 * the very headers the kernel was built with: a C program prints each value, the test compares.
 */
class KvmIoctlsTest {
    /** Structs whose size must match C. */
    private static final List<String> STRUCTS = List.of(
            "kvm_regs",
            "kvm_sregs",
            "kvm_segment",
            "kvm_dtable",
            "kvm_fpu",
            "kvm_lapic_state",
            "kvm_mp_state",
            "kvm_vcpu_events",
            "kvm_run",
            "kvm_cpuid2",
            "kvm_cpuid_entry2",
            "kvm_msrs",
            "kvm_msr_entry",
            "kvm_msr_list",
            "kvm_userspace_memory_region",
            "kvm_irq_level",
            "kvm_irqfd",
            "kvm_ioeventfd",
            "kvm_pit_config",
            "kvm_msi",
            "kvm_enable_cap",
            "kvm_irq_routing",
            "kvm_irq_routing_entry",
            "kvm_translation",
            "kvm_xsave",
            "kvm_xcrs",
            "kvm_xcr",
            "kvm_debugregs",
            "kvm_irqchip",
            "kvm_pit_state2",
            "kvm_clock_data",
            "boot_params",
            "setup_header",
            "boot_e820_entry");
    /** Fields (struct.field) whose offset jvmm relies on. */
    private static final List<String> OFFSETS = List.of(
            "kvm_run.request_interrupt_window",
            "kvm_run.immediate_exit",
            "kvm_run.exit_reason",
            "kvm_run.ready_for_interrupt_injection",
            "kvm_run.if_flag",
            "kvm_run.io",
            "kvm_run.mmio",
            "kvm_run.internal",
            "kvm_run.system_event",
            "kvm_run.fail_entry",
            "kvm_regs.rip",
            "kvm_regs.rflags",
            "kvm_regs.rsp",
            "kvm_sregs.cs",
            "kvm_sregs.gdt",
            "kvm_sregs.cr0",
            "kvm_sregs.efer",
            "kvm_sregs.apic_base",
            "kvm_sregs.interrupt_bitmap",
            "kvm_segment.selector",
            "kvm_segment.type",
            "kvm_cpuid2.entries",
            "kvm_cpuid_entry2.function",
            "kvm_cpuid_entry2.edx",
            "kvm_msrs.entries",
            "kvm_msr_entry.data",
            "kvm_userspace_memory_region.userspace_addr",
            "kvm_irqfd.resamplefd",
            "kvm_ioeventfd.datamatch",
            "kvm_ioeventfd.fd",
            "kvm_msi.data",
            "kvm_irq_routing.entries",
            "kvm_irq_routing_entry.u",
            "kvm_xcrs.xcrs",
            "kvm_xcr.value",
            "kvm_irqchip.chip",
            "kvm_pit_state2.flags",
            "kvm_clock_data.flags",
            "boot_params.e820_entries",
            "boot_params.hdr",
            "boot_params.e820_table",
            "boot_params.ext_ramdisk_image",
            "setup_header.cmd_line_ptr",
            "setup_header.kernel_alignment",
            "setup_header.init_size",
            "setup_header.xloadflags",
            "setup_header.pref_address");

    private static Map<String, Long> c;

    @BeforeAll
    static void compileAndRun(@TempDir Path dir) throws Exception {
        StringBuilder src = new StringBuilder("""
                #include <stdio.h>
                #include <stddef.h>
                #include <linux/kvm.h>
                #include <asm/bootparam.h>
                int main(void) {
                  printf("KVMIO %d\\n", KVMIO);
                """);
        for (Field f : ioctlFields())
            src.append("  printf(\"%s %llu\\n\", \"")
                    .append(f.getName())
                    .append("\", (unsigned long long)")
                    .append(f.getName())
                    .append(");\n");
        for (Cap cap : Cap.values())
            src.append("  printf(\"KVM_CAP_%s %d\\n\", \"")
                    .append(cap.name())
                    .append("\", KVM_CAP_")
                    .append(cap.name())
                    .append(");\n");
        for (String s : STRUCTS)
            src.append("  printf(\"sizeof.%s %zu\\n\", \"")
                    .append(s)
                    .append("\", sizeof(struct ")
                    .append(s)
                    .append("));\n");
        for (String o : OFFSETS) {
            String[] p = o.split("\\.");
            src.append("  printf(\"offsetof.%s %zu\\n\", \"")
                    .append(o)
                    .append("\", offsetof(struct ")
                    .append(p[0])
                    .append(", ")
                    .append(p[1])
                    .append("));\n");
        }
        src.append("  return 0;\n}\n");
        Path cFile = dir.resolve("check.c");
        Path exe = dir.resolve("check");
        Files.writeString(cFile, src);
        run(List.of("gcc", "-o", exe.toString(), cFile.toString()));
        c = new HashMap<>();
        for (String line : run(List.of(exe.toString())).split("\n")) {
            String[] kv = line.trim().split(" ");
            c.put(kv[0], Long.parseUnsignedLong(kv[1]));
        }
    }

    private static String run(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "timed out: " + cmd);
        assertEquals(0, p.exitValue(), cmd + " failed:\n" + out);
        return out;
    }

    private static List<Field> ioctlFields() {
        List<Field> fields = new ArrayList<>();
        for (Field f : KvmIoctls.class.getFields())
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == long.class) fields.add(f);
        return fields;
    }

    @Test
    void ioctlNumbersMatchTheKernelHeaders() throws Exception {
        List<Field> fields = ioctlFields();
        assertTrue(fields.size() > 30, "expected the KVM ioctls, found " + fields.size());
        for (Field f : fields) assertEquals(c.get(f.getName()), (Long) f.getLong(null), f.getName());
        assertEquals(c.get("KVMIO"), (long) KvmIoctls.KVMIO);
    }

    @Test
    void capabilityNumbersMatchTheKernelHeaders() {
        for (Cap cap : Cap.values()) assertEquals(c.get("KVM_CAP_" + cap.name()), (long) cap.number(), cap.name());
    }

    @Test
    void structSizesMatchTheKernelHeaders() throws Exception {
        for (String s : STRUCTS) {
            long size = (long)
                    Class.forName("dev.jvmm.kvm.gen." + s).getMethod("sizeof").invoke(null);
            assertEquals(c.get("sizeof." + s), size, "sizeof(struct " + s + ")");
        }
    }

    @Test
    void fieldOffsetsMatchTheKernelHeaders() throws Exception {
        for (String o : OFFSETS) {
            String[] p = o.split("\\.");
            long off = (long) Class.forName("dev.jvmm.kvm.gen." + p[0])
                    .getMethod(p[1] + "$offset")
                    .invoke(null);
            assertEquals(c.get("offsetof." + o), off, "offsetof(struct " + p[0] + ", " + p[1] + ")");
        }
    }
}
