package dev.jvmm.cli.api;

import dev.jvmm.boot.BootException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.unix.DomainSocketAddress;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Objects;

/**
 * A listening Unix socket that only its user can connect to: the file is made 0600 before anyone can connect, an
 * existing path is refused, and the file is removed on close and at JVM exit (only if it is still this one). The API
 * socket and the console socket are both made this way.
 */
final class PrivateSocket implements AutoCloseable {
    /** sun_path's size on Linux, with its terminating NUL. */
    static final int MAX_SOCKET_PATH = 107;

    private final Path path;
    private final Object fileKey;
    private final Channel channel;
    private final Thread removeAtExit;

    private PrivateSocket(Path path, Object fileKey, Channel channel) {
        this.path = path;
        this.fileKey = fileKey;
        this.channel = channel;
        this.removeAtExit = new Thread(this::remove, "jvmm-socket-removal");
        Runtime.getRuntime().addShutdownHook(removeAtExit);
    }

    /**
     * Binds {@code b} at {@code path}, which must not exist: an existing path, a stale socket included, is refused
     * in one line that begins with {@code label} (the option that named the path, say).
     */
    static PrivateSocket bind(ServerBootstrap b, Path path, String label) {
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS))
            throw new BootException(
                    BootException.Kind.API_SOCKET_UNAVAILABLE,
                    label + " " + path
                            + " exists: remove it if it is a stale socket of a jvmm that is gone,"
                            + " or choose another path");
        try {
            Channel ch = bindPrivately(b, path, label);
            try {
                Object key = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                        .fileKey();
                return new PrivateSocket(path, key, ch);
            } catch (IOException | RuntimeException e) {
                ch.close().syncUninterruptibly();
                throw e;
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof BootException be) throw be;
            throw new BootException(
                    BootException.Kind.API_SOCKET_UNAVAILABLE,
                    label + " " + path + ": cannot create the socket: "
                            + (e.getMessage() != null ? e.getMessage() : e.toString()));
        }
    }

    /**
     * Binds in a fresh folder only this user can enter, makes the socket 0600, then hard-links it to its path (the
     * kernel finds a socket by its inode): no one else can connect in between, and link(2) refuses an existing path
     * atomically. Where that folder's longer path does not fit in sun_path, binds in place and sets the mode after.
     */
    private static Channel bindPrivately(ServerBootstrap b, Path socket, String label) throws IOException {
        Path parent = socket.toAbsolutePath().getParent();
        if (parent == null || !Files.isDirectory(parent))
            throw new IOException("its folder " + parent + " does not exist");
        var owner = PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------"));
        var socketMode = PosixFilePermissions.fromString("rw-------");
        if (socket.toString().getBytes(StandardCharsets.UTF_8).length > MAX_SOCKET_PATH)
            throw new IOException("the path is longer than a Unix socket's " + MAX_SOCKET_PATH + " bytes");
        Path dir = Files.createTempDirectory(parent, ".jvmm-api", owner);
        Path tmp = dir.resolve("s");
        try {
            if (tmp.toString().getBytes(StandardCharsets.UTF_8).length > MAX_SOCKET_PATH) {
                Channel ch = bind(b, socket);
                Files.setPosixFilePermissions(socket, socketMode);
                return ch;
            }
            Channel ch = bind(b, tmp);
            try {
                Files.setPosixFilePermissions(tmp, socketMode);
                Files.createLink(socket, tmp);
                return ch;
            } catch (IOException | RuntimeException e) {
                ch.close().syncUninterruptibly();
                if (e instanceof FileAlreadyExistsException)
                    throw new BootException(
                            BootException.Kind.API_SOCKET_UNAVAILABLE,
                            label + " " + socket + " exists (created just now by another program)");
                throw e;
            }
        } finally {
            Files.deleteIfExists(tmp);
            Files.deleteIfExists(dir);
        }
    }

    private static Channel bind(ServerBootstrap b, Path at) throws IOException {
        var f = b.bind(new DomainSocketAddress(at.toString())).awaitUninterruptibly();
        if (!f.isSuccess()) throw new IOException(f.cause().getMessage(), f.cause());
        return f.channel();
    }

    Path path() {
        return path;
    }

    /** Stops listening and removes the file (connections made already are their owners' to close). */
    @Override
    public void close() {
        channel.close().syncUninterruptibly();
        remove();
        try {
            Runtime.getRuntime().removeShutdownHook(removeAtExit);
        } catch (IllegalStateException shuttingDown) {
            // the hook runs anyway
        }
    }

    /** Removes the socket file if it is still ours (not one another process made there since). */
    private void remove() {
        try {
            Object key = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                    .fileKey();
            if (Objects.equals(key, fileKey)) Files.deleteIfExists(path);
        } catch (IOException e) {
            // gone already
        }
    }
}
