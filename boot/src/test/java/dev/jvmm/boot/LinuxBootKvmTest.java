package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.loader.KernelLoader.BootPath;
import dev.jvmm.boot.loader.PayloadDecompressor;
import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.kvm.gen.kvm_regs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Debian's stock kernel: its boot log is the oracle for the boot protocol. Where KVM has hardware virtualisation
 * (real, or AMD-V emulated by QEMU inside scripts/with-kvm) the kernel boots whole, into a busybox initramfs, and
 * powers off through ACPI. On a kvm_pvm host guest kernel mode is emulated instruction by instruction (and some
 * instructions not at all), Linux stops in early boot, and the tests read the log up to the memory map. Each test
 * prints which of the two it checked ({@link KvmHost}). See HOST.md.
 */
@RequiresKvm
@Tag("slow")
class LinuxBootKvmTest {
    /**
     * The goal is 60 s on this host (measured: 42-49 s with the machine busy with other builds); the bound
     * leaves room for a loaded CI machine and only catches a boot that does not get there.
     */
    private static final Duration EARLY_LOG = Duration.ofSeconds(90);
    /**
     * A whole boot to userspace and ACPI power-off: about 40 s inside the emulated machine on 2 cores, where the
     * JVM itself runs 20-40x slower; the bound only catches a boot that never gets there.
     */
    private static final Duration WHOLE_BOOT = Duration.ofMinutes(5);

    private static final Pattern E820_LINE = Pattern.compile("BIOS-e820: \\[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\\] (\\w+)");

    private static Path bzImage;

    @BeforeAll
    static void fetchKernel() throws Exception {
        try {
            bzImage = TestKernels.debianKernel();
        } catch (Exception e) {
            if ("true".equals(System.getenv("CI"))) throw e;
            Assumptions.abort("Debian's kernel could not be fetched: " + e.getMessage());
        }
    }

    private record Boot(String log, List<E820.Entry> expectedMap, String cmdline, long millis) {}

    private static Boot bootToMemoryMap(Path kernel, long memory, BootPath path) throws Exception {
        return bootTo(kernel, memory, path, LinuxBootKvmTest::hasWholeMemoryMap);
    }

    /**
     * The map is complete once a whole line follows the last e820 line (a line still arriving may be the next
     * e820 line: where the guest runs fast, the console delivers the map in a few large writes).
     */
    private static boolean hasWholeMemoryMap(String t) {
        int last = t.lastIndexOf("BIOS-e820");
        if (last < 0) return false;
        int end = t.indexOf('\n', last);
        return end >= 0 && t.indexOf('\n', end + 1) >= 0;
    }

    /**
     * Linux has listed the ACPI tables (the MADT's line is the last; ACPICA's complaints about the FADT come
     * before it), or given up on ACPI. Its parse of the MADT comes much later, after paging_init: too late here.
     */
    private static boolean hasAcpiTableList(String t) {
        int apic = t.indexOf("ACPI: APIC 0x");
        return hasWholeMemoryMap(t)
                && ((apic >= 0 && t.indexOf('\n', apic) >= 0)
                        || t.contains("valid RSDP was not found")
                        || t.contains("Kernel panic"));
    }

    private static Boot bootTo(Path kernel, long memory, BootPath path, java.util.function.Predicate<String> until)
            throws Exception {
        String marker = UUID.randomUUID().toString().substring(0, 8);
        String cmdline = "console=ttyS0 earlyprintk=serial reboot=k panic=1 jvmm.test=" + marker;
        WatchedOutput console = new WatchedOutput();
        MachineConfig config = MachineConfig.builder(kernel)
                .memory(memory)
                .cmdline(cmdline)
                .console(console)
                .bootPath(path)
                .cpuFeatures("-cx16")
                .build();
        try (Machine m = Machine.create(config)) {
            long t0 = System.nanoTime();
            m.start();
            boolean done = console.await(until, EARLY_LOG);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            m.stop();
            assertTrue(
                    done,
                    "not there within " + EARLY_LOG + "; the log so far:\n" + console.text() + "\nstatus: "
                            + m.vm().exitStatus());
            return new Boot(console.text(), E820.of(m.vm().memory()), cmdline, ms);
        }
    }

    private static List<E820.Entry> parseMap(String log) {
        List<E820.Entry> map = new ArrayList<>();
        Matcher mt = E820_LINE.matcher(log);
        while (mt.find()) {
            long start = Long.parseUnsignedLong(mt.group(1), 16), end = Long.parseUnsignedLong(mt.group(2), 16);
            int type = switch (mt.group(3)) {
                case "usable" -> E820.RAM;
                case "reserved" -> E820.RESERVED;
                default -> -1;
            };
            map.add(new E820.Entry(start, end - start + 1, type));
        }
        return map;
    }

