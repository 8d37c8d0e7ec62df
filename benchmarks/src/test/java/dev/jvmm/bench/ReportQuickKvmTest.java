package dev.jvmm.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.testing.RequiresKvm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole report in quick mode, end to end: every benchmark row is there with numbers, and the charts and
 * JMH JSON are written. Checks completeness, never timings.
 */
@RequiresKvm
@Tag("slow")
class ReportQuickKvmTest {
    @Test
    void quickReportHasEveryRow(@TempDir Path out) throws Exception {
        boolean qemu = NativeTools.qemu().isPresent();
        if ("true".equals(System.getenv("CI")))
            assertTrue(qemu, "CI=true but qemu-system-x86_64 is missing (Debian package qemu-system-x86)");
        // Inside the emulated machine (scripts/with-kvm) exits and JVM starts are slow: the smallest size there.
        Report.Config config =
                System.getenv("JVMM_EMULATED") != null ? Report.Config.emulated(out) : Report.Config.quick(out);
        // JMH refuses to start while another JMH run holds /tmp/jmh.lock (a benchmark run by hand on the same
        // machine); this test checks completeness, not figures, so it need not wait for the machine to be quiet.
        System.setProperty("jmh.ignoreLock", "true");
        Path md = new Report(config).run();
        String report = Files.readString(md);

        for (ExitKind k : ExitKind.values()) {
            for (int cpl : k.cpls()) {
                String row = exitRow(report, k.guestName(), cpl);
                // jvmm and C columns carry a number (and its spread, where there was more than one round); QEMU
                // one wherever it serves the exit
                String[] cells = row.split("\\|");
                assertTrue(cells[3].trim().matches(NUMBER), "jvmm column: " + row);
                assertTrue(cells[4].trim().matches(NUMBER), "C reference column: " + row);
                assertEquals(k.qemuComparable() && qemu, cells[5].trim().matches(NUMBER), "QEMU column: " + row);
                assertTrue(cells[6].trim().matches(NUMBER), "ratio column: " + row);
                assertTrue(
                        report.contains("| exits " + k.guestName() + " cpl" + cpl + " |"),
                        "JMH row for " + k + " cpl" + cpl);
                if (k != ExitKind.IOEVENTFD && k != ExitKind.IRQ) {
                    assertTrue(Files.isRegularFile(out.resolve("latency-" + k.guestName() + "-cpl" + cpl + ".png")));
                    assertTrue(report.contains("| " + k.guestName() + " | " + cpl + " | jvmm | "), "histogram row");
                    assertTrue(
                            report.contains("| " + k.guestName() + " | " + cpl + " | C reference | "), "histogram row");
                }
            }
        }
        assertTrue(report.contains("| empty KVM_RUN (immediate_exit) |"));
        assertTrue(report.contains("| C reference (refvmm) | - | "), "launch row for refvmm");
        assertTrue(report.contains("| jvmm | SerialGC -Xms16m -Xmx64m | "), "launch row for jvmm");
        if (qemu) assertTrue(report.contains("| QEMU microvm | -M microvm -enable-kvm | "), "launch row for QEMU");
        assertFalse(launchRowsFailed(report), report);
        Matcher life = Pattern.compile(
                        "\\| created, run to its first exit, closed \\| ([^|]+) \\| ([^|]+) \\| ([^|]+) \\|")
                .matcher(report);
        assertTrue(life.find(), "lifecycle row in\n" + report);
        for (int g = 1; g <= 3; g++) assertTrue(life.group(g).trim().matches(NUMBER), "lifecycle column " + g);
        for (int mib : config.snapshotMib()) {
            // save and dd, restore, first exit and console answer each measured: a number in every time column
            String row = report.lines()
                    .filter(l -> l.startsWith("| " + mib + " | "))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError("no snapshot row for " + mib + " MiB in\n" + report));
            String[] cells = row.split("\\|");
            for (int c : new int[] {3, 4, 7, 8, 9})
                assertTrue(cells[c].trim().matches("[0-9]+(\\.[0-9]+)?( .*)?"), "column " + c + ": " + row);
        }
        boolean qemuImg = NativeTools.qemuImg().isPresent();
        for (String format : qemuImg ? List.of("raw", "qcow2") : List.of("raw"))
            for (String pattern : List.of(
                    "4 KiB random read", "4 KiB random write", "64 KiB sequential read", "64 KiB sequential write")) {
                // jvmm at depth n and 1, the pread/pwrite floor and qemu-img bench measured, and their ratios
                String row = report.lines()
                        .filter(l -> l.startsWith("| " + format + " | " + pattern + " | "))
                        .findFirst()
                        .orElseThrow(
                                () -> new AssertionError("no block row " + format + " " + pattern + "\n" + report));
                String[] cells = row.split("\\|");
                for (int c : qemuImg ? new int[] {3, 4, 5, 6, 7, 8, 9} : new int[] {3, 4, 5, 7, 8})
                    assertTrue(cells[c].trim().matches(NUMBER), "block column " + c + ": " + row);
            }
        if (config.net().iterations() > 0)
            for (String direction : List.of("guest -> host", "host -> guest")) {
                // jvmm, the socket pair and their ratio measured (pasta's columns only where it is installed)
                String row = report.lines()
                        .filter(l -> l.startsWith("| " + direction + " | "))
                        .findFirst()
                        .orElseThrow(() -> new AssertionError("no net row " + direction + "\n" + report));
                String[] cells = row.split("\\|");
                for (int c : new int[] {2, 3, 4})
                    assertTrue(cells[c].trim().matches("[0-9]+(\\.[0-9]+)?( .*)?"), "net column " + c + ": " + row);
            }
        assertTrue(Files.size(out.resolve("exit-costs.png")) > 0);
        assertTrue(report.contains("| VM created, run to its first exit, closed (in-process) | "), "summary row");
        assertTrue(Files.size(out.resolve("summary.png")) > 0);
        assertTrue(Files.readString(out.resolve("jmh.json")).contains("\"primaryMetric\""));
    }

    private static final String NUMBER = "[0-9]+\\.[0-9]+( .*)?";

    private static String exitRow(String report, String kind, int cpl) {
        Matcher m = Pattern.compile(
                        "^\\| " + kind + " \\| " + cpl + " \\| [^\\n]*\\| [^|\\n]*\\| [^|\\n]*\\|$", Pattern.MULTILINE)
                .matcher(report);
        assertTrue(m.find(), "no exit row for " + kind + " cpl" + cpl + " in\n" + report);
        return m.group();
    }

    private static boolean launchRowsFailed(String report) {
        return report.lines().anyMatch(l -> l.startsWith("| jvmm |") && l.contains("failed"));
    }
}
