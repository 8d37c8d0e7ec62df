package dev.jvmm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jvmm.core.VcpuExit.Kind;
import dev.jvmm.core.bus.Bus;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.testing.RecordingDevice;
import dev.jvmm.core.testing.RecordingDevice.Access;
import dev.jvmm.kvm.gen.KvmHeaders;
import dev.jvmm.kvm.gen.kvm_run;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every exit kind decoded from a plain segment laid out like kvm_run and acted on by the policy, without
 * /dev/kvm; hostile field values included.
 */
class ExitPolicyTest {
    /** Like the vCPU mmap: kvm_run in the first page, the port I/O data area after it. */
    private static final long AREA = 3 * 4096;

    private static final long DATA = 4096;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private final Arena arena = Arena.ofConfined();
    private final MemorySegment run = arena.allocate(AREA, 8);
    private final VcpuExit exit = VcpuExit.over(run);
    private final Bus io = new Bus("io");
    private final Bus mmio = new Bus("mmio");
    private int reports;
    private final ExitPolicy policy = new ExitPolicy(3, io, mmio, () -> {
        reports++;
        return "REGS";
    });

    @AfterEach
    void close() {
        arena.close();
    }

    private void reason(int r) {
        kvm_run.exit_reason(run, r);
    }

    private void io(boolean out, int port, int size, int count, long dataOffset) {
        reason(KvmHeaders.KVM_EXIT_IO());
        MemorySegment s = kvm_run.io(run);
        kvm_run.io.direction(s, (byte) (out ? KvmHeaders.KVM_EXIT_IO_OUT() : KvmHeaders.KVM_EXIT_IO_IN()));
        kvm_run.io.size(s, (byte) size);
        kvm_run.io.port(s, (short) port);
        kvm_run.io.count(s, count);
        kvm_run.io.data_offset(s, dataOffset);
    }

    private void mmioExit(boolean write, long addr, int len, long data) {
        reason(KvmHeaders.KVM_EXIT_MMIO());
        MemorySegment s = kvm_run.mmio(run);
        kvm_run.mmio.phys_addr(s, addr);
        kvm_run.mmio.len(s, len);
        kvm_run.mmio.is_write(s, (byte) (write ? 1 : 0));
        run.set(U64, kvm_run.mmio$offset() + kvm_run.mmio.data$offset(), data);
    }

    private ExitStatus handle(Kind expected) {
        assertEquals(expected, exit.decode());
        assertEquals(expected, exit.kind());
        return policy.handle(exit);
    }

    @Test
    void aPortWriteGoesToTheDeviceAtItsOffset() {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        io.register("dev", 0x3f8, 8, dev);
        io(true, 0x3f9, 1, 1, DATA);
        run.set(ValueLayout.JAVA_BYTE, DATA, (byte) 'A');
        assertNull(handle(Kind.IO_OUT));
        assertEquals(0x3f9, exit.ioPort());
        assertEquals(List.of(new Access(true, 1, 1, 'A')), dev.accesses());
    }

    @Test
    void stringPortWritesDeliverEveryItemInOrder() {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        io.register("dev", 0x80, 4, dev);
        io(true, 0x80, 2, 3, DATA);
        for (int i = 0; i < 3; i++) run.set(ValueLayout.JAVA_SHORT_UNALIGNED, DATA + 2L * i, (short) (0xa000 + i));
        assertNull(handle(Kind.IO_OUT));
        assertEquals(
                List.of(new Access(true, 0, 2, 0xa000), new Access(true, 0, 2, 0xa001), new Access(true, 0, 2, 0xa002)),
                dev.accesses());
    }

    @Test
    void aPortReadFillsTheDataAreaWithTheDevicesAnswerTruncatedToTheSize() {
        io.register("dev", 0x60, 1, new RecordingDevice(() -> 0x1234_5678_9abcL));
        io(false, 0x60, 2, 2, DATA);
        run.set(U64, DATA, -1L);
        assertNull(handle(Kind.IO_IN));
        assertEquals(0x9abc_9abcL | 0xffff_ffff_0000_0000L, run.get(U64, DATA));
    }

    @Test
    void anUnclaimedPortReadsAsAllOnes() {
        io(false, 0x1234, 4, 1, DATA);
        assertNull(handle(Kind.IO_IN));
        assertEquals(-1, run.get(U32, DATA));
        assertEquals(1, io.unclaimedAccesses());
    }

