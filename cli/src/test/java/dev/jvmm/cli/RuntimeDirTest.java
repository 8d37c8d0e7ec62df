package dev.jvmm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.boot.BootException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where named VMs live, which names they may have, and how a name is held and freed. */
class RuntimeDirTest {
    @TempDir
    Path tmp;

    @Test
    void theFolderComesFromTheEnvironmentAndTheUser() {
        assertEquals(
                Path.of("/x/y"),
                RuntimeDir.locate(Map.of("JVMM_RUNTIME_DIR", "/x/y"), 1000).path());
        assertEquals(
                Path.of("/x/y"),
                RuntimeDir.locate(Map.of("JVMM_RUNTIME_DIR", "/x/y", "XDG_RUNTIME_DIR", "/run/user/0"), 0)
                        .path(),
                "the explicit folder wins, for root too");
        assertEquals(
                Path.of("/run/jvmm"),
                RuntimeDir.locate(Map.of("XDG_RUNTIME_DIR", "/run/user/0"), 0).path());
        assertEquals(
                Path.of("/run/user/1000/jvmm"),
                RuntimeDir.locate(Map.of("XDG_RUNTIME_DIR", "/run/user/1000"), 1000)
                        .path());
        assertEquals(
                Path.of("/tmp/jvmm-1000"), RuntimeDir.locate(Map.of(), 1000).path());
        assertEquals(
                Path.of("/tmp/jvmm-1000"),
                RuntimeDir.locate(Map.of("XDG_RUNTIME_DIR", "relative"), 1000).path(),
                "a relative XDG_RUNTIME_DIR is ignored, as the spec says");
        RuntimeDir d = new RuntimeDir(Path.of("/r"));
        assertEquals(Path.of("/r/web.sock"), d.socket("web"));
        assertEquals(Path.of("/r/web.console"), d.console("web"));
        assertEquals(Path.of("/r/web.log"), d.log("web"));
        assertEquals(Path.of("/r/web.lock"), d.lockFile("web"));
    }

    @Test
    void namesAreHostnameLike() {
        for (String ok : List.of("a", "web", "web-1", "9", "A".repeat(64)))
            assertEquals(ok, RuntimeDir.checkName(ok, "--name"));
        for (String bad : List.of("", "-x", "a/b", "..", ".hidden", "a b", "a_b", "ü", "A".repeat(65), "x.sock")) {
            BootException e = assertThrows(BootException.class, () -> RuntimeDir.checkName(bad, "--name"), bad);
            assertEquals(BootException.Kind.BAD_OPTION, e.kind());
            assertTrue(e.getMessage().startsWith("--name must be"), e.getMessage());
        }
        assertThrows(BootException.class, () -> RuntimeDir.checkName(null, "NAME"));
    }

    @Test
    void theFolderIsMadePrivateAndOnlyAFolderOfOursIsUsed() throws Exception {
        RuntimeDir d = new RuntimeDir(tmp.resolve("jvmm")).ensure();
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(d.path())));
        Files.setPosixFilePermissions(d.path(), PosixFilePermissions.fromString("rwxr-xr-x"));
        d.ensure();
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(d.path())), "tightened");

        Path file = Files.writeString(tmp.resolve("file"), "");
        BootException e = assertThrows(BootException.class, () -> new RuntimeDir(file).ensure());
        assertEquals(BootException.Kind.RUNTIME_DIR_UNUSABLE, e.kind());
        assertTrue(
                e.getMessage().contains("not a folder") && e.getMessage().contains("JVMM_RUNTIME_DIR"), e.getMessage());
        Path link = Files.createSymbolicLink(tmp.resolve("link"), d.path());
        assertTrue(assertThrows(BootException.class, () -> new RuntimeDir(link).ensure())
                .getMessage()
                .contains("not a folder"));
        assertTrue(assertThrows(BootException.class, () -> new RuntimeDir(tmp.resolve("no/such")).ensure())
                .getMessage()
                .contains("parent folder does not exist"));
    }

    @Test
    void aNameIsHeldOnceAndFreedWithItsLock() throws Exception {
        RuntimeDir d = new RuntimeDir(tmp).ensure();
        assertFalse(d.running("web"));
        // A dead VM's leftovers: its socket files are removed when the name is claimed again.
        Files.writeString(d.socket("web"), "");
        Files.writeString(d.console("web"), "");
        try (RuntimeDir.Lock lock = d.claim("web")) {
            assertTrue(d.running("web"));
            assertFalse(Files.exists(d.socket("web")) || Files.exists(d.console("web")), "stale sockets removed");
            assertEquals(ProcessHandle.current().pid(), d.pid("web").orElseThrow());
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(d.lockFile("web"))));
            BootException e = assertThrows(BootException.class, () -> d.claim("web"));
            assertEquals(BootException.Kind.NAME_IN_USE, e.kind());
            assertTrue(
                    e.getMessage()
                            .contains("'web' is running already (pid "
                                    + ProcessHandle.current().pid() + ")"),
                    e.getMessage());
            assertTrue(d.running("web"), "a refused claim leaves the holder's lock alone");
            Files.writeString(d.socket("web"), "");
            assertFalse(d.removeStale("web"), "a live VM's socket is not stale");
            assertTrue(Files.exists(d.socket("web")));
        }
        assertFalse(d.running("web"));
        assertTrue(d.pid("web").isEmpty(), "the pid goes with the lock");
        assertTrue(d.removeStale("web"));
        assertFalse(Files.exists(d.socket("web")));
        d.claim("web").close(); // free again
    }

    @Test
    void namesAreThoseWithAnApiSocket() throws Exception {
        RuntimeDir d = new RuntimeDir(tmp);
        assertEquals(List.of(), new RuntimeDir(tmp.resolve("none")).names());
        try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.bind(UnixDomainSocketAddress.of(d.socket("b")));
            Files.writeString(d.socket("a"), "");
            Files.writeString(d.lockFile("c"), "");
            Files.writeString(d.log("d"), "");
            Files.writeString(tmp.resolve("-x.sock"), "");
            assertEquals(List.of("a", "b"), d.names());
        }
    }
}
