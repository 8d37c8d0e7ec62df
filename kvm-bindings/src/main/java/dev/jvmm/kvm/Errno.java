package dev.jvmm.kvm;

import java.util.Map;

/** Symbolic names of the Linux errno values a VMM meets (x86-64 numbering). */
public final class Errno {
    public static final int EPERM = 1,
            ENOENT = 2,
            EINTR = 4,
            EIO = 5,
            ENXIO = 6,
            E2BIG = 7,
            EBADF = 9,
            EAGAIN = 11,
            ENOMEM = 12,
            EACCES = 13,
            EFAULT = 14,
            EBUSY = 16,
            EEXIST = 17,
            ENODEV = 19,
            EINVAL = 22,
            ENFILE = 23,
            EMFILE = 24,
            ENOTTY = 25,
            EFBIG = 27,
            ENOSPC = 28,
            ESPIPE = 29,
            EROFS = 30,
            ERANGE = 34,
            ENOSYS = 38,
            EPROTONOSUPPORT = 93,
            EOPNOTSUPP = 95,
            ENOTSUP = 95,
            EAFNOSUPPORT = 97,
            ENETUNREACH = 101,
            EHOSTUNREACH = 113;

    private static final Map<Integer, String> NAMES = Map.ofEntries(
            Map.entry(EPERM, "EPERM"),
            Map.entry(ENOENT, "ENOENT"),
            Map.entry(3, "ESRCH"),
            Map.entry(EINTR, "EINTR"),
            Map.entry(EIO, "EIO"),
            Map.entry(ENXIO, "ENXIO"),
            Map.entry(E2BIG, "E2BIG"),
            Map.entry(8, "ENOEXEC"),
            Map.entry(EBADF, "EBADF"),
            Map.entry(10, "ECHILD"),
            Map.entry(EAGAIN, "EAGAIN"),
            Map.entry(ENOMEM, "ENOMEM"),
            Map.entry(EACCES, "EACCES"),
            Map.entry(EFAULT, "EFAULT"),
            Map.entry(EBUSY, "EBUSY"),
            Map.entry(EEXIST, "EEXIST"),
            Map.entry(18, "EXDEV"),
            Map.entry(ENODEV, "ENODEV"),
            Map.entry(20, "ENOTDIR"),
            Map.entry(21, "EISDIR"),
            Map.entry(EINVAL, "EINVAL"),
            Map.entry(ENFILE, "ENFILE"),
            Map.entry(EMFILE, "EMFILE"),
            Map.entry(ENOTTY, "ENOTTY"),
            Map.entry(EFBIG, "EFBIG"),
            Map.entry(ENOSPC, "ENOSPC"),
            Map.entry(ESPIPE, "ESPIPE"),
            Map.entry(EROFS, "EROFS"),
            Map.entry(ERANGE, "ERANGE"),
            Map.entry(ENOSYS, "ENOSYS"),
            Map.entry(61, "ENODATA"),
            Map.entry(EOPNOTSUPP, "EOPNOTSUPP"),
            Map.entry(110, "ETIMEDOUT"),
            Map.entry(111, "ECONNREFUSED"),
            Map.entry(98, "EADDRINUSE"),
            Map.entry(104, "ECONNRESET"),
            Map.entry(122, "EDQUOT"),
            Map.entry(EPROTONOSUPPORT, "EPROTONOSUPPORT"),
            Map.entry(EAFNOSUPPORT, "EAFNOSUPPORT"),
            Map.entry(ENETUNREACH, "ENETUNREACH"),
            Map.entry(EHOSTUNREACH, "EHOSTUNREACH"));

    private Errno() {}

    /** The symbolic name, e.g. "EINVAL", or "errno N" for one this table does not know. */
    public static String name(int errno) {
        String n = NAMES.get(errno);
        return n != null ? n : "errno " + errno;
    }
}
