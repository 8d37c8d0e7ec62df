package dev.jvmm.junit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.TestExecutionResult.Status.FAILED;
import static org.junit.platform.engine.TestExecutionResult.Status.SUCCESSFUL;

import dev.jvmm.junit.FakeVms.FakeVm;
import dev.jvmm.microvm.MicroVm;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.platform.engine.reporting.ReportEntry;

/**
 * The extension's lifecycle without KVM: small fixture classes run through the Launcher with {@link FakeVms} in
 * place of micro-VMs, and what they saw, what was started and closed, and what was reported are checked.
 */
class JvmmExtensionTest {
    @BeforeEach
    void reset() {
        FakeVms.reset();
    }

    @JvmmTest
    @TestMethodOrder(MethodOrderer.MethodName.class)
    static class PerClass {
        @Vm
        static FakeVm shared;

        @Test
        void a() {
            FakeVms.log("a saw " + shared);
        }

        @Test
        void b() {
            FakeVms.log("b saw " + shared);
        }
    }

    @Test
    void aStaticFieldIsOneVmForTheClassClosedAfterItsLastTest() {
        Recorder r = Recorder.run(PerClass.class);
        assertEquals(SUCCESSFUL, r.status("a()"));
        assertEquals(SUCCESSFUL, r.status("b()"));
        assertEquals(
                List.of("start vm0 static field PerClass.shared", "a saw vm0", "b saw vm0", "close vm0"), FakeVms.LOG);
        assertEquals(256, FakeVms.STARTED.getFirst().spec.vm().memoryMiB());
    }

    @JvmmTest
    @TestMethodOrder(MethodOrderer.MethodName.class)
    static class PerTest {
        @Vm(cpus = 2)
        FakeVm mine;

        @Test
        void a() {
            FakeVms.log("a saw " + mine);
        }

        @Test
        void b(@Vm(memoryMiB = 512, forwardPorts = 8080) FakeVm fresh) {
            assertNotSame(mine, fresh);
            FakeVms.log("b saw " + mine + " and " + fresh);
        }
    }

    @Test
    void anInstanceFieldAndAParameterAreFreshVmsForEachTestClosedAfterIt() {
        Recorder r = Recorder.run(PerTest.class);
        assertEquals(SUCCESSFUL, r.status("a()"));
        assertEquals(SUCCESSFUL, r.status("b(FakeVm)"), r.failure("b(FakeVm)"));
        assertEquals(
                List.of(
                        "start vm0 field PerTest.mine",
                        "a saw vm0",
                        "close vm0",
                        "start vm1 field PerTest.mine",
                        "start vm2 parameter 0 of b",
                        "b saw vm1 and vm2",
                        "close vm2", // the last started is closed first
                        "close vm1"),
                FakeVms.LOG);
        assertEquals(2, FakeVms.STARTED.get(0).spec.vm().cpus());
        assertEquals(512, FakeVms.STARTED.get(2).spec.vm().memoryMiB());
        assertFalse(FakeVms.STARTED.get(0).spec.fromBuilderMethod());
    }

    @JvmmTest
    static class FromBuilderMethod {
        static int calls;

        @Vm(builder = "custom")
        static FakeVm vm;

        static MicroVm.Builder custom() {
            calls++;
            return MicroVm.builder().memory(64 << 20).cmdline("loglevel=8");
        }

        @Test
        void uses() {
            FakeVms.log("saw " + vm);
        }
    }

    @Test
    void builderNamesAStaticMethodReturningTheBuilder() {
        FromBuilderMethod.calls = 0;
        Recorder r = Recorder.run(FromBuilderMethod.class);
        assertEquals(SUCCESSFUL, r.status("uses()"));
        assertEquals(1, FromBuilderMethod.calls);
        assertTrue(FakeVms.STARTED.getFirst().spec.fromBuilderMethod());
        assertEquals(List.of("start vm0 static field FromBuilderMethod.vm", "saw vm0", "close vm0"), FakeVms.LOG);
    }

    @JvmmTest
    static class BuilderAndAttributes {
        @Vm(builder = "custom", cpus = 2)
        FakeVm vm;

        static MicroVm.Builder custom() {
            return MicroVm.builder();
        }

        @Test
        void t() {}
    }

    @JvmmTest
    static class NoSuchBuilder {
        @Vm(builder = "missing")
        FakeVm vm;

        @Test
        void t() {}
    }