    private static void assertBootedAsConfigured(Boot b) {
        assertTrue(b.log().contains("Linux version 6."), b.log());
        assertTrue(
                b.log().contains("Command line: " + b.cmdline() + "\n")
                        || b.log().contains("Command line: " + b.cmdline() + "\r"),
                "the kernel saw exactly jvmm's command line:\n" + b.log());
        assertEquals(b.expectedMap(), parseMap(b.log()), "the kernel's e820 map is the one jvmm built");
        System.out.println("memory map after " + b.millis() + " ms");
    }

    @Test
    void bzImageDecompressedOnTheHost(@TempDir Path dir) throws Exception {
        if (KvmHost.emulatesGuestKernel()) {
            Boot b = bootToMemoryMap(bzImage, 512L << 20, BootPath.AUTO);
            assertBootedAsConfigured(b);
            KvmHost.checked("bzImageDecompressedOnTheHost", "the boot log up to the memory map");
            return;
        }
        // A whole boot: four vCPUs (jvmm run --cpus 4), an initramfs whose init says how many are online, waits for the
        // ACPI power button (its SCI
        // counted by the kernel once Debian's button module handles the event) and powers off, and ACPI ending the VM.
        String marker = "jvmm-userspace-" + UUID.randomUUID().toString().substring(0, 8);
        Path initrd = TestInitramfs.write(
                dir.resolve("initrd.cpio"),
                """
                /bin/busybox insmod /button.ko
                /bin/busybox mount -t proc proc /proc
                /bin/busybox mount -t sysfs sysfs /sys
                /bin/busybox echo %1$s cpus=$(/bin/busybox nproc) \
                online=$(/bin/busybox cat /sys/devices/system/cpu/online)
                i=0
                while [ $i -lt 900 ]; do
                  if /bin/busybox awk '{ exit !($1 > 0) }' /sys/firmware/acpi/interrupts/ff_pwr_btn; then
                    /bin/busybox echo %1$s power-button; break
                  fi
                  /bin/busybox sleep 1; i=$((i + 1))
                done
                /bin/busybox poweroff -f
                """.formatted(marker),
                Map.of("button.ko", TestKernels.debianModule("button")));
        String cmdline = "console=ttyS0 reboot=k panic=-1 jvmm.test=" + marker;
        WatchedOutput console = new WatchedOutput();
        MachineConfig config = MachineConfig.builder(bzImage)
                .memory(512L << 20)
                .cpus(4)
                .initrd(initrd)
                .cmdline(cmdline)
                .console(console)
                .noNetwork()
                .build();
        try (Machine m = Machine.create(config)) {
            long t0 = System.nanoTime();
            m.start();
            if (console.await(t -> t.contains(marker + " cpus="), WHOLE_BOOT)) m.pressPowerButton();
            ExitStatus status = m.awaitExit(WHOLE_BOOT).orElse(null);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            if (status == null) m.stop();
            String log = console.text();
            assertTrue(
                    status instanceof ExitStatus.PowerOff,
                    "the guest powers off through ACPI, not " + status + "; the log:\n" + log);
            assertBootedAsConfigured(new Boot(log, E820.of(m.vm().memory()), cmdline, ms));
            assertTrue(
                    log.contains(marker + " cpus=4 online=0-3"), "userspace ran with all four vCPUs online:\n" + log);
            assertTrue(log.contains("smp: Brought up 1 node, 4 CPUs"), log);
            assertFalse(log.contains("Kernel panic") || log.contains("BUG:"), log);
            // The platform as a guest sees it: KVM's identity, and the paravirtual clock that comes with it.
            assertTrue(log.contains("Hypervisor detected: KVM"), log);
            assertTrue(log.contains("clocksource: Switched to clocksource kvm-clock"), log);
            assertFalse(log.contains("Failed to access perfctr msr"), log);
            // The ACPI platform: the PM timer as a clocksource, the fixed power button and its SCI, PnP devices.
            assertTrue(log.contains("clocksource: acpi_pm: mask: 0xffffff"), log);
            assertTrue(log.contains("ACPI: button: Power Button [PWRF]"), log);
            assertTrue(log.contains(marker + " power-button"), "the guest saw the power button's SCI:\n" + log);
            assertTrue(log.contains("pnp: PnP ACPI: found 4 devices"), log);
            assertTrue(log.contains("ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A"), log);
            assertTrue(
                    log.contains("i8042: PNP: PS/2 Controller [PNP0303:KBD,PNP0f13:MOU] at 0x60,0x64 irq 1,12"), log);
            assertTrue(log.contains("rtc_cmos 00:03: registered as rtc0"), log);
            System.out.println(log);
            System.out.println("userspace and ACPI power-off after " + ms + " ms");
            KvmHost.checked(
                    "bzImageDecompressedOnTheHost", "a whole boot to userspace with 4 vCPUs online and ACPI power-off");
        }
    }

