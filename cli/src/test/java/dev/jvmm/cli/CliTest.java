package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.testing.KvmHost;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line: every error a user can cause is one line and a non-zero exit, never a stack trace. */
class CliTest {
    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {}

    private static Result jvmm(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(
                java.io.InputStream.nullInputStream(), new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Result(code, out.toString(), err.toString());
    }

    private static void assertOneLineError(Result r, String expected) {
        assertEquals(1, r.code(), r.err());
        String[] lines = r.err().strip().split("\n");
        assertEquals(1, lines.length, "one line, got:\n" + r.err());
        assertTrue(lines[0].startsWith("jvmm: "), lines[0]);
        assertTrue(lines[0].contains(expected), lines[0]);
        assertFalse(r.err().contains("\tat "), "no stack trace");
    }

    /** A kernel file that exists but holds no kernel: what the options are checked against, before its contents. */
    private Path stubKernel() throws IOException {
        return Files.writeString(dir.resolve("k"), "x");
    }

    /** {@code jvmm run --kernel} a {@link #stubKernel} with these options. */
    private Result runWithStubKernel(String... options) throws IOException {
        List<String> args =
                new ArrayList<>(List.of("run", "--kernel", stubKernel().toString()));
        args.addAll(List.of(options));
        return jvmm(args.toArray(String[]::new));
    }

    /** The demo guest, which boots, prints and powers off, as a file. */
    private Path demoKernel() throws IOException {
        Path demo = dir.resolve("demo.elf");
        try (var in = CliTest.class.getResourceAsStream("/guests/demo.elf")) {
            Files.write(demo, in.readAllBytes());
        }
        return demo;
    }

    @Test
    void helpListsEveryOptionWithItsDefault() {
        Result r = jvmm("run", "--help");
        assertEquals(0, r.code());
        for (String opt : new String[] {
            "--kernel",
            "--initrd",
            "--cmdline",
            "--memory",
            "--cpus",
            "--cpu-features",
            "--boot-path",
            "--debugcon",
            "--debug-exit",
            "--disk",
            "--net",
            "--vsock",
            "--stats"
        }) assertTrue(r.out().contains(opt), opt + " in\n" + r.out());
        assertTrue(r.out().contains("default: 512M"), r.out());
        assertTrue(r.out().contains("default: 1)"), r.out());
    }

    @Test
    void missingKernelOptionIsOneLine() {
        assertOneLineError(jvmm("run"), "Missing required option: '--kernel=PATH'");
    }

    @Test
    void noKvmDeviceSaysHowToRunInTheEmulatedMachine() {
        var missing = dev.jvmm.core.KvmUnavailableException.of(
                "/dev/kvm", new dev.jvmm.kvm.SyscallException("open", dev.jvmm.kvm.Errno.ENODEV));
        String m = Main.userMessage(missing);
        assertTrue(m.contains("/dev/kvm does not exist") && m.contains("JVMM_EMULATE=1 ./jvmm"), m);
        var denied = dev.jvmm.core.KvmUnavailableException.of(
                "/dev/kvm", new dev.jvmm.kvm.SyscallException("open", dev.jvmm.kvm.Errno.EACCES));
        assertFalse(Main.userMessage(denied).contains("JVMM_EMULATE"), "a permission problem has its own remedy");
    }

    @Test
    void wrongFilesAreReportedBeforeAnythingAboutKvm() throws Exception {
        // Machine.create reads the kernel and opens the disks before it opens /dev/kvm: these errors are the
        // same with or without KVM (./test -Dtests.exclude=kvm runs this on machines without it).
        // --cpus 100000 is refused by what KVM allows: on a host with KVM too, that error must not come first.
        Path text = Files.writeString(dir.resolve("readme.txt"), "just text");
        Path guest = dev.jvmm.boot.TestKernels.guest("smp.elf", dir);
        assertOneLineError(
                jvmm(
                        "run",
                        "--kernel",
                        guest.toString(),
                        "--cpus",
                        "100000",
                        "--initrd",
                        dir.resolve("none").toString()),
                "initrd");
        assertOneLineError(
                jvmm(
                        "run",
                        "--kernel",
                        guest.toString(),
                        "--cpus",
                        "100000",
                        "--disk",
                        dir.resolve("none.img").toString()),
                "does not exist");
        assertOneLineError(
                jvmm("run", "--kernel", text.toString(), "--cpus", "100000", "--memory", "64M"),
                "is not a kernel jvmm can boot");
    }

    @Test
    @RequiresKvm
    void noRebootEndsTheRunWhenTheGuestReboots() throws Exception {
        Path guest = dev.jvmm.boot.TestKernels.guest("reboot.elf", dir);
        Path log = dir.resolve("debugcon.log");
        Result r = jvmm(
                "run", "--kernel", guest.toString(), "--memory", "32M", "--debugcon", "file:" + log, "--no-reboot");
        assertEquals(0, r.code(), r.err());
        assertEquals(1, countBoots(Files.readString(log)), Files.readString(log));
    }

    /**
     * QEMU's default: a guest's reboot boots it again. The guest here reboots forever; SIGTERM (which presses the
     * power button, ignored by this guest) makes its next reboot the end of the run, with exit status 0.
     */
    @Test
    @RequiresKvm
    void aGuestRebootBootsItAgainUntilSigterm() throws Exception {
        Path guest = dev.jvmm.boot.TestKernels.guest("reboot.elf", dir);
        Process p = startJvmm("run", "--kernel", guest.toString(), "--memory", "32M", "--debugcon", "stdio");
        try {
            var out = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream()));
            StringBuilder seen = new StringBuilder();
            int boots = 0;
            for (String line; boots < 3 && (line = out.readLine()) != null; ) {
                seen.append(line).append('\n');
                if (line.equals("reboot guest: booted")) boots++;
            }
            assertEquals(3, boots, "three boots in a row:\n" + seen + Files.readString(dir.resolve("stderr.txt")));
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(5, java.util.concurrent.TimeUnit.MINUTES), "still running after SIGTERM");
            String err = Files.readString(dir.resolve("stderr.txt"));
            assertEquals(0, p.exitValue(), err);
            assertTrue(err.contains("SIGTERM: pressed the guest's power button"), err);
            assertFalse(err.contains("\tat "), err);
        } finally {
            p.destroyForcibly();
        }
    }

    /**
     * The console's input as a user pipes it: the process's own standard input (read through poll(2), see
     * StdinInput) reaches the guest's UART, and the run ends at the guest's power-off while that input stays open.
     */
    @Test
    @RequiresKvm
    void pipedStandardInputReachesTheGuestAndTheRunEndsWhileItStaysOpen() throws Exception {
        Path guest = dev.jvmm.boot.TestKernels.guest("console.elf", dir);
        Process p = startJvmm(
                "run",
                "--kernel",
                guest.toString(),
                "--memory",
                "32M",
                "--debugcon",
                "file:" + dir.resolve("debugcon.log"));
        try {
            var out = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream()));
            p.getOutputStream().write("ping\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            p.getOutputStream().flush(); // and left open
            StringBuilder seen = new StringBuilder();
            boolean echoed = false;
            for (String line; !echoed && (line = out.readLine()) != null; ) {
                seen.append(line).append('\n');
                echoed = line.strip().equals("echo: ping");
            }
            assertTrue(echoed, "the guest's answer:\n" + seen + Files.readString(dir.resolve("stderr.txt")));
            p.destroy(); // SIGTERM presses the power button; this guest powers off
            assertTrue(p.waitFor(5, java.util.concurrent.TimeUnit.MINUTES), "still running after SIGTERM");
            assertEquals(0, p.exitValue(), Files.readString(dir.resolve("stderr.txt")));
        } finally {
            p.destroyForcibly();
        }
    }

    /** jvmm as its own process (this JVM's class path), its stderr in stderr.txt. */
    private Process startJvmm(String... args) throws java.io.IOException {
        return new ProcessBuilder(KvmHost.jvmmProcess(List.of(args)))
                .redirectError(dir.resolve("stderr.txt").toFile())
                .start();
    }

    private static int countBoots(String log) {
        return (int) log.lines().filter(l -> l.equals("reboot guest: booted")).count();
    }

    @Test
    void badLifecycleOptionsAreOneLine() {
        String kernel = dir.resolve("nope").toString();
        assertOneLineError(
                jvmm("run", "--kernel", kernel, "--shutdown-timeout", "-3"),
                "--shutdown-timeout must be 0 or more seconds, not -3");
        assertOneLineError(
                jvmm("run", "--kernel", kernel, "--log-level", "loud"),
                "--log-level must be error, warn, info, debug or trace, not 'loud'");
    }

    @Test
    void missingKernelFileIsOneLine() {
        assertOneLineError(jvmm("run", "--kernel", dir.resolve("nope").toString()), "does not exist");
    }

    @Test
    void notAKernelIsOneLine() throws Exception {
        Path f = Files.writeString(dir.resolve("readme.txt"), "just text");
        assertOneLineError(jvmm("run", "--kernel", f.toString()), "is not a kernel jvmm can boot");
    }

    @Test
    void badMemorySizeIsOneLine() throws Exception {
        assertOneLineError(runWithStubKernel("--memory", "lots"), "'lots' is not a size");
    }

    @Test
    void tooFewVcpusOrTooLittleMemoryIsOneLineNamingTheOption() throws Exception {
        assertOneLineError(runWithStubKernel("--cpus", "0"), "--cpus must be at least 1, not 0");
        assertOneLineError(runWithStubKernel("--memory", "8M"), "--memory must be at least 16M");
        assertOneLineError(runWithStubKernel("--memory", "16385K"), "--memory must be a multiple of 4K, not 16385K");
    }

    @Test
    void memoryBeyondTheHostIsOneLine() throws Exception {
        assertOneLineError(runWithStubKernel("--memory", "64T"), "more than this host has");
    }

    @Test
    @RequiresKvm
    void tooManyVcpusIsOneLine() throws Exception {
        Path kernel = dev.jvmm.boot.TestKernels.guest("smp.elf", dir); // a real kernel: files are checked first
        assertOneLineError(jvmm("run", "--kernel", kernel.toString(), "--cpus", "100000"), "--cpus 100000");
    }

    @Test
    void badPortIsOneLine() throws Exception {
        assertOneLineError(runWithStubKernel("--debug-exit", "0x10000"), "is not an I/O port");
    }

    @Test
    void unknownCpuFeatureIsOneLine() throws Exception {
        assertOneLineError(runWithStubKernel("--cpu-features", "-warpdrive"), "unknown CPU feature 'warpdrive'");
    }

    @Test
    @RequiresKvm
    void theDemoGuestRunsAndPowersOff() {
        Result r = jvmm();
        assertEquals(0, r.code(), r.err());
    }

    @Test
    void badDiskOptionsAreOneLine() throws Exception {
        assertOneLineError(runWithStubKernel("--disk", "d.raw,transport=usb"), "transport must be mmio or pci");
        assertOneLineError(runWithStubKernel("--disk", "d.raw,cache=none"), "unknown option 'cache=none'");
        assertOneLineError(runWithStubKernel("--disk", "d.raw,serial=" + "x".repeat(21)), "at most 20");
        assertOneLineError(runWithStubKernel("--disk", ",readonly"), "path is missing");
    }

    @Test
    void missingDiskImageIsOneLine() throws Exception {
        Path kernel = dev.jvmm.boot.TestKernels.guest("smp.elf", dir); // a real kernel: files are checked first
        assertOneLineError(
                jvmm(
                        "run",
                        "--kernel",
                        kernel.toString(),
                        "--disk",
                        dir.resolve("nope.raw").toString()),
                "nope.raw");
    }

    @Test
    void diskOptionsParse() {
        var d = Disks.parse("/img/a.raw,readonly,serial=disk-1,transport=pci");
        assertEquals(Path.of("/img/a.raw"), d.path());
        assertTrue(d.readOnly());
        assertEquals("disk-1", d.serial().orElseThrow());
        assertEquals(dev.jvmm.boot.MachineConfig.DiskConfig.Transport.PCI, d.transport());
        var plain = Disks.parse("b.raw");
        assertFalse(plain.readOnly());
        assertTrue(plain.serial().isEmpty());
        assertEquals(dev.jvmm.boot.MachineConfig.DiskConfig.Transport.MMIO, plain.transport());
        assertTrue(plain.rateLimit().unlimited());
        var limited = Disks.parse("c.qcow2,bps=10M,iops=500");
        assertEquals(
                new RateLimiter.Config(
                        Optional.of(TokenBucket.Config.perSecond(10L << 20, 0)),
                        Optional.of(TokenBucket.Config.perSecond(500, 0))),
                limited.rateLimit());
    }

    @Test
    void nicRateLimitsParseAndBadRatesAreOneLine() throws Exception {
        var nic = Nets.parse("user,rx-bps=1M,tx-pps=100,hostloopback=on").nic().orElseThrow();
        assertEquals(
                new RateLimiter.Config(Optional.of(TokenBucket.Config.perSecond(1 << 20, 0)), Optional.empty()),
                nic.rxLimit());
        assertEquals(
                new RateLimiter.Config(Optional.empty(), Optional.of(TokenBucket.Config.perSecond(100, 0))),
                nic.txLimit());
        assertTrue(((dev.jvmm.devices.net.NetConfig.User) nic.backend()).hostLoopback(), "the rest is the backend's");
        assertOneLineError(runWithStubKernel("--net", "user,tx-pps=0"), "tx-pps must be a positive");
        assertOneLineError(runWithStubKernel("--disk", "a.raw,iops=many"), "iops must be a positive");
        assertOneLineError(runWithStubKernel("--disk", "a.raw,bps=fast"), "is not a size");
        assertOneLineError(runWithStubKernel("--disk", "a.raw,bps"), "bps=SIZE needs a value");
    }

    @Test
    @RequiresKvm
    void statsListsTheExitReasonsTheGuestCaused() throws Exception {
        Path demo = demoKernel();
        Result r = jvmm("run", "--kernel", demo.toString(), "--memory", "64M", "--stats");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("exit reason"), r.err());
        assertTrue(r.err().lines().anyMatch(l -> l.startsWith("IO ")), "port I/O exits counted:\n" + r.err());
    }

    @Test
    void vsockOptionAndItsRefusals() throws Exception {
        assertEquals(
                new dev.jvmm.boot.MachineConfig.VsockConfig(3, Path.of("/tmp/v.sock")),
                Vsocks.parse("cid=3,uds=/tmp/v.sock"));
        assertEquals(
                dev.jvmm.boot.MachineConfig.DiskConfig.Transport.MMIO,
                Vsocks.parse("uds=/tmp/v.sock,cid=4294967294,transport=mmio").transport());
        for (String cid : new String[] {"0", "1", "2", "4294967295", "4294967296"})
            assertOneLineError(
                    runWithStubKernel("--vsock", "cid=" + cid + ",uds=" + dir.resolve("v.sock")),
                    "guest CID " + cid + " must be from 3 to 4294967294");
        assertOneLineError(runWithStubKernel("--vsock", "cid=x,uds=/tmp/v"), "cid must be a number");
        assertOneLineError(runWithStubKernel("--vsock", "uds=/tmp/v"), "cid= is missing");
        assertOneLineError(runWithStubKernel("--vsock", "cid=3"), "uds= is missing");
        assertOneLineError(runWithStubKernel("--vsock", "cid=3,uds=/tmp/v,port=5"), "unknown option 'port'");
        Path taken = Files.writeString(dir.resolve("taken.sock"), "");
        assertOneLineError(runWithStubKernel("--vsock", "cid=3,uds=" + taken), "exists: remove a stale socket");
    }

    @Test
    void badNetOptionsAreOneLine() throws Exception {
        assertOneLineError(runWithStubKernel("--net", "slirp"), "unknown backend");
        assertOneLineError(runWithStubKernel("--net", "user,transport=usb"), "transport must be pci or mmio");
        assertOneLineError(runWithStubKernel("--net", "user,hostfwd=tcp::70000-:22"), "70000");
        assertOneLineError(
                runWithStubKernel("--net", "user,guestfwd=tcp:10.0.2.100:80-cmd:nc h 80"),
                "cmd: (a command per connection) is not supported");
        assertOneLineError(runWithStubKernel("--net", "tap"), "needs ifname=NAME");
        assertOneLineError(runWithStubKernel("--net", "none", "--net", "user"), "--net none cannot be combined");
    }

    @Test
    void netOptionsParseAndSelectTheNetwork() throws Exception {
        var user = Nets.parse("user,hostfwd=tcp:127.0.0.1:2222-:22,restrict=on,transport=mmio")
                .nic()
                .orElseThrow();
        assertEquals(dev.jvmm.boot.MachineConfig.DiskConfig.Transport.MMIO, user.transport());
        var u = (dev.jvmm.devices.net.NetConfig.User) user.backend();
        assertTrue(u.restrict());
        assertEquals(2222, u.forwards().get(0).hostPort());
        var open = (dev.jvmm.devices.net.NetConfig.User)
                Nets.parse("user,hostloopback=on,guestfwd=tcp:10.0.2.100:80-127.0.0.1:8080")
                        .nic()
                        .orElseThrow()
                        .backend();
        assertTrue(open.hostLoopback());
        assertEquals(8080, open.guestForwards().get(0).hostPort());
        assertFalse(
                ((dev.jvmm.devices.net.NetConfig.User)
                                Nets.parse("user").nic().orElseThrow().backend())
                        .hostLoopback(),
                "closed by default");
        var tap = Nets.parse("tap,ifname=tap0,bridge=br0,mac=52:54:00:01:02:03")
                .nic()
                .orElseThrow();
        assertEquals(dev.jvmm.boot.MachineConfig.DiskConfig.Transport.PCI, tap.transport(), "pci by default");
        assertEquals("tap0", ((dev.jvmm.devices.net.NetConfig.Tap) tap.backend()).ifname());
        assertTrue(Nets.parse("none").nic().isEmpty());

        Path k = stubKernel();
        RunCommand run = new RunCommand();
        new picocli.CommandLine(run).parseArgs("--kernel", k.toString());
        assertTrue(run.configure().nics().isEmpty(), "no --net: the default network");
        run = new RunCommand();
        new picocli.CommandLine(run).parseArgs("--kernel", k.toString(), "--net", "none");
        assertEquals(java.util.List.of(), run.configure().nics().orElseThrow());
        run = new RunCommand();
        new picocli.CommandLine(run).parseArgs("--kernel", k.toString(), "--net", "user", "--net", "tap,ifname=t1");
        assertEquals(2, run.configure().nics().orElseThrow().size());
    }

    @Test
    @RequiresKvm
    void aProbedQcow2ImageWithABackingFileNeedsItsFormatNamed() throws Exception {
        Path base = dir.resolve("base.qcow2"), top = dir.resolve("top.qcow2");
        assertEquals(
                0, jvmm("img", "create", "-f", "qcow2", base.toString(), "1M").code());
        assertEquals(
                0,
                jvmm("img", "create", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString())
                        .code());
        Path demo = demoKernel();
        assertOneLineError(
                jvmm("run", "--kernel", demo.toString(), "--memory", "64M", "--disk", top.toString()),
                "if it is a raw disk, add format=raw; if it is a qcow2 image, add format=qcow2");
        assertEquals(
                0,
                jvmm("run", "--kernel", demo.toString(), "--memory", "64M", "--disk", top + ",format=qcow2")
                        .code());
        assertEquals(
                0,
                jvmm("run", "--kernel", demo.toString(), "--memory", "64M", "--disk", base.toString())
                        .code());
        assertOneLineError(
                jvmm(
                        "run",
                        "--kernel",
                        demo.toString(),
                        "--disk",
                        dir.resolve("gone.img").toString()),
                "does not exist");
        assertOneLineError(
                jvmm("run", "--kernel", demo.toString(), "--disk", base + ",format=vmdk"),
                "format must be raw or qcow2");
    }

    @Test
    void aProbedQcow2ImageWithABackingFileIsRefusedBeforeAnythingAboutKvm() throws Exception {
        // The rule aProbedQcow2ImageWithABackingFileNeedsItsFormatNamed checks with a running guest, here without KVM.
        Path base = dir.resolve("base.qcow2"), top = dir.resolve("top.qcow2");
        assertEquals(
                0,
                jvmm("img", "create", "-q", "-f", "qcow2", base.toString(), "1M")
                        .code());
        assertEquals(
                0,
                jvmm("img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString())
                        .code());
        Path guest = dev.jvmm.boot.TestKernels.guest("smp.elf", dir);
        assertOneLineError(
                jvmm("run", "--kernel", guest.toString(), "--cpus", "100000", "--disk", top.toString()),
                "--disk " + top + " looks like a qcow2 image with a backing file: if it is a raw disk, add format=raw;"
                        + " if it is a qcow2 image, add format=qcow2"
                        + " (its backing files must then lie in its directory or below, or add backing=any)");
    }

    @Test
    void aBackingFileOutsideTheImageDirectoryNeedsBackingAny() throws Exception {
        Path secret = Files.write(dir.resolve("secret.raw"), new byte[1 << 20]);
        Path vm = Files.createDirectory(dir.resolve("vm")), top = vm.resolve("top.qcow2");
        assertEquals(
                0,
                jvmm("img", "create", "-q", "-f", "qcow2", "-b", "../secret.raw", "-F", "raw", top.toString())
                        .code());
        Path guest = dev.jvmm.boot.TestKernels.guest("smp.elf", dir);
        // --cpus 100000 fails once the disks are open: the disk's error, if any, comes first (no KVM needed).
        assertOneLineError(
                jvmm("run", "--kernel", guest.toString(), "--cpus", "100000", "--disk", top + ",format=qcow2"),
                "--disk " + top + ": top.qcow2 names backing file ../secret.raw, outside " + vm
                        + "; add backing=any to follow it");
        Result any = jvmm(
                "run", "--kernel", guest.toString(), "--cpus", "100000", "--disk", top + ",format=qcow2,backing=any");
        assertEquals(1, any.code());
        assertFalse(any.err().contains("--disk"), "backing=any follows it: " + any.err());
        assertEquals(
                dev.jvmm.boot.MachineConfig.DiskConfig.BackingFiles.ANY,
                Disks.parse("a.qcow2,backing=any").backingFiles());
        assertEquals(
                dev.jvmm.boot.MachineConfig.DiskConfig.BackingFiles.IMAGE_DIRECTORY,
                Disks.parse("a.qcow2").backingFiles());
        org.junit.jupiter.api.Assertions.assertThrows(
                picocli.CommandLine.TypeConversionException.class, () -> Disks.parse("a.qcow2,backing=everywhere"));
        assertTrue(secret.toFile().exists());
    }

    @Test
    void sizesParseLikeQemu() {
        assertEquals(512L << 20, Sizes.parse("512M", 1 << 20));
        assertEquals(2L << 30, Sizes.parse("2G", 1 << 20));
        assertEquals(2L << 30, Sizes.parse("2GiB", 1 << 20));
        assertEquals(64L << 20, Sizes.parse("64", 1 << 20));
        assertEquals(1L << 20, Sizes.parse("1024k", 1 << 20));
    }
}