    @JvmmTest
    static class WrongType {
        @Vm
        static String notAVm;

        @Test
        void t() {}
    }

    @Test
    void configurationMistakesFailWithWhatToChange() {
        Recorder r = Recorder.run(BuilderAndAttributes.class);
        assertEquals(FAILED, r.status("t()"));
        assertTrue(r.failure("t()").contains("configure it in one place"), r.failure("t()"));

        r = Recorder.run(NoSuchBuilder.class);
        assertEquals(FAILED, r.status("t()"));
        assertTrue(r.failure("t()").contains("no static, parameterless method"), r.failure("t()"));

        r = Recorder.run(WrongType.class);
        assertEquals(FAILED, r.status("JvmmExtensionTest$WrongType"));
        assertTrue(
                r.failure("JvmmExtensionTest$WrongType").contains("is a java.lang.String, not a"),
                r.failure("JvmmExtensionTest$WrongType"));
        assertTrue(FakeVms.STARTED.isEmpty());
    }

    @JvmmTest
    static class SecondFailsToStart {
        @Vm
        static FakeVm first;

        @Vm(cmdline = "fail")
        static FakeVm second;

        @Test
        void t() {
            FakeVms.log("ran");
        }
    }

    @Test
    void aVmThatFailsToStartFailsTheClassAndThoseStartedAreClosed() {
        Recorder r = Recorder.run(SecondFailsToStart.class);
        assertEquals(FAILED, r.status("JvmmExtensionTest$SecondFailsToStart"));
        assertTrue(
                r.failure("JvmmExtensionTest$SecondFailsToStart").contains("no agent"),
                r.failure("JvmmExtensionTest$SecondFailsToStart"));
        assertEquals(List.of("start vm0 static field SecondFailsToStart.first", "close vm0"), FakeVms.LOG);
    }

    @JvmmTest
    @TestMethodOrder(MethodOrderer.MethodName.class)
    static class Failing {
        @Vm
        static FakeVm shared;

        @Vm
        FakeVm own;

        @Test
        void fails() {
            throw new AssertionError("boom");
        }

        @Test
        void passes() {}
    }

    @Test
    void aFailingTestsReportGetsTheEndOfEachConsoleItSaw() {
        String console = "x".repeat(100_000) + "\u001b[0mKernel panic - not syncing\r\n";
        FakeVms.console = console;
        Recorder r = Recorder.run(Failing.class);
        assertEquals(FAILED, r.status("fails()"));
        assertEquals(SUCCESSFUL, r.status("passes()"));
        // Only the failed test's entries: its own VM first, then the class's.
        assertEquals(List.of("fails()", "fails()"), r.entryOwners);
        ReportEntry own = r.entries.get(0);
        ReportEntry shared = r.entries.get(1);
        assertEquals(
                List.of("jvmm console of field Failing.own"),
                List.copyOf(own.getKeyValuePairs().keySet()));
        assertEquals(
                List.of("jvmm console of static field Failing.shared"),
                List.copyOf(shared.getKeyValuePairs().keySet()));
        String tail = own.getKeyValuePairs().values().iterator().next();
        assertEquals(JvmmExtension.CONSOLE_TAIL, tail.length(), "bounded");
        assertTrue(tail.endsWith("?[0mKernel panic - not syncing?\n"), "the end, control characters shown: " + tail);
        // The report came while the VMs were alive; each was closed once, afterwards.
        assertEquals(3, FakeVms.STARTED.size());
        assertEquals(3, FakeVms.closedCount());
    }

    @Test
    void aShortConsoleIsReportedWhole() {
        assertEquals("boot\nok\n", JvmmExtension.tail("boot\nok\n"));
        assertEquals("", JvmmExtension.tail(""));
    }

    @JvmmTest
    static class Shared {
        @Vm
        static FakeVm vm;
    }

    @JvmmTest
    static class Inheriting extends Shared {
        @Test
        void sees() {
            FakeVms.log("saw " + vm);
        }
    }

    @Test
    void aSuperclassesFieldIsStartedForTheSubclass() {
        Recorder r = Recorder.run(Inheriting.class);
        assertEquals(SUCCESSFUL, r.status("sees()"));
        assertEquals(List.of("start vm0 static field Shared.vm", "saw vm0", "close vm0"), FakeVms.LOG);
        assertSame(FakeVms.STARTED.getFirst(), Shared.vm);
    }
}