    @Test
    void extractedVmlinuxAtItsSixtyFourBitEntryAboveFourGib(@TempDir Path dir) throws Exception {
        Path vmlinux = dir.resolve("vmlinux");
        Files.write(vmlinux, extractVmlinux(Files.readAllBytes(bzImage)));
        Boot b = bootTo(vmlinux, 4L << 30, BootPath.LINUX64, LinuxBootKvmTest::hasAcpiTableList);
        assertBootedAsConfigured(b);
        assertTrue(
                b.expectedMap().stream().anyMatch(e -> e.address() == 1L << 32), "RAM above 4 GiB: " + b.expectedMap());
        // The kernel finds jvmm's ACPI tables and accepts them without complaint.
        assertFalse(b.log().contains("valid RSDP was not found"), b.log());
        assertTrue(b.log().contains("ACPI: RSDP 0x00000000000E0000 000024 (v02 JVMM  )"), b.log());
        for (String table : new String[] {"XSDT", "FACP", "DSDT", "FACS", "APIC"})
            assertTrue(b.log().contains("ACPI: " + table + " 0x00000000000E"), table + ":\n" + b.log());
        assertFalse(
                b.log().contains("ACPI BIOS Warning")
                        || b.log().contains("ACPI BIOS Error")
                        || b.log().contains("ACPI Error")
                        || b.log().contains("ACPI Warning"),
                b.log());
    }

    @Test
    void extractedVmlinuxAtItsPvhEntry(@TempDir Path dir) throws Exception {
        Path vmlinux = dir.resolve("vmlinux");
        Files.write(vmlinux, extractVmlinux(Files.readAllBytes(bzImage)));
        Boot b = bootToMemoryMap(vmlinux, 512L << 20, BootPath.AUTO); // Debian's vmlinux has the PVH note
        assertTrue(b.log().contains("Command line: " + b.cmdline()), b.log());
        // Under PVH the kernel itself reserves the legacy hole [0xa0000, 0x100000), merging it with jvmm's entries.
        List<E820.Entry> expected = new ArrayList<>(b.expectedMap());
        expected.add(new E820.Entry(0xa0000, 0x60000, E820.RESERVED));
        assertEquals(merge(expected), parseMap(b.log()));
    }

    private static List<E820.Entry> merge(List<E820.Entry> entries) {
        List<E820.Entry> sorted = new ArrayList<>(entries);
        sorted.sort(java.util.Comparator.comparingLong(E820.Entry::address));
        List<E820.Entry> out = new ArrayList<>();
        for (E820.Entry e : sorted) {
            E820.Entry last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.type() == e.type() && last.end() >= e.address()) {
                long end = Math.max(last.end(), e.end());
                out.set(out.size() - 1, new E820.Entry(last.address(), end - last.address(), last.type()));
            } else out.add(e);
        }
        return out;
    }

    @Test
    void decompressorPathRunsTheKernelsOwnDecompressor() throws Exception {
        if (!KvmHost.emulatesGuestKernel()) {
            // The decompressor runs at full speed: it must hand over to the kernel it unpacked.
            Boot b = bootToMemoryMap(bzImage, 512L << 20, BootPath.DECOMPRESSOR);
            assertBootedAsConfigured(b);
            KvmHost.checked(
                    "decompressorPathRunsTheKernelsOwnDecompressor",
                    "the kernel it unpacked booting to its memory map");
            return;
        }
        WatchedOutput console = new WatchedOutput();
        MachineConfig config = MachineConfig.builder(bzImage)
                .memory(512L << 20)
                .console(console)
                .bootPath(BootPath.DECOMPRESSOR)
                .cmdline("console=ttyS0 earlyprintk=serial")
                .build();
        try (Machine m = Machine.create(config)) {
            m.start();
            List<Long> rips = new ArrayList<>();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment regs = kvm_regs.allocate(arena);
                for (int i = 0; i < 3; i++) {
                    Thread.sleep(2000);
                    m.pause();
                    m.vm().vcpus().get(0).getRegs(regs);
                    rips.add(kvm_regs.rip(regs));
                    m.resume();
                }
            }
            m.stop();
            assertTrue(
                    m.vm().exitStatus().orElseThrow() instanceof dev.jvmm.core.ExitStatus.Stopped,
                    "still running: " + m.vm().exitStatus());
            // The decompressor runs from where it was loaded (1 MiB) up to where it relocates itself, below 1 GiB
            // and identity-mapped; the decompressed kernel would run at 0xffffffff8...
            for (long rip : rips) assertTrue(rip >= 0x100000 && rip < 0x4000_0000L, String.format("rip %x", rip));
            assertTrue(rips.stream().distinct().count() > 1, "it keeps executing: " + rips);
            KvmHost.checked(
                    "decompressorPathRunsTheKernelsOwnDecompressor",
                    "the decompressor executing (it takes minutes here)");
        }
    }

    /** The vmlinux inside a bzImage, as scripts/extract-vmlinux gets it. */
    static byte[] extractVmlinux(byte[] bz) {
        ByteBuffer b = ByteBuffer.wrap(bz).order(ByteOrder.LITTLE_ENDIAN);
        int setupSects = bz[0x1f1] & 0xff;
        long start = (setupSects + 1) * 512L + (b.getInt(0x248) & 0xffffffffL);
        int len = b.getInt(0x24c);
        return PayloadDecompressor.decompress(java.util.Arrays.copyOfRange(bz, (int) start, (int) start + len));
    }
}
