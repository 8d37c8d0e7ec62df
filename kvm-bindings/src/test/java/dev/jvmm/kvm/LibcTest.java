package dev.jvmm.kvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class LibcTest {
    @Test
    void failedOpenNamesTheCallAndErrno() {
        SyscallException e =
                assertThrows(SyscallException.class, () -> Libc.open("/nonexistent/jvmm-test", Libc.O_RDONLY, 0));
        assertEquals(Errno.ENOENT, e.errno());
        assertEquals("open(/nonexistent/jvmm-test) failed: ENOENT (No such file or directory)", e.getMessage());
    }

    @Test
    void failedIoctlReportsErrnoWithoutThrowingInRawForm() {
        int fd = Libc.eventfd(0, Libc.EFD_CLOEXEC);
        try {
            // An eventfd knows no ioctls: ENOTTY.
            assertEquals(-Errno.ENOTTY, Libc.ioctlRaw(fd, KvmIoctls.KVM_GET_API_VERSION, 0));
            SyscallException e = assertThrows(
                    SyscallException.class,
                    () -> Libc.ioctl(fd, "KVM_GET_API_VERSION", KvmIoctls.KVM_GET_API_VERSION, 0));
            assertTrue(e.getMessage().startsWith("ioctl(KVM_GET_API_VERSION) failed: ENOTTY"), e.getMessage());
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void eventfdCountsWrites() {
        int fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(ValueLayout.JAVA_LONG);
            buf.set(ValueLayout.JAVA_LONG, 0, 3);
            assertEquals(8, Libc.writeRaw(fd, buf, 8));
            assertEquals(8, Libc.writeRaw(fd, buf, 8));
            assertEquals(8, Libc.readRaw(fd, buf, 8));
            assertEquals(6, buf.get(ValueLayout.JAVA_LONG, 0));
            assertEquals(-Errno.EAGAIN, Libc.readRaw(fd, buf, 8));
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void mmapGivesASegmentOfTheRequestedSize() {
        MemorySegment m = Libc.mmap(
                MemorySegment.NULL,
                1 << 20,
                Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE,
                -1,
                0);
        assertEquals(1 << 20, m.byteSize());
        m.set(ValueLayout.JAVA_INT, (1 << 20) - 4, 42);
        assertEquals(42, m.get(ValueLayout.JAVA_INT, (1 << 20) - 4));
        Libc.munmap(m);
    }

    @Test
    void ioctlEncodingFollowsAsmGeneric() {
        assertEquals(0xAE80L, Ioctl.io(0xAE, 0x80));
        assertEquals(0x8090AE81L, Ioctl.ior(0xAE, 0x81, 144));
        assertEquals(0x4020AE46L, Ioctl.iow(0xAE, 0x46, 32));
        assertEquals(0xC008AE05L, Ioctl.iowr(0xAE, 0x05, 8));
        assertThrows(IllegalArgumentException.class, () -> Ioctl.iow(0xAE, 1, 1 << 14));
    }

    @Test
    void pwritevGathersAndPreadvScattersInIovecOrder() throws Exception {
        java.nio.file.Path f = java.nio.file.Files.createTempFile("jvmm-libc", ".bin");
        int fd = Libc.open(f.toString(), Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocateFrom("abc"), b = arena.allocateFrom("defgh");
            MemorySegment iov = arena.allocate(Libc.IOVEC, 2);
            setIovec(iov, 0, a, 3);
            setIovec(iov, 1, b, 5);
            assertEquals(8, Libc.pwritevRaw(fd, iov, 2, 10));
            assertEquals(
                    "abcdefgh",
                    new String(java.nio.file.Files.readAllBytes(f), 10, 8, java.nio.charset.StandardCharsets.US_ASCII));

            // Read back into the buffers the other way round (5 then 3 bytes), and past the end: a short read.
            setIovec(iov, 0, b, 5);
            setIovec(iov, 1, a, 3);
            assertEquals(8, Libc.preadvRaw(fd, iov, 2, 10));
            assertEquals(
                    "abcde",
                    b.getString(0, java.nio.charset.StandardCharsets.US_ASCII).substring(0, 5));
            assertEquals(
                    "fgh",
                    a.getString(0, java.nio.charset.StandardCharsets.US_ASCII).substring(0, 3));
            assertEquals(4, Libc.preadvRaw(fd, iov, 2, 14));
            assertEquals(-Errno.EINVAL, Libc.preadvRaw(fd, iov, Libc.IOV_MAX + 1, 0));
        } finally {
            Libc.close(fd);
            java.nio.file.Files.delete(f);
        }
    }

    /** Entry {@code index} of an iovec array: {@code length} bytes at {@code base}. */
    private static void setIovec(MemorySegment iov, int index, MemorySegment base, long length) {
        long at = index * Libc.IOVEC.byteSize();
        iov.set(ValueLayout.ADDRESS, at, base);
        iov.set(ValueLayout.JAVA_LONG, at + 8, length);
    }
}
