package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.devices.net.FlowStats;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.virtio.blk.BlockStats;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import dev.jvmm.devices.virtio.net.VirtioNet;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Multiboot test kernels on the assembled PC. */
@RequiresKvm
class MachineKvmTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} vCPUs")
    @ValueSource(ints = {1, 2, 4})
    void smpKernelFindsEveryVcpuInTheMpTableAndStartsThem(int cpus) throws Exception {
        TestGuest guest = new TestGuest("smp.elf", dir);
        try (Machine m =
                Machine.create(guest.config.cpus(cpus).cmdline("smp test").build())) {
            ExitStatus s = guest.run(m);
            String out = guest.output();
            assertEquals(new ExitStatus.GuestExit(0), s, out);
            assertTrue(out.contains("mp table: " + cpus + " cpus"), out);
            assertTrue(out.contains("cpus=" + cpus), out);
            assertEquals(1, s.exitCode());
            assertEquals(List.of(), m.nics(), "no default NIC for a multiboot test kernel");
        }
    }

    /**
     * A guest that finds the RSDP as Linux does, walks XSDT -> MADT and FADT -> DSDT (checking checksums), counts
     * the processors, and powers off with the DSDT's \_S5 value in the FADT's PM1a control block.
     */
    @ParameterizedTest(name = "{0} vCPUs")
    @ValueSource(ints = {1, 2, 4})
    void acpiGuestCountsEveryVcpuInTheMadtAndPowersOff(int cpus) throws Exception {
        TestGuest guest = new TestGuest("acpi.elf", dir);
        try (Machine m =
                Machine.create(guest.config.cpus(cpus).cmdline("acpi poweroff").build())) {
            ExitStatus s = guest.run(m);
            String out = guest.output();
            assertEquals(new ExitStatus.PowerOff(), s, out);
            assertTrue(out.contains("rsdp at e0000 revision 2"), out);
            assertTrue(out.contains("madt: " + cpus + " cpus, 1 ioapic"), out);
            assertTrue(out.contains("S5 SLP_TYP 5, PM1a_CNT at 604"), out);
            assertTrue(out.contains("powering off"), out);
            assertFalse(out.contains("FAIL"), out);
        }
    }

    @org.junit.jupiter.api.Test
    void acpiGuestResetsThroughTheFadtResetRegister() throws Exception {
        TestGuest guest = new TestGuest("acpi.elf", dir);
        try (Machine m = Machine.create(guest.config.cmdline("acpi reset").build())) {
            ExitStatus s = guest.run(m);
            String out = guest.output();
            assertEquals(new ExitStatus.Reset(), s, out);
            assertTrue(out.contains("reset through port 606 value f"), out);
            assertFalse(out.contains("FAIL"), out);
        }
    }

    /**
     * The devices module's virtio-net guest suite: a NIC on virtio-mmio and one on virtio-pci, each on its own
     * user-mode network, as --net user,transport=... attaches them. The guest's drivers send ARP and DHCP and
     * check the gateway's answers.
     */
    @org.junit.jupiter.api.Test
    void virtioNetOnMmioAndPciTalksToTheUserNetwork() throws Exception {
        NetConfig.User second = new NetConfig.User(
                List.of(),
                List.of(),
                false,
                false,
                Optional.of(MacAddress.parse("52:54:00:ab:cd:ef")),
                Optional.empty());
        TestGuest guest = new TestGuest("virtio_net_suite.elf", dir);
        MachineConfig config = guest.config
                .cmdline("net suite mac0=525400123456 mac1=525400abcdef")
                .nic(new MachineConfig.NicConfig(NetConfig.User.defaults(), MachineConfig.DiskConfig.Transport.MMIO))
                .nic(new MachineConfig.NicConfig(second, MachineConfig.DiskConfig.Transport.PCI))
                .build();
        try (Machine m = Machine.create(config)) {
            assertEquals(
                    "net suite mac0=525400123456 mac1=525400abcdef virtio_mmio.device=4K@0xd0000000:5", m.cmdline());
            guest.assertSuitePassed(guest.run(m));
            for (VirtioNet nic : m.nics()) {
                assertEquals(1, nic.txMalformed(), nic + ": the runt frame was dropped and counted");
                assertEquals(3, nic.txFrames(), nic + ": two ARP requests and a DHCPDISCOVER passed");
                assertEquals(3, nic.rxFrames(), nic + ": two ARP replies and a DHCPOFFER arrived");
                assertEquals(
                        new FlowStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                        nic.backend().flowStats().orElseThrow(),
                        nic + ": the started user network counts, and DHCP is no flow");
            }
        }
    }

    /**
     * The devices module's virtio-vsock guest suite on virtio-pci, with host programs on Firecracker's Unix sockets:
     * one listening on uds_path_1234 for the guest's connection (greeting, answer, close), and one that connects to
     * uds_path with CONNECT 52 (retrying until the guest listens), sends 40 bytes into a 16-byte credit, reads "pong"
     * and closes. The guest checks the protocol and the credit; the host programs check the bytes.
     */
    @org.junit.jupiter.api.Test
    void virtioVsockGuestAndHostProgramsTalkBothWays() throws Exception {
        Path uds = dir.resolve("v.sock");
        List<String> problems = new java.util.concurrent.CopyOnWriteArrayList<>();
        java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
        try (var listener = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            listener.bind(java.net.UnixDomainSocketAddress.of(dir.resolve("v.sock_1234")));
            Thread server = Thread.ofPlatform().start(() -> {
                try (var c = listener.accept()) {
                    String hello = VsockHostProgram.read(c, 20);
                    if (!hello.equals("hello from the guest")) problems.add("port 1234 got '" + hello + "'");
                    VsockHostProgram.write(c, "hello from the host");
                    if (VsockHostProgram.read(c, 1).length() != 0) problems.add("port 1234: bytes after the greeting");
                } catch (Exception e) {
                    problems.add("port 1234: " + e);
                }
            });
            Thread client = Thread.ofPlatform().start(() -> {
                try {
                    while (!done.get()) {
                        try (var c = java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
                            c.connect(java.net.UnixDomainSocketAddress.of(uds));
                            VsockHostProgram.write(c, "CONNECT 52\n");
                            String ok = VsockHostProgram.readLine(c);
                            if (ok == null) { // the guest does not listen yet: Firecracker's answer is a close
                                Thread.sleep(50);
                                continue;
                            }
                            if (!ok.matches("OK \\d+")) problems.add("CONNECT 52 answered '" + ok + "'");
                            VsockHostProgram.write(c, "0123456789abcdef0123456789ABCDEF01234567");
                            String pong = VsockHostProgram.read(c, 4);
                            if (!pong.equals("pong")) problems.add("port 52 answered '" + pong + "'");
                            return;
                        } catch (java.io.IOException e) {
                            if (!Files.exists(uds)) {
                                Thread.sleep(50); // the machine is not built yet
                                continue;
                            }
                            Thread.sleep(50);
                        }
                    }
                } catch (InterruptedException e) {
                    problems.add("host program interrupted");
                }
            });
            TestGuest guest = new TestGuest("virtio_vsock_suite.elf", dir);
            MachineConfig config = guest.config
                    .cmdline("vsock suite cid=3")
                    .vsock(new MachineConfig.VsockConfig(3, uds))
                    .build();
            try (Machine m = Machine.create(config)) {
                guest.assertSuitePassed(guest.run(m));
                var vsock = m.vsock().orElseThrow();
                assertTrue(vsock.resetsSent() >= 4, "resets: " + vsock.resetsSent());
                assertEquals(24, vsock.bytesFromGuest(), "the greeting and pong reached the host programs");
                assertEquals(59, vsock.bytesToGuest(), "the answer and the 40 bytes reached the guest");
            } finally {
                done.set(true);
                client.join(10_000);
                server.join(10_000);
            }
            assertEquals(List.of(), problems);
            assertFalse(Files.exists(uds), "the machine removed its socket");
        }
    }

    static Path image(Path p, int size, int fill) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
            if (fill != 0) {
                byte[] b = new byte[size];
                Arrays.fill(b, (byte) fill);
                f.write(b);
            }
        }
        return p;
    }

    /** The devices module's guest driver suite, with its disks attached the way --disk attaches them. */
    @org.junit.jupiter.api.Test
    void virtioDisksOnMmioAndPci() throws Exception {
        Path vda = image(dir.resolve("vda.raw"), 4 << 20, 0),
                vdb = image(dir.resolve("vdb.raw"), 1 << 20, 0x5a),
                vdc = image(dir.resolve("vdc.raw"), 4 << 20, 0);
        byte[] vdbBefore = Files.readAllBytes(vdb);
        TestGuest guest = new TestGuest("virtio_suite.elf", dir);
        MachineConfig config = guest.config
                .cmdline("virtio suite")
                .disk(new MachineConfig.DiskConfig(
                        vda, false, Optional.of("jvmm-vda"), MachineConfig.DiskConfig.Transport.MMIO))
                .disk(new MachineConfig.DiskConfig(
                        vdb, true, Optional.of("jvmm-vdb"), MachineConfig.DiskConfig.Transport.MMIO))
                .disk(new MachineConfig.DiskConfig(
                        vdc, false, Optional.of("jvmm-vdc"), MachineConfig.DiskConfig.Transport.PCI))
                .build();
        try (Machine m = Machine.create(config)) {
            assertEquals(
                    "virtio suite virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6", m.cmdline());
            guest.assertSuitePassed(guest.run(m));
            // Each disk's requests were timed: as many latencies as requests of the kind, in order of size.
            for (VirtioBlock disk : m.disks()) {
                BlockStats.Snapshot counts = disk.stats().snapshot();
                BlockStats.Latency reads = disk.stats().latency(BlockStats.Op.READ);
                assertTrue(counts.reads() > 0, "the suite reads every disk: " + counts);
                assertEquals(counts.reads(), reads.count(), reads.toString());
                assertTrue(
                        0 < reads.p50Nanos()
                                && reads.minNanos() <= reads.p50Nanos()
                                && reads.p50Nanos() <= reads.p90Nanos()
                                && reads.p90Nanos() <= reads.p99Nanos()
                                && reads.p99Nanos() <= reads.maxNanos()
                                && reads.sumNanos() > 0,
                        reads.toString());
                assertEquals(
                        counts.writes(),
                        disk.stats().latency(BlockStats.Op.WRITE).count());
                assertEquals(
                        counts.flushes(),
                        disk.stats().latency(BlockStats.Op.FLUSH).count());
            }
            assertTrue(m.disks().get(0).stats().latency(BlockStats.Op.WRITE).count() > 0, "vda was written");
        }
        ByteBuffer a = ByteBuffer.wrap(Files.readAllBytes(vda)).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer c = ByteBuffer.wrap(Files.readAllBytes(vdc)).order(ByteOrder.LITTLE_ENDIAN);
        for (int off = 64 * 512; off < 128 * 512; off += 4) {
            assertEquals((int) (off * 2654435761L) ^ 0x11111111, a.getInt(off), "vda at " + off);
            assertEquals((int) (off * 2654435761L) ^ 0x33333333, c.getInt(off), "vdc at " + off);
        }
        assertArrayEquals(vdbBefore, Files.readAllBytes(vdb), "the read-only disk is unchanged");
    }

    private static long openFds() throws java.io.IOException {
        try (java.util.stream.Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    @Test
    void anErrorWhileTheMachineIsAssembledClosesWhatWasOpened() throws Exception {
        TestGuest guest = new TestGuest("smp.elf", dir);
        MachineConfig config = guest.config.build();
        Machine.KernelPlacement outOfMemory = (memory, image, cmdline) -> {
            throw new OutOfMemoryError("test: the kernel's payload does not fit the heap");
        };
        assertThrows(OutOfMemoryError.class, () -> Machine.create(config, outOfMemory)); // classes load, JIT maps
        long fds = openFds();
        int threads = Thread.activeCount();
        for (int i = 0; i < 3; i++) assertThrows(OutOfMemoryError.class, () -> Machine.create(config, outOfMemory));
        assertEquals(fds, openFds(), "open file descriptors after three failed builds");
        assertTrue(Thread.activeCount() <= threads, "threads grew from " + threads + " to " + Thread.activeCount());
    }
}
