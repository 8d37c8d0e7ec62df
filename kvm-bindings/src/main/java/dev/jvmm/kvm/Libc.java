package dev.jvmm.kvm;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The C library calls jvmm makes, as downcalls with errno captured right after the call.
 *
 * <p>Two flavours: the plain methods throw {@link SyscallException} naming the call; the {@code raw}
 * methods return {@code -errno} on failure and never allocate, for hot paths such as KVM_RUN.
 */
public final class Libc {
    public static final int O_RDONLY = 0,
            O_WRONLY = 1,
            O_RDWR = 2,
            O_CREAT = 0x40,
            O_EXCL = 0x80,
            O_TRUNC = 0x200,
            O_NONBLOCK = 0x800,
            O_DIRECT = 0x4000,
            O_CLOEXEC = 0x80000;
    public static final int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public static final int MAP_SHARED = 0x01,
            MAP_PRIVATE = 0x02,
            MAP_FIXED = 0x10,
            MAP_ANONYMOUS = 0x20,
            MAP_NORESERVE = 0x4000;
    public static final int MADV_DONTNEED = 4,
            MADV_REMOVE = 9,
            MADV_MERGEABLE = 12,
            MADV_HUGEPAGE = 14,
            MADV_NOHUGEPAGE = 15;
    public static final int EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;
    /** The most iovecs one preadv/pwritev takes (Linux's UIO_MAXIOV); more is EINVAL. */
    public static final int IOV_MAX = 1024;
    /** struct iovec { void *iov_base; size_t iov_len; } */
    public static final StructLayout IOVEC = MemoryLayout.structLayout(
                    ADDRESS.withName("iov_base"), JAVA_LONG.withName("iov_len"))
            .withName("iovec");

    public static final int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2, FALLOC_FL_ZERO_RANGE = 0x10;
    public static final int SEEK_SET = 0, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;
    /** Open file description locks (fcntl(2)): owned by the open file, not the process, so two opens conflict. */
    public static final int F_OFD_GETLK = 36, F_OFD_SETLK = 37;

    public static final short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
    /** struct flock on x86-64: { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; } */
    public static final StructLayout FLOCK = MemoryLayout.structLayout(
                    JAVA_SHORT.withName("l_type"),
                    JAVA_SHORT.withName("l_whence"),
                    MemoryLayout.paddingLayout(4),
                    JAVA_LONG.withName("l_start"),
                    JAVA_LONG.withName("l_len"),
                    JAVA_INT.withName("l_pid"),
                    MemoryLayout.paddingLayout(4))
            .withName("flock");

    public static final int AF_UNIX = 1, AF_INET = 2, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public static final int IPPROTO_ICMP = 1, MSG_DONTWAIT = 0x40;
    /** struct sockaddr_in: family (host order), port and address (network order), padding. */
    public static final StructLayout SOCKADDR_IN = MemoryLayout.structLayout(
            JAVA_SHORT.withName("sin_family"),
            JAVA_SHORT.withName("sin_port"),
            JAVA_INT.withName("sin_addr"),
            MemoryLayout.sequenceLayout(8, ValueLayout.JAVA_BYTE).withName("sin_zero"));

