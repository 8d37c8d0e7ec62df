package dev.jvmm.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;

/** Renders the measurements as Markdown (and the summary bar chart). */
final class ReportWriter {
    private final Report.Config config;
    private final List<Report.ExitRow> rows;
    private final List<Report.LaunchRow> launches;
    private final LifecycleBench.Result lifecycle;
    private final List<SnapshotBench.Row> snapshots;
    private final List<BlkBench.Row> blk;
    private final Map<String, Stats> net;
    private final Report.LoginResult login;
    private final int tscKhz;
    private final Stats refEmptyRunNs;
    private final Report.JmhScore jmhEmptyRun;
    private final String loadBefore, loadAfter;
    private final StringBuilder md = new StringBuilder();

    ReportWriter(
            Report.Config config,
            List<Report.ExitRow> rows,
            List<Report.LaunchRow> launches,
            LifecycleBench.Result lifecycle,
            List<SnapshotBench.Row> snapshots,
            List<BlkBench.Row> blk,
            Map<String, Stats> net,
            Report.LoginResult login,
            int tscKhz,
            Stats refEmptyRunNs,
            Report.JmhScore jmhEmptyRun,
            String loadBefore,
            String loadAfter) {
        this.config = config;
        this.rows = rows;
        this.launches = launches;
        this.lifecycle = lifecycle;
        this.snapshots = snapshots;
        this.blk = blk;
        this.net = net;
        this.login = login;
        this.tscKhz = tscKhz;
        this.refEmptyRunNs = refEmptyRunNs;
        this.jmhEmptyRun = jmhEmptyRun;
        this.loadBefore = loadBefore;
        this.loadAfter = loadAfter;
    }

    String write() {
        line("# jvmm benchmark report");
        line("");
        line(
                "%s%s. Host: %s, %d CPUs, kernel %s, JDK %s, TSC %s kHz. Load average before: %s; after: %s.",
                Report.now(),
                config.quick() ? " — **quick mode (smoke test; numbers are not meaningful)**" : "",
                cpuModel(),
                Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.version"),
                Runtime.version(),
                tscKhz == 0 ? "n/a" : "" + tscKhz,
                loadBefore,
                loadAfter);
        line("");
        line(
                "Figures are medians over %d rounds; parentheses give min–max over the rounds. Each "
                        + "round runs one refvmm process, then the same number of batches on a warm jvmm VM, "
                        + "then one QEMU process, back to back, and a ratio is taken per round, so host load "
                        + "drifts out of the ratios more than out of absolute times. A batch is %d exits; time "
                        + "per exit includes the guest's loop (dec/jnz, emulated at CPL0 on this host).",
                config.rounds(), config.exitsPerBatch());
        line("");
        summaryTable();
        if (rows.isEmpty()) {
            line("## Exit latency");
            line("");
            line("Skipped (--no-exits).");
            line("");
        } else {
            exitTable();
            jmhTable();
            histogramTable();
        }
        launchTable();
        lifecycleTable();
        snapshotTable();
        blkTable();
        netTable();
        loginTable();
        line("## Files");
        line("");
        line("- `jmh.json`: raw JMH results (all runs); `exit-costs.png`: medians per exit kind; "
                + "`latency-*.png`: exit-to-exit latency by percentile (jvmm and C reference).");
        line("- Run it again: `scripts/bench.sh [--quick] [--out DIR]` (or `java -cp ... dev.jvmm.bench.Report`).");
        return md.toString();
    }

