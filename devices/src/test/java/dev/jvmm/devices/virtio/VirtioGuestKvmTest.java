package dev.jvmm.devices.virtio;

import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VirtualMachine;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.Trigger;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.testing.Guests;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.core.x86.EntryState;
import dev.jvmm.devices.block.RawFileBackend;
import dev.jvmm.devices.block.SparseFiles;
import dev.jvmm.devices.pci.PciHostBridge;
import dev.jvmm.devices.virtio.blk.VirtioBlock;
import dev.jvmm.devices.virtio.mmio.VirtioMmioTransport;
import dev.jvmm.devices.virtio.pci.VirtioPciTransport;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The guest driver suite (src/test/guest/virtio_suite.c) on the real /dev/kvm: a multiboot guest with its
 * own virtio-mmio and virtio-pci drivers exercises virtio-blk disks wired the way the machine builder wires
 * them (buses, ioeventfds, IOAPIC lines, MSI-X routes), then the host checks the disk files' bytes.
 */
@RequiresKvm
class VirtioGuestKvmTest {
    static final long VDA_BASE = 0xd000_0000L, VDB_BASE = 0xd000_1000L;
    static final int VDA_GSI = 16, VDB_GSI = 17, VDC_GSI = 18;
    static final long ECAM_BASE = 0xb000_0000L, PCI_MMIO_BASE = 0xe000_0000L, PCI_MMIO_SIZE = 0x1000_0000L;
    static final int MULTIBOOT_MAGIC = 0x2BADB002;
    static final long MULTIBOOT_INFO = 0x9000, MULTIBOOT_CMDLINE = 0x9100;

    @TempDir
    Path dir;

    /** Debug console (port 0xe9): collects what the guest prints. */
    static final class Debugcon implements BusDevice {
        final StringBuilder text = new StringBuilder();

        @Override
        public synchronized long read(long offset, int size) {
            return 0xe9;
        }

        @Override
        public synchronized void write(long offset, int size, long value) {
            text.append((char) (value & 0xff));
        }

        synchronized String text() {
            return text.toString();
        }
    }

