package example;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.agent.ExecResult;
import dev.jvmm.junit.EnabledIfKvm;
import dev.jvmm.junit.JvmmTest;
import dev.jvmm.junit.Vm;
import dev.jvmm.microvm.MicroVm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** One micro-VM for the class: a command through the guest agent, and a file copied in and back. */
@JvmmTest
@EnabledIfKvm(fullLinux = true)
class GuestTest {
    @Vm(memoryMiB = 256)
    static MicroVm vm;

    @Test
    void unameThroughTheAgent() throws Exception {
        ExecResult uname = vm.exec("uname", "-r");
        assertEquals(0, uname.exitCode(), uname.stderr());
        assertTrue(uname.stdout().matches("\\d+\\.\\d+\\S*\n"), uname.stdout());
        String expected = System.getProperty("expected.kernel.release");
        if (expected != null) assertEquals(expected + "\n", uname.stdout());
        System.out.println("uname -r: " + uname.stdout().strip());
    }

    @Test
    void fileInAndBack(@TempDir Path dir) throws Exception {
        byte[] data = ("made on the host\n" + "x".repeat(100_000)).getBytes(StandardCharsets.UTF_8);
        Path in = Files.write(dir.resolve("in.txt"), data);
        vm.copyIn(in, "/tmp/in.txt");
        ExecResult head = vm.exec("head", "-n", "1", "/tmp/in.txt");
        assertEquals("made on the host\n", head.stdout(), "the guest reads what was copied in");
        Path back = dir.resolve("back.txt");
        vm.copyOut("/tmp/in.txt", back);
        assertArrayEquals(data, Files.readAllBytes(back));
    }
}