    /** Every headline figure as a ratio to its same-run reference, with its goal (and summary.png). */
    private void summaryTable() {
        Summary summary = new Summary();
        for (Report.ExitRow r : rows)
            summary.add("exit: " + r.kind.guestName() + ", CPL " + r.cpl, Stats.of(r.ratio), "refvmm (C)");
        if (lifecycle != null)
            summary.add(
                    "VM created, run to its first exit, closed (in-process)",
                    lifecycle.lifecycle().ratio(),
                    "lifecycle.c (C)",
                    1.2,
                    Summary.Better.LOWER);
        launchSummary(summary);
        for (SnapshotBench.Row r : snapshots)
            summary.add("snapshot save, " + r.ramMib() + " MiB guest", r.saveRatio(), "dd conv=sparse,fsync");
        for (BlkBench.Row r : blk)
            summary.add("virtio-blk " + r.label() + ", time per request", r.toQemu(), "qemu-img bench");
        for (String[] r :
                new String[][] {{"guest -> host", "user", "pasta"}, {"host -> guest", "user-rx", "pasta-rx"}}) {
            Stats toPair = net.get(r[1] + "-ratio"), toPasta = net.get(r[1] + "-" + r[2] + "-ratio");
            if (toPair != null)
                summary.add(
                        "user-mode TCP " + r[0] + ", throughput",
                        toPair,
                        "Java socket pair",
                        0.5,
                        Summary.Better.HIGHER);
            if (toPasta != null)
                summary.add("user-mode TCP " + r[0] + ", throughput", toPasta, "pasta", 1.0, Summary.Better.HIGHER);
        }
        line("## Summary");
        line("");
        line("Each figure as jvmm / a reference measured in the same run (time ratios: lower is better), median "
                + "(min–max) over the rounds of its section below; where jvmm and the reference were not run in "
                + "pairs, the ratio of the medians with the widest spread their ranges allow. `summary.png` draws "
                + "the medians beside their goals.");
        line("");
        for (String l : summary.table()) line("%s", l);
        line("");
        summary.chart(config.out().resolve("summary.png"));
    }

    /** Launch time and memory against QEMU microvm: jvmm's fastest AOT-cache row (what ./jvmm and bin/jvmm run). */
    private void launchSummary(Summary summary) {
        Report.LaunchRow qemu = null, jvmm = null, cli = null;
        for (Report.LaunchRow l : launches) {
            if (l.vmm().startsWith("QEMU") && l.firstOutputMs().present()) qemu = l;
            if (l.vmm().equals("jvmm CLI") && l.firstOutputMs().present()) cli = l;
            if (l.vmm().equals("jvmm")
                    && l.firstOutputMs().present()
                    && (jvmm == null
                            || (l.settings().contains("AOT") && !jvmm.settings().contains("AOT"))
                            || (l.settings().contains("AOT") == jvmm.settings().contains("AOT")
                                    && l.firstOutputMs().median()
                                            < jvmm.firstOutputMs().median()))) jvmm = l;
        }
        if (jvmm == null) return;
        String ref = qemu == null ? "QEMU microvm (not run)" : "QEMU microvm";
        Stats none = Stats.of(new double[0]);
        summary.add(
                "launch to first output (jvmm" + (jvmm.settings().contains("AOT") ? ", AOT cache" : "") + ")",
                qemu == null ? none : Summary.ratioOf(jvmm.firstOutputMs(), qemu.firstOutputMs()),
                ref,
                2.0,
                Summary.Better.LOWER);
        if (cli != null) {
            summary.add(
                    "launch to first output (jvmm CLI: the distribution's bin/jvmm run)",
                    qemu == null ? none : Summary.ratioOf(cli.firstOutputMs(), qemu.firstOutputMs()),
                    ref,
                    2.0,
                    Summary.Better.LOWER);
        }
        if (jvmm.memory() != null) {
            long mib = jvmm.memory().beyondGuestKb() >> 10;
            Stats ratio = qemu == null || qemu.memory() == null
                    ? none
                    : Summary.ratioOf(
                            Stats.of(new double[] {jvmm.memory().beyondGuestKb()}),
                            Stats.of(new double[] {qemu.memory().beyondGuestKb()}));
            summary.add(
                    "resident beyond guest RAM: " + mib + " MiB (goal ≤ 40: " + (mib <= 40 ? "met" : "not met") + ")",
                    ratio,
                    ref);
        }
    }