    @Test
    void portDataMayEndExactlyAtTheEndOfTheArea() {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        io.register("dev", 0x10, 1, dev);
        io(true, 0x10, 4, 2, AREA - 8);
        assertNull(handle(Kind.IO_OUT));
        assertEquals(2, dev.accesses().size());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3, 5, 8, 0x80, 0xff})
    void aPortSizeOtherThanOneTwoOrFourIsRefused(int size) {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        io.register("dev", 0x10, 1, dev);
        io(false, 0x10, size, 1, DATA);
        assertMalformedIoEndsTheVm();
        assertTrue(dev.accesses().isEmpty());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, 2048 + 1})
    void aPortCountThatIsZeroHugeOrPastTheAreaIsRefused(int count) {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        io.register("dev", 0x10, 1, dev);
        io(true, 0x10, 4, count, DATA); // 2048 items of 4 bytes fill the two pages after DATA exactly
        assertMalformedIoEndsTheVm();
        assertTrue(dev.accesses().isEmpty());
    }

    @ParameterizedTest
    @ValueSource(longs = {AREA, AREA - 3, -1L, Long.MIN_VALUE, Long.MAX_VALUE, Long.MAX_VALUE - 2})
    void aPortDataOffsetOutsideTheAreaIsRefused(long dataOffset) {
        io(false, 0x10, 4, 1, dataOffset);
        assertMalformedIoEndsTheVm();
    }

    private void assertMalformedIoEndsTheVm() {
        ExitStatus s = handle(Kind.MALFORMED);
        ExitStatus.Error e = assertInstanceOf(ExitStatus.Error.class, s);
        assertTrue(e.reason().contains("vCPU 3") && e.reason().contains("KVM_EXIT_IO"), e.reason());
        assertEquals(KvmHeaders.KVM_EXIT_IO(), exit.reason());
        assertThrows(IndexOutOfBoundsException.class, () -> exit.ioData(0));
        assertThrows(IndexOutOfBoundsException.class, () -> exit.setIoData(0, 0));
    }

    @Test
    void ioItemsOutsideTheCountAreRefused() {
        io(true, 0x10, 1, 2, DATA);
        exit.decode();
        assertThrows(IndexOutOfBoundsException.class, () -> exit.ioData(2));
        assertThrows(IndexOutOfBoundsException.class, () -> exit.ioData(-1));
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4, 8})
    void anMmioWriteGoesToTheDeviceWithOnlyItsLengthOfData(int len) {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        mmio.register("dev", 0xd000_0000L, 0x1000, dev);
        mmioExit(true, 0xd000_0010L, len, 0x1122_3344_5566_7788L);
        assertNull(handle(Kind.MMIO_WRITE));
        long mask = len == 8 ? -1L : (1L << (8 * len)) - 1;
        assertEquals(List.of(new Access(true, 0x10, len, 0x1122_3344_5566_7788L & mask)), dev.accesses());
    }

    @Test
    void anMmioReadWritesTheDevicesAnswerIntoKvmRun() {
        mmio.register("dev", 0xfee0_0000L, 0x100, new RecordingDevice(() -> 0xcafe_f00dL));
        mmioExit(false, 0xfee0_0020L, 4, -1L);
        assertNull(handle(Kind.MMIO_READ));
        assertEquals(0xfee0_0020L, exit.mmioAddress());
        assertEquals(0xffff_ffff_cafe_f00dL, run.get(U64, kvm_run.mmio$offset() + kvm_run.mmio.data$offset()));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 9, 16, -1, Integer.MIN_VALUE})
    void anMmioLengthOutOfRangeIsIgnoredNotTrusted(int len) {
        RecordingDevice dev = new RecordingDevice(() -> 0);
        mmio.register("dev", 0x1000, 0x1000, dev);
        for (boolean write : new boolean[] {true, false}) {
            mmioExit(write, 0x1000, len, 0x55L);
            assertNull(handle(Kind.MALFORMED));
            assertThrows(IllegalStateException.class, exit::mmioData);
            assertThrows(IllegalStateException.class, () -> exit.setMmioData(0));
        }
        assertTrue(dev.accesses().isEmpty());
        assertEquals(0x55L, run.get(U64, kvm_run.mmio$offset() + kvm_run.mmio.data$offset()));
    }

    @Test
    void wakeUpExitsJustEnterAgain() {
        reason(KvmHeaders.KVM_EXIT_IRQ_WINDOW_OPEN());
        assertNull(handle(Kind.IRQ_WINDOW_OPEN));
        reason(KvmHeaders.KVM_EXIT_INTR());
        assertNull(handle(Kind.INTR));
        assertEquals(0, reports);
    }

    @Test
    void haltWithoutAnIrqchipIsAPowerOff() {
        reason(KvmHeaders.KVM_EXIT_HLT());
        assertEquals(new ExitStatus.PowerOff(), handle(Kind.HLT));
    }

    @Test
    void shutdownIsATripleFaultCrashWithTheRegisters() {
        reason(KvmHeaders.KVM_EXIT_SHUTDOWN());
        ExitStatus.Crash c = assertInstanceOf(ExitStatus.Crash.class, handle(Kind.SHUTDOWN));
        assertEquals("triple fault on vCPU 3 (KVM_EXIT_SHUTDOWN)", c.reason());
        assertEquals("REGS", c.report());
    }

    private ExitStatus systemEvent(int type) {
        reason(KvmHeaders.KVM_EXIT_SYSTEM_EVENT());
        kvm_run.system_event.type(kvm_run.system_event(run), type);
        return handle(Kind.SYSTEM_EVENT);
    }

    @Test
    void systemEventsPowerOffResetOrCrash() {
        assertEquals(new ExitStatus.PowerOff(), systemEvent(KvmHeaders.KVM_SYSTEM_EVENT_SHUTDOWN()));
        assertEquals(VcpuExit.SystemEvent.SHUTDOWN, exit.systemEvent());
        assertEquals(new ExitStatus.Reset(), systemEvent(KvmHeaders.KVM_SYSTEM_EVENT_RESET()));
        assertEquals(VcpuExit.SystemEvent.RESET, exit.systemEvent());
        ExitStatus.Crash crash =
                assertInstanceOf(ExitStatus.Crash.class, systemEvent(KvmHeaders.KVM_SYSTEM_EVENT_CRASH()));
        assertEquals(VcpuExit.SystemEvent.CRASH, exit.systemEvent());
        assertEquals("system event " + KvmHeaders.KVM_SYSTEM_EVENT_CRASH() + " on vCPU 3", crash.reason());
        ExitStatus.Crash other = assertInstanceOf(ExitStatus.Crash.class, systemEvent(0x7fff_0001));
        assertEquals(VcpuExit.SystemEvent.OTHER, exit.systemEvent());
        assertTrue(other.reason().contains("system event " + 0x7fff_0001), other.reason());
    }

    @Test
    void anEmulationFailureIsACrashNamingItAndItsData() {
        reason(KvmHeaders.KVM_EXIT_INTERNAL_ERROR());
        MemorySegment s = kvm_run.internal(run);
        kvm_run.internal.suberror(s, KvmHeaders.KVM_INTERNAL_ERROR_EMULATION());
        kvm_run.internal.ndata(s, 2);
        kvm_run.internal.data(s, 0, 0xabL);
        kvm_run.internal.data(s, 1, 0xcdL);
        ExitStatus.Crash c = assertInstanceOf(ExitStatus.Crash.class, handle(Kind.INTERNAL_ERROR));
        assertEquals(
                "an instruction KVM cannot emulate on vCPU 3 (KVM_EXIT_INTERNAL_ERROR, suberror "
                        + KvmHeaders.KVM_INTERNAL_ERROR_EMULATION() + ")",
                c.reason());
        assertEquals("internal error data: 0xab 0xcd\nREGS", c.report());
    }

    @ParameterizedTest
    @ValueSource(ints = {17, 1000, -1, Integer.MIN_VALUE})
    void anInternalErrorDataCountPastItsSixteenSlotsIsClamped(int ndata) {
        reason(KvmHeaders.KVM_EXIT_INTERNAL_ERROR());
        MemorySegment s = kvm_run.internal(run);
        kvm_run.internal.suberror(s, 99);
        kvm_run.internal.ndata(s, ndata);
        ExitStatus.Crash c = assertInstanceOf(ExitStatus.Crash.class, handle(Kind.INTERNAL_ERROR));
        assertTrue(c.reason().startsWith("KVM internal error, suberror 99 on vCPU 3"), c.reason());
        int expected = ndata < 0 ? 0 : 16;
        assertEquals(expected, exit.internalDataCount());
        assertEquals(expected, c.report().split("0x", -1).length - 1);
        assertThrows(IndexOutOfBoundsException.class, () -> exit.internalData(16));
    }

    @Test
    void aFailedEntryIsACrashWithTheHardwareReason() {
        reason(KvmHeaders.KVM_EXIT_FAIL_ENTRY());
        kvm_run.fail_entry.hardware_entry_failure_reason(kvm_run.fail_entry(run), 0x80000021L);
        kvm_run.fail_entry.cpu(kvm_run.fail_entry(run), 5);
        ExitStatus.Crash c = assertInstanceOf(ExitStatus.Crash.class, handle(Kind.FAIL_ENTRY));
        assertEquals("KVM could not enter vCPU 3 (KVM_EXIT_FAIL_ENTRY, reason 0x80000021)", c.reason());
        assertEquals(5, exit.failEntryCpu());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 3, 23, 100, -1, Integer.MAX_VALUE})
    void anyOtherReasonIsAnUnexpectedExitCrash(int r) {
        reason(r);
        ExitStatus.Crash c = assertInstanceOf(ExitStatus.Crash.class, handle(Kind.UNKNOWN));
        assertEquals("unexpected exit " + ExitReason.name(r) + " on vCPU 3", c.reason());
        assertEquals(r, exit.reason());
        assertEquals(1, reports);
    }

    @Test
    void aDeviceThatThrowsPropagatesToTheRunner() {
        io.register("bad", 0x10, 1, new BusDevice() {
            public long read(long offset, int size) {
                throw new IllegalStateException("device bug");
            }

            public void write(long offset, int size, long value) {
                throw new IllegalStateException("device bug");
            }
        });
        io(true, 0x10, 1, 1, DATA);
        exit.decode();
        assertThrows(IllegalStateException.class, () -> policy.handle(exit));
    }

    @Test
    void aSegmentSmallerThanKvmRunIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> VcpuExit.over(arena.allocate(kvm_run.sizeof() - 1)));
    }

    /**
     * The hot path (decode and dispatch of I/O, MMIO and wake-up exits) allocates nothing, even interpreted:
     * the thread's allocation counter does not move over many exits. Coarse, but it catches a record or a boxed
     * value per exit (that would be megabytes here). Each exit sits in its own area, laid out once, so the
     * loop runs only the view and the policy, as the vCPU thread does.
     */
    @Test
    void decodingAndDispatchingHotExitsAllocatesNothing() {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        BusDevice sink = new BusDevice() {
            long last;

            public long read(long offset, int size) {
                return last;
            }

            public void write(long offset, int size, long value) {
                last = value;
            }
        };
        io.register("sink", 0x10, 1, sink);
        mmio.register("sink", 0x1000, 0x10, sink);
        VcpuExit[] exits = new VcpuExit[5];
        for (int k = 0; k < exits.length; k++) {
            switch (k) {
                case 0 -> io(true, 0x10, 1, 1, DATA);
                case 1 -> io(false, 0x10, 4, 2, DATA);
                case 2 -> mmioExit(true, 0x1000, 8, 42);
                case 3 -> mmioExit(false, 0x1004, 2, 0);
                default -> reason(KvmHeaders.KVM_EXIT_INTR());
            }
            exits[k] = VcpuExit.over(arena.allocate(AREA, 8).copyFrom(run));
        }
        int n = 20_000;
        long allocated = 0;
        for (int round = 0; round < 3; round++) { // the first rounds warm up (class init, interpreter profiles)
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < n; i++) {
                for (VcpuExit e : exits) {
                    e.decode();
                    if (policy.handle(e) != null) throw new AssertionError(e.kind());
                }
            }
            allocated = threads.getCurrentThreadAllocatedBytes() - before;
        }
        // a 16-byte object per exit would be 1.6 MB here
        assertTrue(
                allocated < 64 * 1024,
                "exit handling allocated " + allocated + " bytes for " + exits.length * n + " exits");
    }
}
