package dev.jvmm.cli;

import dev.jvmm.boot.BootException;
import dev.jvmm.boot.BootException.Kind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * Where named VMs live while they run: {@code $XDG_RUNTIME_DIR/jvmm}, {@code /run/jvmm} for root, or
 * {@code $JVMM_RUNTIME_DIR} when set; without XDG_RUNTIME_DIR, {@code /tmp/jvmm-UID} (as tmux does). The folder is
 * this user's alone (0700, owned by them; a folder someone else owns is refused). A VM named NAME has there:
 *
 * <ul>
 *   <li>{@code NAME.sock}: its API socket (0600), the one way every verb reaches it;
 *   <li>{@code NAME.console}: its serial console socket (0600), raw bytes both ways;
 *   <li>{@code NAME.log}: a detached VM's stdout and stderr (its console output included);
 *   <li>{@code NAME.lock}: locked (fcntl) by the VM's process while it runs and holding its pid. The lock makes
 *       the name unique, and tells a dead VM's stale sockets from a live one's: the kernel drops it with the
 *       process, however it ended. Lock files stay (a few bytes each): deleting one would let two processes lock
 *       two files of the same name.
 * </ul>
 */
final class RuntimeDir {
    static final String ENV = "JVMM_RUNTIME_DIR";
    /** A hostname's characters: a VM's name often becomes its hostname, and it is also the API's instance id. */
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9-]{0,63}");

    private static final Set<PosixFilePermission> PRIVATE_DIR = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> PRIVATE_FILE = PosixFilePermissions.fromString("rw-------");
    /**
     * The locks this JVM holds, by lock file. fcntl locks belong to the process and closing any descriptor of the
     * file drops them all, so a probe must never open a file this JVM holds locked: it asks here first.
     */
    private static final Map<Path, Lock> HELD = new ConcurrentHashMap<>();

    private final Path path;

    RuntimeDir(Path path) {
        this.path = path.toAbsolutePath().normalize();
    }

    /** The folder for this process's user: see the class comment for the rules. */
    static RuntimeDir locate() {
        return locate(System.getenv(), uid());
    }

    static RuntimeDir locate(Map<String, String> env, long uid) {
        String explicit = env.get(ENV);
        if (explicit != null && !explicit.isEmpty()) return new RuntimeDir(Path.of(explicit));
        if (uid == 0) return new RuntimeDir(Path.of("/run/jvmm"));
        String xdg = env.get("XDG_RUNTIME_DIR");
        if (xdg != null && !xdg.isEmpty() && Path.of(xdg).isAbsolute()) return new RuntimeDir(Path.of(xdg, "jvmm"));
        return new RuntimeDir(Path.of("/tmp", "jvmm-" + uid));
    }

    static long uid() {
        try {
            return ((Number) Files.getAttribute(Path.of("/proc/self"), "unix:uid")).longValue();
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    Path path() {
        return path;
    }

    /** The name itself, if it is one jvmm accepts; otherwise a one-line refusal that names the option. */
    static String checkName(String name, String option) {
        if (name == null || !NAME.matcher(name).matches())
            throw new BootException(
                    Kind.BAD_OPTION,
                    option + " must be 1 to 64 letters, digits and '-', not starting with '-', not '" + name + "'");
        return name;
    }

    Path socket(String name) {
        return path.resolve(name + ".sock");
    }

    Path console(String name) {
        return path.resolve(name + ".console");
    }

    Path log(String name) {
        return path.resolve(name + ".log");
    }

    Path lockFile(String name) {
        return path.resolve(name + ".lock");
    }

    /**
     * Makes the folder if it is missing (its parent must exist), or checks that the one there is a folder of this
     * user's, not a link, and makes it 0700 if it is more open. Returns this.
     */
    RuntimeDir ensure() {
        try {
            Files.createDirectory(path, PosixFilePermissions.asFileAttribute(PRIVATE_DIR));
        } catch (FileAlreadyExistsException e) {
            // checked below
        } catch (NoSuchFileException e) {
            throw unusable("its parent folder does not exist");
        } catch (IOException e) {
            throw unusable("cannot create it: " + e.getMessage());
        }
        try {
            if (!Files.isDirectory(path, LinkOption.NOFOLLOW_LINKS)) throw unusable("it is not a folder");
            long owner = ((Number) Files.getAttribute(path, "unix:uid", LinkOption.NOFOLLOW_LINKS)).longValue();
            long me = uid();
            if (me >= 0 && owner != me)
                throw unusable("it belongs to uid " + owner + ", not to this user (uid " + me + ")");
            if (!Files.getPosixFilePermissions(path, LinkOption.NOFOLLOW_LINKS).equals(PRIVATE_DIR))
                Files.setPosixFilePermissions(path, PRIVATE_DIR);
        } catch (IOException e) {
            throw unusable(e.getMessage());
        }
        return this;
    }

    private BootException unusable(String why) {
        return new BootException(
                Kind.RUNTIME_DIR_UNUSABLE,
                "the runtime folder " + path + " cannot be used: " + why + " (set " + ENV + " to use another)");
    }

    /**
     * Takes the name for this process: locks {@code NAME.lock} and writes this process's pid into it. Refused in
     * one line when a live VM holds it. A dead VM's stale sockets are removed once the lock is ours.
     */
    Lock claim(String name) {
        Path file = lockFile(name);
        if (HELD.containsKey(file))
            throw inUse(name, OptionalLong.of(ProcessHandle.current().pid()));
        FileChannel ch = null;
        try {
            ch = FileChannel.open(
                    file,
                    Set.of(StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE),
                    PosixFilePermissions.asFileAttribute(PRIVATE_FILE));
            FileLock lock = ch.tryLock();
            if (lock == null) {
                ch.close();
                throw inUse(name, pid(name));
            }
            ch.truncate(0);
            ch.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)), 0);
            Lock l = new Lock(file, ch, lock);
            HELD.put(file, l);
            Files.deleteIfExists(socket(name));
            Files.deleteIfExists(console(name));
            return l;
        } catch (IOException | OverlappingFileLockException e) {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // failing already
                }
            }
            throw unusable("cannot lock " + file.getFileName() + ": " + e.getMessage());
        }
    }

    private BootException inUse(String name, OptionalLong pid) {
        return new BootException(
                Kind.NAME_IN_USE,
                "a VM named '" + name + "' is running already"
                        + (pid.isPresent() ? " (pid " + pid.getAsLong() + ")" : "")
                        + ": choose another --name, or stop it with 'jvmm shutdown " + name + "' or 'jvmm destroy "
                        + name + "'");
    }

    /** Whether a live process holds the name (this one included). */
    boolean running(String name) {
        Path file = lockFile(name);
        if (HELD.containsKey(file)) return true;
        if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) return false;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            FileLock probe = ch.tryLock();
            if (probe == null) return true;
            probe.release();
            return false;
        } catch (OverlappingFileLockException e) {
            return true;
        } catch (IOException e) {
            return false; // not ours to read: no VM of ours holds it
        }
    }

    /** The pid the holder of the name wrote, while it holds it. */
    OptionalLong pid(String name) {
        try {
            String s =
                    Files.readString(lockFile(name), StandardCharsets.US_ASCII).strip();
            return s.isEmpty() ? OptionalLong.empty() : OptionalLong.of(Long.parseLong(s));
        } catch (IOException | NumberFormatException e) {
            return OptionalLong.empty();
        }
    }

    /**
     * Removes what a VM that is gone left behind (its sockets) and says whether there was any; a live VM's files
     * are left alone.
     */
    boolean removeStale(String name) {
        if (running(name)) return false;
        boolean any = false;
        try {
            any |= Files.deleteIfExists(socket(name));
            any |= Files.deleteIfExists(console(name));
        } catch (IOException e) {
            // not ours, or gone already
        }
        return any;
    }

    /** The names that have an API socket here, sorted: live VMs and stale sockets alike. */
    List<String> names() {
        List<String> names = new ArrayList<>();
        if (!Files.isDirectory(path)) return names;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(path, "*.sock")) {
            for (Path f : files) {
                String n = f.getFileName().toString();
                n = n.substring(0, n.length() - ".sock".length());
                if (NAME.matcher(n).matches()) names.add(n);
            }
        } catch (IOException e) {
            throw unusable("cannot list it: " + e.getMessage());
        }
        names.sort(null);
        return names;
    }

    /** The lock on a name, held until closed or until the process ends. */
    static final class Lock implements AutoCloseable {
        private final Path file;
        private final FileChannel channel;
        private final FileLock lock;

        private Lock(Path file, FileChannel channel, FileLock lock) {
            this.file = file;
            this.channel = channel;
            this.lock = lock;
        }

        @Override
        public void close() {
            if (!HELD.remove(file, this)) return;
            try {
                channel.truncate(0);
                lock.release();
                channel.close();
            } catch (IOException e) {
                // the process's end releases it anyway
            }
        }
    }
}