    private void exitTable() {
        line("## Exit latency (µs per exit)");
        line("");
        line("jvmm and C: host clock between the guest's batch markers. QEMU: the guest's rdtsc (QEMU/C compares "
                + "guest clocks of both). Dispatch: jvmm's own handling time per exit from ExitStats "
                + "(KVM_RUN return to handler done). Alloc: bytes allocated by jvmm's vCPU thread per exit "
                + "(ThreadMXBean, over all rounds).");
        line("");
        line("| exit | CPL | jvmm | C reference | QEMU microvm | jvmm/C | jvmm/C (guest clock) | "
                + "QEMU/C | jvmm dispatch (ns) | alloc (B/exit) |");
        line("|---|---|---|---|---|---|---|---|---|---|");
        Map<String, Map<String, Double>> bars = new LinkedHashMap<>();
        for (Report.ExitRow r : rows) {
            line(
                    "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |",
                    r.kind.guestName(),
                    r.cpl,
                    us(r.jvmmNs),
                    us(r.refNs),
                    r.qemuGuestNs.isEmpty() ? "n/a (" + r.qemuNote + ")" : us(r.qemuGuestNs),
                    Stats.of(r.ratio).format("%.3f"),
                    Stats.of(r.ratioGuestClock).format("%.3f"),
                    r.qemuRatio.isEmpty() ? "n/a" : Stats.of(r.qemuRatio).format("%.3f"),
                    Double.isNaN(r.dispatchNs)
                            ? "n/a (no userspace exit)"
                            : String.format("%.0f (%s)", r.dispatchNs, r.dispatchReason),
                    Double.isNaN(r.allocBytesPerExit) ? "n/a" : String.format("%.4f", r.allocBytesPerExit));
            Map<String, Double> b = new LinkedHashMap<>();
            b.put("jvmm", Stats.of(r.jvmmNs).median() / 1000);
            b.put("C reference", Stats.of(r.refNs).median() / 1000);
            b.put(
                    "QEMU microvm",
                    r.qemuGuestNs.isEmpty()
                            ? Double.NaN
                            : Stats.of(r.qemuGuestNs).median() / 1000);
            bars.put(r.label(), b);
        }
        line("");
        line(
                "Descriptions: %s.",
                String.join(
                        "; ",
                        rows.stream()
                                .map(r -> r.kind.guestName() + " = " + r.kind.description())
                                .distinct()
                                .toList()));
        line("");
        line("![exit costs](exit-costs.png)");
        line("");
        Charts.bars(config.out().resolve("exit-costs.png"), "Time per exit (median, µs)", "µs", bars);
    }

    private void jmhTable() {
        line("## JMH (jvmm's exit path on its own vCPU thread)");
        line("");
        if (!config.jmh()) {
            line("Skipped (--no-jmh).");
            line("");
            return;
        }
        line(
                "ExitBenchmark: one operation = one exit (batches of %d, @OperationsPerInvocation). "
                        + "Score ± 99.9%% CI; iterations min–max; gc.alloc.rate.norm from JMH's gc profiler "
                        + "(all threads of the fork, per exit). JMH/C divides by the C reference's median from "
                        + "the paired rounds above.",
                ExitBenchmark.BATCH);
        line("");
        line("| benchmark | score (ns/exit) | iterations (ns) | JMH/C | gc.alloc.rate.norm (B/exit) |");
        line("|---|---|---|---|---|");
        for (Report.ExitRow r : rows) {
            Report.JmhScore j = r.jmh;
            if (j == null) continue;
            line(
                    "| exits %s cpl%d | %.0f ± %.0f | %.0f–%.0f | %.3f | %.4f |",
                    r.kind.guestName(),
                    r.cpl,
                    j.score(),
                    j.error(),
                    j.iterations().min(),
                    j.iterations().max(),
                    j.score() / Stats.of(r.refNs).median(),
                    j.allocNormBytes());
        }
        if (jmhEmptyRun != null) {
            line(
                    "| empty KVM_RUN (immediate_exit) | %.0f ± %.0f | %.0f–%.0f | %.3f | %.4f |",
                    jmhEmptyRun.score(),
                    jmhEmptyRun.error(),
                    jmhEmptyRun.iterations().min(),
                    jmhEmptyRun.iterations().max(),
                    jmhEmptyRun.score() / refEmptyRunNs.median(),
                    jmhEmptyRun.allocNormBytes());
        }
        line("");
        line("C reference empty KVM_RUN: %s ns per call.", refEmptyRunNs.format("%.0f"));
        line("");
    }

