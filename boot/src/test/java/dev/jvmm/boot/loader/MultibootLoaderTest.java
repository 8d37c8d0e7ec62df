package dev.jvmm.boot.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.core.x86.EntryState;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MultibootLoaderTest {
    @TempDir
    Path dir;

    private static GuestMemory ram() {
        return GuestMemory.allocate(List.of(new GuestMemory.Layout(0, 32 << 20)), GuestMemory.Options.DEFAULT);
    }

    /** An a.out-kludge kernel: header at offset 64, loaded at 1 MiB, entry at +0x100, bss to +0x3000. */
    private static byte[] kludgeKernel() {
        ByteBuffer b = ByteBuffer.allocate(0x2000).order(ByteOrder.LITTLE_ENDIAN);
        int flags = 0x10003;
        b.putInt(64, MultibootLoader.HEADER_MAGIC)
                .putInt(68, flags)
                .putInt(72, -(MultibootLoader.HEADER_MAGIC + flags));
        b.putInt(76, 0x100040); // header_addr
        b.putInt(80, 0x100000); // load_addr
        b.putInt(84, 0x101000); // load_end_addr: the first 4 KiB of the file
        b.putInt(88, 0x103000); // bss_end_addr
        b.putInt(92, 0x100100); // entry_addr
        for (int i = 0x100; i < 0x2000; i++) b.put(i, (byte) 0xcc);
        return b.array();
    }

    @Test
    void aoutKludgeLoadsByTheHeaderAddressesAndZeroesBss() throws Exception {
        Path k = dir.resolve("kernel");
        Files.write(k, kludgeKernel());
        Path initrd = dir.resolve("initrd");
        Files.write(initrd, new byte[] {1, 2, 3, 4, 5});
        try (GuestMemory m = ram()) {
            m.fill(0x101000, 0x2000, (byte) 0x55); // garbage where bss goes
            LoadedKernel lk = KernelLoader.load(
                    m, new KernelLoader.Request(k, Optional.of(initrd), "console=ttyS0 x", KernelLoader.BootPath.AUTO));
            EntryState e = lk.entry();
            assertEquals(EntryState.Mode.PROTECTED, e.mode());
            assertEquals(0x100100, e.ip());
            assertEquals(MultibootLoader.BOOTLOADER_MAGIC, e.rax());
            assertEquals((byte) 0xcc, m.readByte(0x100100));
            assertEquals((byte) 0xcc, m.readByte(0x100fff));
            assertEquals(0, m.readByte(0x101000), "bss zeroed");
            assertEquals(0, m.readByte(0x102fff), "bss zeroed");
            assertEquals(0x103000, lk.kernelEnd());

            long info = e.rbx();
            int flags = m.readInt(info);
            assertTrue(
                    (flags & 1) != 0 && (flags & (1 << 6)) != 0 && (flags & (1 << 2)) != 0 && (flags & (1 << 3)) != 0);
            assertEquals(639, m.readInt(info + 4), "mem_lower KiB");
            assertEquals((32 << 10) - 1024, m.readInt(info + 8), "mem_upper KiB");
            assertEquals("console=ttyS0 x", cString(m, m.readInt(info + 16)));
            assertEquals(1, m.readInt(info + 20), "one module");
            long mod = m.readInt(info + 24) & 0xffffffffL;
            long modStart = m.readInt(mod) & 0xffffffffL;
            assertEquals(0x103000, modStart, "initrd right after the kernel, page-aligned");
            assertEquals(modStart + 5, m.readInt(mod + 4) & 0xffffffffL);
            assertEquals(3, m.readByte(modStart + 2));
            // memory map: size, base, length, type entries
            int mmapLen = m.readInt(info + 44);
            long mmap = m.readInt(info + 48) & 0xffffffffL;
            assertEquals(4 * 24, mmapLen);
            assertEquals(0L, m.readLong(mmap + 4));
            assertEquals(0x9fc00L, m.readLong(mmap + 12));
            assertEquals(1, m.readInt(mmap + 20));
            assertEquals(2, m.readInt(mmap + 24 + 20), "the MP table's KiB is reserved");
            assertEquals(0xe0000L, m.readLong(mmap + 48 + 4), "the ACPI tables' BIOS area");
            assertEquals(0x20000L, m.readLong(mmap + 48 + 12));
            assertEquals(2, m.readInt(mmap + 48 + 20), "is reserved");
            assertEquals(0x100000L, m.readLong(mmap + 72 + 4));
        }
    }

    @Test
    void badHeadersAreRefusedWithAReason() throws Exception {
        byte[] k = kludgeKernel();
        ByteBuffer b = ByteBuffer.wrap(k).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(84, 0x7fff0000); // load_end far past the file
        Path p = dir.resolve("bad");
        Files.write(p, k);
        try (GuestMemory m = ram()) {
            BootException e = assertThrows(
                    BootException.class,
                    () -> KernelLoader.load(
                            m, new KernelLoader.Request(p, Optional.empty(), "", KernelLoader.BootPath.AUTO)));
            assertEquals(Kind.TRUNCATED, e.kind(), e.getMessage());
        }
        byte[] k2 = kludgeKernel();
        ByteBuffer.wrap(k2)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(80, 0x8000)
                .putInt(76, 0x8040)
                .putInt(84, 0x9000)
                .putInt(88, 0)
                .putInt(92, 0x8100);
        Files.write(p, k2);
        try (GuestMemory m = ram()) {
            BootException e = assertThrows(
                    BootException.class,
                    () -> KernelLoader.load(
                            m, new KernelLoader.Request(p, Optional.empty(), "", KernelLoader.BootPath.AUTO)));
            assertEquals(Kind.RESERVED_LOAD_ADDRESS, e.kind(), e.getMessage());
        }
    }

    @Test
    void aFileThatIsNoKernelIsNamedAsSuch() throws Exception {
        Path p = dir.resolve("notes.txt");
        Files.writeString(p, "hello, I am not a kernel");
        try (GuestMemory m = ram()) {
            BootException e = assertThrows(
                    BootException.class,
                    () -> KernelLoader.load(
                            m, new KernelLoader.Request(p, Optional.empty(), "", KernelLoader.BootPath.AUTO)));
            assertEquals(Kind.NOT_A_KERNEL, e.kind(), e.getMessage());
            BootException missing = assertThrows(
                    BootException.class,
                    () -> KernelLoader.load(
                            m,
                            new KernelLoader.Request(
                                    dir.resolve("nope"), Optional.empty(), "", KernelLoader.BootPath.AUTO)));
            assertEquals(Kind.FILE_NOT_FOUND, missing.kind(), missing.getMessage());
        }
    }

    static String cString(GuestMemory m, long at) {
        StringBuilder sb = new StringBuilder();
        for (byte c; (c = m.readByte(at)) != 0; at++) sb.append((char) c);
        return sb.toString();
    }
}