    static Path disk(Path p, long size, int fill) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
            if (fill != 0) {
                byte[] b = new byte[(int) size];
                Arrays.fill(b, (byte) fill);
                f.write(b);
            }
        }
        return p;
    }

    /** Loads an ELF32 executable's PT_LOAD segments at their physical addresses; returns the entry point. */
    static long loadElf(GuestMemory memory, byte[] elf) {
        ByteBuffer b = ByteBuffer.wrap(elf).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0x464c457f, b.getInt(0), "ELF magic");
        int phoff = b.getInt(0x1c), phentsize = b.getShort(0x2a) & 0xffff, phnum = b.getShort(0x2c) & 0xffff;
        for (int i = 0; i < phnum; i++) {
            int ph = phoff + i * phentsize;
            if (b.getInt(ph) != 1) continue;
            int offset = b.getInt(ph + 4),
                    paddr = b.getInt(ph + 12),
                    filesz = b.getInt(ph + 16),
                    memsz = b.getInt(ph + 20);
            memory.fill(paddr, memsz, (byte) 0);
            memory.write(paddr, elf, offset, filesz);
        }
        return b.getInt(0x18) & 0xffffffffL;
    }

    static int pattern(long seed, int byteOffset) {
        return (int) (byteOffset * 2654435761L) ^ (int) seed;
    }

    static void assertPattern(Path file, long seed, int firstSector, int sectors) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        for (int off = firstSector * 512; off < (firstSector + sectors) * 512; off += 4)
            assertEquals(pattern(seed, off), b.getInt(off), file.getFileName() + " at byte " + off);
    }

    static void assertZero(Path file, int firstSector, int sectors) throws Exception {
        byte[] all = Files.readAllBytes(file);
        for (int off = firstSector * 512; off < (firstSector + sectors) * 512; off++)
            assertEquals(0, all[off], file.getFileName() + " at byte " + off);
    }

    @Test
    void guestDriversPassOverMmioAndPci() throws Exception {
        Path vdaFile = disk(dir.resolve("vda.raw"), 4 << 20, 0);
        Path vdbFile = disk(dir.resolve("vdb.raw"), 1 << 20, 0x5a);
        Path vdcFile = disk(dir.resolve("vdc.raw"), 4 << 20, 0);
        byte[] vdbBefore = Files.readAllBytes(vdbFile);
        Debugcon con = new Debugcon();
        ExitStatus status;
        long busNotifications;
        try (VirtualMachine vm = VirtualMachine.builder().memory(32 << 20).build()) {
            vm.ioBus().register("debugcon", 0xe9, 1, con);
            vm.ioBus().register("debug-exit", 0xf4, 4, new BusDevice() {
                public long read(long offset, int size) {
                    return 0;
                }

                public void write(long offset, int size, long value) {
                    vm.requestExit(new ExitStatus.GuestExit((int) value));
                }
            });

            // virtio-mmio: bus claim, ioeventfd on QueueNotify, an irqfd on an IOAPIC pin each (level: the guest
            // programs its pins level-triggered).
            VirtioMmioTransport vda = new VirtioMmioTransport(
                    "vda",
                    new VirtioBlock(
                            RawFileBackend.open(vdaFile, false), VirtioBlock.Options.DEFAULT.withSerial("jvmm-vda")),
                    vm.memory(),
                    vm.interrupts(),
                    VDA_GSI,
                    Trigger.LEVEL);
            vm.mmioBus().register("virtio-mmio vda", VDA_BASE, VirtioMmioTransport.WINDOW_SIZE, vda);
            vda.registerIoEvent(vm.ioEvents(), VDA_BASE);
            vm.own(vda);
            VirtioMmioTransport vdb = new VirtioMmioTransport(
                    "vdb",
                    new VirtioBlock(
                            RawFileBackend.open(vdbFile, true), VirtioBlock.Options.DEFAULT.withSerial("jvmm-vdb")),
                    vm.memory(),
                    vm.interrupts(),
                    VDB_GSI,
                    Trigger.LEVEL);
            vm.mmioBus().register("virtio-mmio vdb", VDB_BASE, VirtioMmioTransport.WINDOW_SIZE, vdb);
            vdb.registerIoEvent(vm.ioEvents(), VDB_BASE);
            vm.own(vdb);

            // PCI: host bridge on 0xCF8 and ECAM, BARs below 4 GiB (the guest runs without paging).
            PciHostBridge pci = new PciHostBridge(vm.mmioBus(), PCI_MMIO_BASE, PCI_MMIO_SIZE, 0, 0);
            vm.ioBus()
                    .register(
                            "pci-config",
                            PciHostBridge.CONFIG_ADDRESS_PORT,
                            PciHostBridge.CONFIG_PORTS_LENGTH,
                            pci.configPorts());
            vm.mmioBus().register("pci-ecam", ECAM_BASE, PciHostBridge.ECAM_BUS_SIZE, pci.ecam());
            VirtioPciTransport vdc = new VirtioPciTransport(
                    "vdc",
                    new VirtioBlock(
                            RawFileBackend.open(vdcFile, false), VirtioBlock.Options.DEFAULT.withSerial("jvmm-vdc")),
                    vm.memory(),
                    vm.interrupts(),
                    VDC_GSI,
                    vm.ioEvents());
            pci.attach(vdc.pciFunction(), "virtio-pci vdc");
            vm.own(vdc);

            // A multiboot info block with just the command line, which announces the virtio-mmio devices.
            String cmdline = VirtioMmioTransport.cmdlineFragment(VDA_BASE, VDA_GSI) + " "
                    + VirtioMmioTransport.cmdlineFragment(VDB_BASE, VDB_GSI) + "\0";
            vm.memory().write(MULTIBOOT_CMDLINE, cmdline.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            vm.memory().writeInt(MULTIBOOT_INFO, 1 << 2);
            vm.memory().writeInt(MULTIBOOT_INFO + 16, (int) MULTIBOOT_CMDLINE);
            long entry = loadElf(vm.memory(), Guests.load("virtio_suite.elf"));
            vm.setEntry(
                    0, EntryState.protectedMode(entry).withRax(MULTIBOOT_MAGIC).withRbx(MULTIBOOT_INFO));
            vm.start();
            status = vm.awaitExit(Duration.ofMinutes(3)).orElse(null);
            vm.stop();
            busNotifications = vda.busNotifications() + vdb.busNotifications() + vdc.busNotifications();
        }
        String out = con.text();
        System.out.println(out);
        assertNotNull(status, "the guest did not finish; it printed:\n" + out);
        assertEquals(new ExitStatus.GuestExit(0), status, "guest output:\n" + out);
        assertTrue(out.contains("virtio-mmio") && out.contains("virtio-pci") && out.contains(", 0 failed"), out);
        assertFalse(out.contains("FAIL"), out);
        assertEquals(
                0,
                busNotifications,
                "every queue notification completed in the kernel (ioeventfd), none exited to the VMM");

        // The bytes the guest wrote are in the files, where it was told they are.
        assertPattern(vdaFile, 0x11111111L, 64, 64);
        assertPattern(vdcFile, 0x33333333L, 64, 64);
        assertZero(vdaFile, 300, 4);
        assertZero(vdcFile, 300, 4);
        assertTrue(SparseFiles.isHole(vdaFile, 256 * 512, 8 * 512), "discard punched a hole in vda");
        assertArrayEquals(vdbBefore, Files.readAllBytes(vdbFile), "the read-only disk is unchanged");
    }
}