    private void histogramTable() {
        line("## Latency distributions (exit-to-exit, µs)");
        line("");
        line("One batch per VMM after warm-up, one clock read per exit in both (HdrHistogram, 3 "
                + "significant digits). The median difference is jvmm's own share of a typical exit, "
                + "the steadiest figure on a loaded host; the tails (ms-scale stalls) come and go with "
                + "host load and hit both VMMs, and they dominate batch means.");
        line("");
        line("| exit | CPL | VMM | count | p50 | p90 | p99 | p99.9 | max | p50 jvmm − C (ns) |");
        line("|---|---|---|---|---|---|---|---|---|---|");
        for (Report.ExitRow r : rows) {
            if (r.jvmmHist == null) continue;
            long diff = r.jvmmHist.getValueAtPercentile(50) - r.refHist.getValueAtPercentile(50);
            hist(r, "jvmm", r.jvmmHist, String.format("%+d", diff));
            hist(r, "C reference", r.refHist, "");
        }
        line("");
        for (Report.ExitRow r : rows)
            if (r.jvmmHist != null) line("![%s](latency-%s-cpl%d.png)", r.label(), r.kind.guestName(), r.cpl);
        line("");
    }

    private void hist(Report.ExitRow r, String vmm, Histogram h, String diff) {
        line(
                "| %s | %d | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %s |",
                r.kind.guestName(),
                r.cpl,
                vmm,
                h.getTotalCount(),
                h.getValueAtPercentile(50) / 1e3,
                h.getValueAtPercentile(90) / 1e3,
                h.getValueAtPercentile(99) / 1e3,
                h.getValueAtPercentile(99.9) / 1e3,
                h.getMaxValue() / 1e3,
                diff);
    }

    private void launchTable() {
        line("## Launch time and memory (trivial guest, %d MiB RAM)", LaunchBench.GUEST_MIB);
        line("");
        if (!config.launch()) {
            line("Skipped (--no-launch).");
            line("");
            return;
        }
        line(
                "First output: process spawn to the guest's first debugcon byte on the VMM's stdout. "
                        + "Exit: spawn to process exit after the guest's debug-exit. RSS: VmRSS with the guest "
                        + "idle (halted); beyond guest RAM = RSS minus the resident part of the guest-RAM "
                        + "mapping. For jvmm, where the time goes: spawn to LaunchMain's main() (JVM start and "
                        + "class loading), to its first downcall returned (the JDK bootstrapping its FFM linker), "
                        + "to the VM being built (KVM VM, memory, vCPU, devices); first output comes after the "
                        + "guest's first instructions. The jvmm CLI row is what a user runs: the staged "
                        + "distribution's bin/jvmm (its JVM options, its AOT cache) doing `jvmm run` on the same "
                        + "guest, the CLI's own start included (its phases are not split). %d launch(es) each.",
                config.launchRuns());
        line("");
        line("| VMM | settings | first output (ms) | exit (ms) | main() (ms) | FFM up (ms) | VM built (ms) | RSS "
                + "(kB) | beyond guest RAM (kB) | guest RAM resident (kB) | RssAnon / RssFile / "
                + "RssShmem (kB) | PSS (kB) | note |");
        line("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (Report.LaunchRow l : launches) {
            Footprint.Memory m = l.memory();
            line(
                    "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
                    l.vmm(),
                    l.settings(),
                    l.firstOutputMs().format("%.1f"),
                    l.exitMs().format("%.1f"),
                    l.mainMs().format("%.1f"),
                    l.ffmMs().format("%.1f"),
                    l.vmBuiltMs().format("%.1f"),
                    m == null ? "n/a" : m.rssKb(),
                    m == null ? "n/a" : m.beyondGuestKb(),
                    m == null
                            ? "n/a"
                            : m.guestRamRssKb() < 0
                                    ? "not found (merged mapping; beyond = RSS)"
                                    : "" + m.guestRamRssKb(),
                    m == null ? "n/a" : m.rssAnonKb() + " / " + m.rssFileKb() + " / " + m.rssShmemKb(),
                    m == null ? "n/a" : m.pssKb(),
                    l.note());
        }
        line("");
    }