    public static final short POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
    public static final int CLONE_NEWNET = 0x40000000;
    /** struct pollfd { int fd; short events; short revents; } */
    public static final StructLayout POLLFD = MemoryLayout.structLayout(
                    JAVA_INT.withName("fd"), JAVA_SHORT.withName("events"), JAVA_SHORT.withName("revents"))
            .withName("pollfd");

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final long ERRNO_OFFSET = CAPTURE_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("errno"));
    /** One capture buffer per thread, made once: errno capture must not allocate per call. */
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    // One holder class per function: a downcall handle is linked only when its function is first called, which
    // keeps start-up (where a VM needs a handful of these) short. Each takes this thread's capture buffer first
    // (state()) and the C arguments; orErrno turns a negative result into -errno. Plain Java rather than method
    // handle combinators: each combinator shape costs the JDK a generated class at start-up, where jvmm's launch
    // time goes.
    private static final class OpenCall {
        static final MethodHandle H =
                errnoHandle("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), 2);
    }

    private static final class CloseCall {
        static final MethodHandle H = errnoHandle("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    }

    private static final class IoctlPtrCall {
        static final MethodHandle H =
                errnoHandle("ioctl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), 2);
    }

    private static final class IoctlLongCall {
        static final MethodHandle H =
                errnoHandle("ioctl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), 2);
    }

    private static final class MmapCall {
        static final MethodHandle H = errnoHandle(
                "mmap",
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG),
                -1);
    }

    private static final class MunmapCall {
        static final MethodHandle H = errnoHandle("munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), -1);
    }

    private static final class MadviseCall {
        static final MethodHandle H =
                errnoHandle("madvise", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), -1);
    }

    private static final class EventfdCall {
        static final MethodHandle H = errnoHandle("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), -1);
    }

    private static final class ReadCall {
        static final MethodHandle H =
                errnoHandle("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), -1);
    }

    private static final class WriteCall {
        static final MethodHandle H =
                errnoHandle("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), -1);
    }

    private static final class PreadCall {
        static final MethodHandle H =
                errnoHandle("pread64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), -1);
    }

    private static final class PwriteCall {
        static final MethodHandle H =
                errnoHandle("pwrite64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), -1);
    }

    private static final class PreadvCall {
        static final MethodHandle H =
                errnoHandle("preadv64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), -1);
    }

    private static final class PwritevCall {
        static final MethodHandle H =
                errnoHandle("pwritev64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), -1);
    }

    private static final class FsyncCall {
        static final MethodHandle H = errnoHandle("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    }

    private static final class FdatasyncCall {
        static final MethodHandle H = errnoHandle("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    }

    private static final class FallocateCall {
        static final MethodHandle H = errnoHandle(
                "fallocate64", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), -1);
    }

    private static final class FcntlPtrCall {
        static final MethodHandle H =
                errnoHandle("fcntl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), 2);
    }

    private static final class FtruncateCall {
        static final MethodHandle H =
                errnoHandle("ftruncate64", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), -1);
    }

    private static final class LseekCall {
        static final MethodHandle H =
                errnoHandle("lseek64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT), -1);
    }

    private static final class SocketCall {
        static final MethodHandle H =
                errnoHandle("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), -1);
    }

    private static final class SendtoCall {
        static final MethodHandle H = errnoHandle(
                "sendto",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT),
                -1);
    }

    private static final class RecvfromCall {
        static final MethodHandle H = errnoHandle(
                "recvfrom",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS),
                -1);
    }

    private static final class PollCall {
        static final MethodHandle H =
                errnoHandle("poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), -1);
    }

    private static final class IfNametoindexCall {
        static final MethodHandle H = plainHandle("if_nametoindex", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    private static final class SetnsCall {
        static final MethodHandle H = errnoHandle("setns", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), -1);
    }

    private static final class PthreadKillCall {
        static final MethodHandle H = plainHandle("pthread_kill", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT));
    }

    private static final class PthreadSelfCall {
        static final MethodHandle H = plainHandle("pthread_self", FunctionDescriptor.of(JAVA_LONG));
    }

    private static final class StrerrorCall {
        static final MethodHandle H = plainHandle("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    private static final class GetpidCall {
        static final MethodHandle H = plainHandle("getpid", FunctionDescriptor.of(JAVA_INT));
    }

    private Libc() {}

    /** (capture state, C arguments...) -> C result, errno left in the capture state. */
    private static MethodHandle errnoHandle(String name, FunctionDescriptor fd, int firstVariadic) {
        MemorySegment sym = LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        Linker.Option capture = Linker.Option.captureCallState("errno");
        return firstVariadic >= 0
                ? LINKER.downcallHandle(sym, fd, capture, Linker.Option.firstVariadicArg(firstVariadic))
                : LINKER.downcallHandle(sym, fd, capture);
    }

    /** This thread's capture buffer, for a downcall's errno. */
    private static MemorySegment state() {
        return CAPTURE.get();
    }

    /** The raw convention: a C result, or -errno where it is negative (errno read from this thread's buffer). */
    private static int orErrno(int r) {
        return r < 0 ? -errno(state()) : r;
    }

    private static long orErrno(long r) {
        return r < 0 ? -errno(state()) : r;
    }

    private static MethodHandle plainHandle(String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(
                LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name)), fd);
    }

    private static int errno(MemorySegment state) {
        return state.get(JAVA_INT, ERRNO_OFFSET);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    /** The C library's description of an errno value. */
    public static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) StrerrorCall.H.invokeExact(errno);
            return s.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int open(String path, int flags, int mode) {
        try (Arena arena = Arena.ofConfined()) {
            int fd = orErrno((int) OpenCall.H.invokeExact(state(), arena.allocateFrom(path), flags, mode));
            if (fd < 0) throw new SyscallException("open(" + path + ")", -fd);
            return fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void close(int fd) {
        try {
            int r = orErrno((int) CloseCall.H.invokeExact(state(), fd));
            if (r < 0 && r != -Errno.EINTR) throw new SyscallException("close(" + fd + ")", -r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl with a pointer argument; returns the call's non-negative result or -errno. */
    public static int ioctlRaw(int fd, long request, MemorySegment arg) {
        try {
            return orErrno((int) IoctlPtrCall.H.invokeExact(state(), fd, request, arg));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl with an integer argument; returns the call's non-negative result or -errno. */
    public static int ioctlRaw(int fd, long request, long arg) {
        try {
            return orErrno((int) IoctlLongCall.H.invokeExact(state(), fd, request, arg));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ioctl with a pointer argument; throws naming {@code name} on failure. */
    public static int ioctl(int fd, String name, long request, MemorySegment arg) {
        int r = ioctlRaw(fd, request, arg);
        if (r < 0) throw new SyscallException("ioctl(" + name + ")", -r);
        return r;
    }

    /** ioctl with an integer argument; throws naming {@code name} on failure. */
    public static int ioctl(int fd, String name, long request, long arg) {
        int r = ioctlRaw(fd, request, arg);
        if (r < 0) throw new SyscallException("ioctl(" + name + ")", -r);
        return r;
    }

    /** mmap; the result is sized to {@code length} and must be released with {@link #munmap}. */
    public static MemorySegment mmap(MemorySegment addr, long length, int prot, int flags, int fd, long offset) {
        try {
            MemorySegment state = state();
            MemorySegment p = (MemorySegment) MmapCall.H.invokeExact(state, addr, length, prot, flags, fd, offset);
            if (p.address() == -1L) throw new SyscallException("mmap(" + length + " bytes)", errno(state));
            return p.reinterpret(length);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void munmap(MemorySegment mapping) {
        try {
            int r = orErrno((int) MunmapCall.H.invokeExact(state(), mapping, mapping.byteSize()));
            if (r < 0) throw new SyscallException("munmap", -r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void madvise(MemorySegment range, int advice) {
        try {
            int r = orErrno((int) MadviseCall.H.invokeExact(state(), range, range.byteSize(), advice));
            if (r < 0) throw new SyscallException("madvise(" + advice + ")", -r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int eventfd(int initval, int flags) {
        try {
            int fd = orErrno((int) EventfdCall.H.invokeExact(state(), initval, flags));
            if (fd < 0) throw new SyscallException("eventfd", -fd);
            return fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** read(2): bytes read, or -errno. */
    public static long readRaw(int fd, MemorySegment buf, long count) {
        try {
            return orErrno((long) ReadCall.H.invokeExact(state(), fd, buf, count));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** write(2): bytes written, or -errno. */
    public static long writeRaw(int fd, MemorySegment buf, long count) {
        try {
            return orErrno((long) WriteCall.H.invokeExact(state(), fd, buf, count));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pread(2) straight into {@code buf} (which may be guest memory): bytes read, or -errno. */
    public static long preadRaw(int fd, MemorySegment buf, long count, long offset) {
        try {
            return orErrno((long) PreadCall.H.invokeExact(state(), fd, buf, count, offset));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pwrite(2) from {@code buf}: bytes written, or -errno. */
    public static long pwriteRaw(int fd, MemorySegment buf, long count, long offset) {
        try {
            return orErrno((long) PwriteCall.H.invokeExact(state(), fd, buf, count, offset));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * preadv(2): reads into the {@code iovcnt} buffers an array of {@link #IOVEC} names, in order: bytes read
     * (possibly fewer than asked), or -errno.
     */
    public static long preadvRaw(int fd, MemorySegment iov, int iovcnt, long offset) {
        try {
            return orErrno((long) PreadvCall.H.invokeExact(state(), fd, iov, iovcnt, offset));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pwritev(2): writes the {@code iovcnt} buffers of an {@link #IOVEC} array, in order: bytes written, or -errno. */
    public static long pwritevRaw(int fd, MemorySegment iov, int iovcnt, long offset) {
        try {
            return orErrno((long) PwritevCall.H.invokeExact(state(), fd, iov, iovcnt, offset));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fsync(2): 0, or -errno. */
    public static int fsyncRaw(int fd) {
        try {
            return orErrno((int) FsyncCall.H.invokeExact(state(), fd));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fdatasync(2): 0, or -errno. */
    public static int fdatasyncRaw(int fd) {
        try {
            return orErrno((int) FdatasyncCall.H.invokeExact(state(), fd));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fallocate(2): 0, or -errno (EOPNOTSUPP where the file system lacks the mode). */
    public static int fallocateRaw(int fd, int mode, long offset, long length) {
        try {
            return orErrno((int) FallocateCall.H.invokeExact(state(), fd, mode, offset, length));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fcntl(2) with a pointer argument (F_OFD_SETLK and friends with a {@link #FLOCK}): the result, or -errno. */
    public static int fcntlRaw(int fd, int cmd, MemorySegment arg) {
        try {
            MemorySegment state = state();
            int r = (int) FcntlPtrCall.H.invokeExact(state, fd, cmd, arg);
            return r < 0 ? -errno(state) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void ftruncate(int fd, long length) {
        try {
            int r = orErrno((int) FtruncateCall.H.invokeExact(state(), fd, length));
            if (r < 0) throw new SyscallException("ftruncate(" + length + ")", -r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** lseek(2): the new offset, or -errno. */
    public static long lseekRaw(int fd, long offset, int whence) {
        try {
            return orErrno((long) LseekCall.H.invokeExact(state(), fd, offset, whence));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The calling thread's pthread_t, for {@link #pthreadKill}. */
    public static long pthreadSelf() {
        try {
            return (long) PthreadSelfCall.H.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pthread_kill(3): 0 or an error number (it does not use errno). */
    public static int pthreadKill(long thread, int signal) {
        try {
            return (int) PthreadKillCall.H.invokeExact(thread, signal);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int getpid() {
        try {
            return (int) GetpidCall.H.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** socket(2); used for the interface ioctls (SIOCBRADDIF, SIOCSIFFLAGS) that want a socket fd. */
    public static int socket(int domain, int type, int protocol) {
        int fd = socketRaw(domain, type, protocol);
        if (fd < 0) throw new SyscallException("socket(" + domain + ", " + type + ", " + protocol + ")", -fd);
        return fd;
    }

    /** socket(2): the new fd, or -errno (for callers that expect refusals, such as ping sockets). */
    public static int socketRaw(int domain, int type, int protocol) {
        try {
            return orErrno((int) SocketCall.H.invokeExact(state(), domain, type, protocol));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * sendto(2) of {@code count} bytes of {@code buf} to {@code addr} (e.g. a {@link #SOCKADDR_IN}): bytes sent, or
     * -errno.
     */
    public static long sendtoRaw(int fd, MemorySegment buf, long count, int flags, MemorySegment addr) {
        try {
            return orErrno(
                    (long) SendtoCall.H.invokeExact(state(), fd, buf, count, flags, addr, (int) addr.byteSize()));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * recvfrom(2) into {@code buf}; the sender's address lands in {@code addr}, whose byte size is the room offered
     * (the length the kernel reports is not returned: callers pass a buffer sized for the family they use).
     * Bytes received, or -errno.
     */
    public static long recvfromRaw(
            int fd, MemorySegment buf, long count, int flags, MemorySegment addr, MemorySegment addrLen) {
        try {
            addrLen.set(JAVA_INT, 0, (int) addr.byteSize());
            return orErrno((long) RecvfromCall.H.invokeExact(state(), fd, buf, count, flags, addr, addrLen));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** poll(2) over {@code nfds} {@link #POLLFD} entries: the number of ready entries, or -errno. */
    public static int pollRaw(MemorySegment fds, int nfds, int timeoutMillis) {
        try {
            return orErrno((int) PollCall.H.invokeExact(state(), fds, (long) nfds, timeoutMillis));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** if_nametoindex(3): the interface's index, or 0 if there is no such interface. */
    public static int ifNameToIndex(String name) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) IfNametoindexCall.H.invokeExact(arena.allocateFrom(name));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** setns(2): moves the calling thread into the namespace {@code fd} refers to. */
    public static void setns(int fd, int nstype) {
        try {
            int r = orErrno((int) SetnsCall.H.invokeExact(state(), fd, nstype));
            if (r < 0) throw new SyscallException("setns(" + fd + ")", -r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * setns(2) by the namespace's file (such as /var/run/netns/NAME, where iproute2 keeps named network namespaces).
     */
    public static void setns(String path, int nstype) {
        int fd = open(path, O_RDONLY | O_CLOEXEC, 0);
        try {
            setns(fd, nstype);
        } finally {
            close(fd);
        }
    }
}
