package dev.jvmm.devices.block;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.Libc;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * QEMU's image locking (block/file-posix.c), so jvmm and QEMU's tools see each other's claims on an image: an
 * open takes a shared OFD lock on byte 100 + p for each permission p it uses and on byte 200 + p for each one it
 * does not let others have, then asks (F_OFD_GETLK for a write lock) whether anyone holds the opposite bytes.
 * OFD locks belong to the open file, so they go with its fd on close or exit, and two opens in one process
 * conflict like two processes.
 *
 * <p>jvmm writing an image uses read, write and resize and shares only reading (as a QEMU disk without
 * share-rw); reading one, it uses read and, like QEMU's read-only disks, does not let others write or resize.
 */
final class ImageLock {
    private static final Logger LOG = LoggerFactory.getLogger(ImageLock.class);
    private static final long PERM_BASE = 100, SHARED_BASE = 200;
    /** QEMU's BLK_PERM_* bit numbers. */
    private static final int CONSISTENT_READ = 0, WRITE = 1, RESIZE = 3;

    private static final String[] NAMES = {"consistent read", "write", "write unchanged", "resize"};
    private static final long L_TYPE = Libc.FLOCK.byteOffset(groupElement("l_type"));
    private static final long L_WHENCE = Libc.FLOCK.byteOffset(groupElement("l_whence"));
    private static final long L_START = Libc.FLOCK.byteOffset(groupElement("l_start"));
    private static final long L_LEN = Libc.FLOCK.byteOffset(groupElement("l_len"));
    private static volatile boolean warned;

    private ImageLock() {}

    /**
     * Takes the locks for an open of {@code path} on {@code fd}; throws where someone else's claims conflict
     * (the caller then closes the fd, which drops whatever was taken). A file system without OFD locks is
     * used unlocked, with one warning, as QEMU does with locking=auto.
     */
    static void acquire(int fd, Path path, boolean readOnly) throws ImageLockedException {
        int[] perms = readOnly ? new int[] {CONSISTENT_READ} : new int[] {CONSISTENT_READ, WRITE, RESIZE};
        int[] unshared = {WRITE, RESIZE};
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fl = arena.allocate(Libc.FLOCK);
            // Take first, then test: of two opens racing, at least the later one sees the other.
            for (int p : perms) if (!set(fd, fl, PERM_BASE + p, path)) return;
            for (int p : unshared) if (!set(fd, fl, SHARED_BASE + p, path)) return;
            for (int p : perms) {
                if (heldByOthers(fd, fl, SHARED_BASE + p)) {
                    throw new ImageLockedException(
                            path,
                            "another process (or open) does not share \"" + NAMES[p]
                                    + "\" access to it; close it there first");
                }
            }
            for (int p : unshared) {
                if (heldByOthers(fd, fl, PERM_BASE + p)) {
                    throw new ImageLockedException(
                            path,
                            "another process (or open) has it open for \"" + NAMES[p] + "\"; close it there first");
                }
            }
        }
    }

    /** A shared lock on one byte; false where the file system has no OFD locks (then nothing is locked). */
    private static boolean set(int fd, MemorySegment fl, long offset, Path path) throws ImageLockedException {
        fill(fl, Libc.F_RDLCK, offset);
        int r = Libc.fcntlRaw(fd, Libc.F_OFD_SETLK, fl);
        if (r == 0) return true;
        if (r == -Errno.EAGAIN || r == -Errno.EACCES) {
            throw new ImageLockedException(
                    path, "another process holds an exclusive lock on byte " + offset + " of it");
        }
        if (!warned) {
            warned = true;
            LOG.warn(
                    "disk image {}: file locks are not available here ({}); another process could open it "
                            + "at the same time",
                    path,
                    Errno.name(-r));
        }
        return false;
    }

    private static boolean heldByOthers(int fd, MemorySegment fl, long offset) {
        fill(fl, Libc.F_WRLCK, offset);
        int r = Libc.fcntlRaw(fd, Libc.F_OFD_GETLK, fl);
        // GETLK reports a lock of another open file that would block a write lock here; ours never count.
        return r == 0 && fl.get(java.lang.foreign.ValueLayout.JAVA_SHORT, L_TYPE) != Libc.F_UNLCK;
    }

    private static void fill(MemorySegment fl, short type, long offset) {
        fl.fill((byte) 0); // l_pid must be 0 for OFD locks
        fl.set(java.lang.foreign.ValueLayout.JAVA_SHORT, L_TYPE, type);
        fl.set(java.lang.foreign.ValueLayout.JAVA_SHORT, L_WHENCE, (short) Libc.SEEK_SET);
        fl.set(java.lang.foreign.ValueLayout.JAVA_LONG, L_START, offset);
        fl.set(java.lang.foreign.ValueLayout.JAVA_LONG, L_LEN, 1);
    }
}