    private void blkTable() {
        line("## virtio-blk throughput (driver over the real device, no guest)");
        line("");
        if (blk.isEmpty()) {
            line("Skipped (--no-blk).");
            line("");
            return;
        }
        line(
                "A Java driver (BlkGuest) keeps requests in flight on one virtqueue of the real VirtioBlock device on "
                        + "virtio-mmio (%d I/O threads, the disk opened as `jvmm run --disk` opens it); the floor is "
                        + "`blkfloor`, one C thread doing pread(2)/pwrite(2) one request at a time on the raw "
                        + "image (the qcow2 rows too: writing a qcow2 file at guest offsets would corrupt it); "
                        + "`qemu-img bench -t writeback -i threads` runs on jvmm's image file at the same depth. "
                        + "Depth: "
                        + "jvmm and qemu-img bench keep **%d** requests in flight (jvmm also at depth 1), the floor 1. "
                        + "All three run against the host's **page cache** (no O_DIRECT, the %d MiB image read once "
                        + "beforehand, writes overwrite allocated blocks, nothing is flushed): the figures are the "
                        + "cost of each request's path (syscalls, thread hand-offs, virtqueue work), not of a disk. "
                        + "qemu-img bench has no random pattern, so all three visit offsets (i * step) mod size, with "
                        + "step = 4 KiB x 7919 for the random rows. Ratios are of time per request (lower is better, "
                        + "1 = as fast as the reference), median (min-max) over %d paired round(s).",
                dev.jvmm.devices.virtio.blk.VirtioBlock.DEFAULT_IO_THREADS,
                config.blkDepth(),
                config.blkMib(),
                config.rounds());
        line("");
        line("| image | pattern | jvmm kIOPS | jvmm depth 1 kIOPS | pread/pwrite kIOPS | qemu-img bench kIOPS | "
                + "jvmm / floor | jvmm depth 1 / floor | jvmm / qemu-img | note |");
        line("|---|---|---|---|---|---|---|---|---|---|");
        for (BlkBench.Row r : blk)
            line(
                    "| %s | %s %s | %s | %s | %s | %s | %s | %s | %s | %s |",
                    r.format(),
                    r.pattern(),
                    r.write() ? "write" : "read",
                    r.jvmmKiops().format("%.1f"),
                    r.jvmmQd1Kiops().format("%.1f"),
                    r.floorKiops().format("%.1f"),
                    r.qemuKiops().present() ? r.qemuKiops().format("%.1f") : "n/a",
                    r.toFloor().format("%.2f"),
                    r.qd1ToFloor().format("%.2f"),
                    r.toQemu().present() ? r.toQemu().format("%.2f") : "n/a",
                    r.note());
        line("");
    }

