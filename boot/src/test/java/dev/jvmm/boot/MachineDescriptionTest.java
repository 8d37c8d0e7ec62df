package dev.jvmm.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.loader.KernelLoader;
import dev.jvmm.core.snapshot.DeviceState;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.devices.net.MacAddress;
import dev.jvmm.devices.net.NetConfig;
import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The machine's config in a snapshot: written and read back whole, its identity checks, and what is refused. */
class MachineDescriptionTest {
    @TempDir
    Path dir;

    private MachineDescription description() throws Exception {
        Path disk = Files.write(dir.resolve("disk.raw"), new byte[8192]);
        RateLimiter.Config limit =
                new RateLimiter.Config(Optional.of(new TokenBucket.Config(1 << 20, 4096, 100)), Optional.empty());
        NetConfig.User user = new NetConfig.User(
                List.of(new NetConfig.HostForward(
                        NetConfig.Protocol.TCP, InetAddress.getByName("127.0.0.1"), 2222, Optional.empty(), 22)),
                List.of(new NetConfig.GuestForward(
                        InetAddress.getByName("10.0.2.100"), 80, InetAddress.getByName("127.0.0.1"), 8080)),
                true,
                false,
                Optional.of(new MacAddress(0x52_54_00_12_34_56L)),
                Optional.of(new InetSocketAddress(InetAddress.getByName("1.1.1.1"), 53)));
        NetConfig.Tap tap =
                new NetConfig.Tap("tap7", Optional.of("br0"), Optional.of(new MacAddress(0x52_54_00_ab_cd_efL)), 2);
        MachineConfig c = MachineConfig.builder(dir.resolve("bzImage"))
                .initrd(dir.resolve("initrd.img"))
                .cmdline("console=ttyS0")
                .memory(256L << 20)
                .cpus(2)
                .cpuFeatures("-avx")
                .bootPath(KernelLoader.BootPath.PVH)
                .debugExit(0xf4)
                .disk(new MachineConfig.DiskConfig(
                        disk,
                        true,
                        Optional.of("serial-1"),
                        MachineConfig.DiskConfig.Transport.PCI,
                        MachineConfig.DiskConfig.Format.RAW,
                        MachineConfig.DiskConfig.BackingFiles.ANY,
                        limit))
                .nic(new MachineConfig.NicConfig(user, MachineConfig.DiskConfig.Transport.PCI, limit, null))
                .nic(new MachineConfig.NicConfig(tap, MachineConfig.DiskConfig.Transport.MMIO))
                .vsock(new MachineConfig.VsockConfig(3, dir.resolve("v.sock")))
                .build();
        return new MachineDescription(
                c,
                true,
                "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5",
                List.of(MachineDescription.DiskIdentity.of(disk)));
    }

    private static final OutputStream NO_STREAM = OutputStream.nullOutputStream();

    /** The config without its streams, which a restore supplies anew. */
    private static MachineConfig withoutStreams(MachineConfig c) {
        return new MachineConfig(
                c.kernel(),
                c.initrd(),
                c.cmdline(),
                c.memoryBytes(),
                c.cpus(),
                c.cpuFeatures(),
                c.bootPath(),
                NO_STREAM,
                Optional.empty(),
                c.debugExitPort(),
                c.disks(),
                c.nics(),
                c.vsock());
    }

    @Test
    void everythingComesBack() throws Exception {
        MachineDescription d = description();
        MachineDescription back = MachineDescription.from(d.toState());
        assertEquals(
                withoutStreams(d.config()).toString(),
                withoutStreams(back.config()).toString());
        assertEquals(d.config().disks(), back.config().disks());
        assertEquals(d.config().nics(), back.config().nics());
        assertEquals(d.config().vsock(), back.config().vsock());
        assertEquals(d.cmdline(), back.cmdline());
        assertEquals(d.disks(), back.disks());
        assertTrue(back.debugcon());
    }

    @Test
    void aDiskIsTheSameFileUnlessWrittenOrReplaced() throws Exception {
        Path disk = Files.write(dir.resolve("d.raw"), new byte[4096]);
        var saved = MachineDescription.DiskIdentity.of(disk);
        assertEquals(Optional.empty(), saved.mismatch(MachineDescription.DiskIdentity.of(disk), false));
        Files.setLastModifiedTime(disk, java.nio.file.attribute.FileTime.fromMillis(1_000_000));
        assertTrue(saved.mismatch(MachineDescription.DiskIdentity.of(disk), false)
                .orElseThrow()
                .contains("modified after the snapshot"));
        Path copy = Files.copy(disk, dir.resolve("copy.raw"));
        assertTrue(saved.mismatch(MachineDescription.DiskIdentity.of(copy), false)
                .orElseThrow()
                .contains("another file"));
        assertEquals(
                Optional.empty(),
                saved.mismatch(MachineDescription.DiskIdentity.of(copy), true),
                "a moved disk is compared by format and size");
        Files.write(copy, new byte[8192]);
        assertTrue(saved.mismatch(MachineDescription.DiskIdentity.of(copy), true)
                .orElseThrow()
                .contains("was 4096 bytes, is now 8192"));
        Files.write(copy, new byte[] {'Q', 'F', 'I', (byte) 0xfb, 0, 0, 0, 3});
        assertTrue(saved.mismatch(MachineDescription.DiskIdentity.of(copy), true)
                .orElseThrow()
                .contains("was a raw image, is now qcow2"));
    }

    @Test
    void anotherMachineANewerVersionOrACutDescriptionIsRefused() throws Exception {
        DeviceState s = description().toState();
        SnapshotException other = assertThrows(
                SnapshotException.class, () -> MachineDescription.from(new DeviceState("someone-else", 1, s.state())));
        assertEquals(SnapshotException.Kind.MACHINE_MISMATCH, other.kind());
        SnapshotException newer = assertThrows(
                SnapshotException.class,
                () -> MachineDescription.from(new DeviceState(s.id(), MachineDescription.VERSION + 1, s.state())));
        assertEquals(SnapshotException.Kind.UNSUPPORTED_VERSION, newer.kind());
        byte[] b = s.state();
        for (int n = 0; n < b.length; n++) {
            DeviceState cut = new DeviceState(s.id(), s.version(), Arrays.copyOf(b, n));
            SnapshotException e = assertThrows(SnapshotException.class, () -> MachineDescription.from(cut), "" + n);
            assertEquals(SnapshotException.Kind.CORRUPT, e.kind(), e.getMessage());
        }
    }
}