    private void netTable() {
        line("## User-mode networking: TCP through virtio-net (driver over the real device, no guest)");
        line("");
        if (net.isEmpty()) {
            line("Skipped (--no-net).");
            line("");
            return;
        }
        line("A Java driver (NetGuest) streams one TCP connection through the real VirtioNet device on virtio-mmio "
                + "and jvmm's user-mode stack to a socket on the host's loopback (guest -> host), or takes one from "
                + "it (host -> guest), as a Linux guest would: TSO frames of up to 64 KiB both ways, checksums "
                + "offloaded, mergeable 4 KiB receive buffers, the payload copied from or to an application "
                + "buffer. References, measured in the same run: a Java socket pair over loopback moving the same "
                + "bytes, and passt's pasta carrying the same transfer between a network namespace's TCP and the "
                + "host (n/a without root or the `passt` package). Ratios per iteration pair, median (min-max); "
                + "higher is better, the goal is >= 0.5 of the socket pair and >= 1 of pasta.");
        line("");
        line("| direction | jvmm MiB/s | socket pair MiB/s | jvmm / socket pair | pasta MiB/s | pasta / socket pair "
                + "| jvmm / pasta |");
        line("|---|---|---|---|---|---|---|");
        double mib = VirtioNetBenchmark.MSS / (double) (1 << 20);
        for (String[] r :
                new String[][] {{"guest -> host", "user", "pasta"}, {"host -> guest", "user-rx", "pasta-rx"}}) {
            Stats jvmm = net.get(r[1]), ref = net.get(VirtioNetBenchmark.REFERENCE.get(r[1]));
            if (jvmm == null || ref == null) continue;
            Stats pasta = net.get(r[2]);
            line(
                    "| %s | %s | %s | %s | %s | %s | %s |",
                    r[0],
                    VirtioNetBenchmark.scaled(jvmm, mib, "%.0f"),
                    VirtioNetBenchmark.scaled(ref, mib, "%.0f"),
                    net.get(r[1] + "-ratio").format("%.2f"),
                    pasta == null ? "n/a" : VirtioNetBenchmark.scaled(pasta, mib, "%.0f"),
                    pasta == null ? "n/a" : net.get(r[2] + "-ratio").format("%.2f"),
                    pasta == null
                            ? "n/a"
                            : net.get(r[1] + "-" + r[2] + "-ratio").format("%.2f"));
        }
        line("");
    }

    private void lifecycleTable() {
        line("## VM lifecycle and micro-VMs (in-process)");
        line("");
        if (lifecycle == null) {
            line("Skipped (--no-launch).");
            line("");
            return;
        }
        LifecycleBench.Lifecycle l = lifecycle.lifecycle();
        line(
                "A `VirtualMachine` with its defaults (64 MiB, in-kernel irqchip and PIT, one vCPU) built, given "
                        + "three instructions, started, run to the guest's first exit (an OUT to debug-exit) and "
                        + "closed, in this JVM once warm; the C floor (`lifecycle.c`) does the same ioctls for a VM "
                        + "of the same shape, %d lives per round in each, ratio of the medians per round. Goal: "
                        + "jvmm / C at most 1.2.",
                l.lives());
        line("");
        line("| lifecycle | C floor (ms) | jvmm (ms) | jvmm / C | goal |");
        line("|---|---|---|---|---|");
        line(
                "| created, run to its first exit, closed | %s | %s | %s | ≤ 1.2 |%s",
                l.cMs().format("%.2f"),
                l.jvmmMs().format("%.2f"),
                l.ratio().format("%.2f"),
                l.note().isEmpty() ? "" : " " + l.note());
        line("");
        LifecycleBench.MicroVmRow m = lifecycle.microVm();
        line("A Linux micro-VM (`MicroVm` on Debian's kernel with the agent's initramfs, no network): from nothing to "
                + "`exec(\"true\")` answered, as a test with a VM of its own pays it, in phases: the launch (kernel "
                + "and initramfs loaded, the machine assembled and started), the boot until the agent says it "
                + "listens, its first connection, the first exec; then `exec(\"true\")` on a VM that stays up, as "
                + "tests sharing one VM pay it, and close (power-off through the agent).");
        line("");
        if (m.rounds() == 0) {
            line("Not measured: %s.", m.note());
            line("");
            return;
        }
        line("| phase | ms, median (min–max) over %d rounds |", m.rounds());
        line("|---|---|");
        line("| launch | %s |", m.launchMs().format("%.0f"));
        line("| boot to the agent listening | %s |", m.bootMs().format("%.0f"));
        line("| agent's first connection | %s |", m.connectMs().format("%.0f"));
        line("| first exec(\"true\") | %s |", m.firstExecMs().format("%.0f"));
        line(
                "| **nothing to exec(\"true\") answered (per test)** | %s |",
                m.totalMs().format("%.0f"));
        line(
                "| exec(\"true\") on a running VM (reused across tests) | %s |",
                m.reusedExecMs().format("%.1f"));
        line("| close (power-off) | %s |", m.closeMs().format("%.0f"));
        line("");
    }

    private void snapshotTable() {
        line("## Snapshot and restore (jvmm save / restore, in-process)");
        line("");
        if (snapshots.isEmpty()) {
            line("Skipped (--no-snapshots).");
            line("");
            return;
        }
        line(
                "The snapshot guest dirties half its RAM (one word in every page from 16 MiB up), so half its pages "
                        + "are written and the rest stay holes. Save: pause, quiesce the devices, write the one "
                        + "file (state, then RAM without its zero pages) and fsync it. dd: `dd bs=1M "
                        + "conv=sparse,fsync` copying that file in the same round (the same bytes to the same disk, "
                        + "natively). Restore: `Machine.restore` (VM, vCPUs and devices rebuilt, RAM mapped "
                        + "copy-on-write from the file, state loaded); first exit: to the restored guest's first "
                        + "exit (its first instruction polls the UART); console answer: to its echo of a byte sent "
                        + "to its console. Times from the start of the restore; the file was just written, so it "
                        + "is in the page cache. %d round(s) per size; growth is against the smallest size.",
                config.rounds());
        line("");
        line("| guest RAM (MiB) | saved (MiB on disk) | save (ms) | dd (ms) | save / dd | save growth | restore "
                + "(ms) | to first exit (ms) | to console answer (ms) | answer growth | note |");
        line("|---|---|---|---|---|---|---|---|---|---|---|");
        Stats base = snapshots.getFirst().saveMs(),
                baseAnswer = snapshots.getFirst().answerMs();
        for (SnapshotBench.Row r : snapshots) {
            line(
                    "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
                    r.ramMib(),
                    r.fileMib().format("%.0f"),
                    r.saveMs().format("%.0f"),
                    r.ddMs().format("%.0f"),
                    r.saveRatio().format("%.2f"),
                    growth(r.saveMs(), base),
                    r.restoreMs().format("%.1f"),
                    r.firstExitMs().format("%.1f"),
                    r.answerMs().format("%.1f"),
                    growth(r.answerMs(), baseAnswer),
                    r.note());
        }
        line("");
    }

    private static String growth(Stats s, Stats base) {
        if (!s.present() || !base.present()) return "n/a";
        return String.format("%.2f×", s.median() / base.median());
    }

    private void loginTable() {
        line("## Time to login (Debian bookworm, %d vCPUs, %s)", LoginBench.CPUS, LoginBench.MEMORY);
        line("");
        if (login == null) {
            line("Not run: `--debian DIR` names the guest (the folder scripts/debian-image.sh prints).");
            line("");
            return;
        }
        line(
                "Process spawn to the serial console's `login:` prompt, the same kernel, initramfs "
                        + "and image (a fresh qcow2 overlay per boot, so each is a first boot): `jvmm run` with "
                        + "its default devices and user-mode network, against QEMU with KVM (`-M q35 -cpu "
                        + "host`, virtio disk and NIC). %d round(s), the two alternating; the ratio is taken "
                        + "per round.",
                config.loginRounds());
        line("");
        line("| jvmm (s) | QEMU (s) | ratio jvmm / QEMU | note |");
        line("|---|---|---|---|");
        line(
                "| %s | %s | %s | %s |",
                login.jvmmSeconds().format("%.1f"),
                login.qemuSeconds().format("%.1f"),
                login.ratio().format("%.2f"),
                login.note());
        line("");
    }

    private static String us(List<Double> ns) {
        if (ns.isEmpty()) return "n/a";
        return Stats.of(ns.stream().mapToDouble(d -> d / 1000).toArray()).format("%.2f");
    }

    private static String cpuModel() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo")))
                if (l.startsWith("model name"))
                    return l.substring(l.indexOf(':') + 1).trim();
        } catch (Exception e) {
            // not Linux: leave it out
        }
        return "unknown CPU";
    }

    private void line(String format, Object... args) {
        md.append(args.length == 0 ? format : String.format(format, args)).append('\n');
    }
}
