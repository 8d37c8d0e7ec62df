package dev.jvmm.core;

import dev.jvmm.kvm.gen.KvmHeaders;
import dev.jvmm.kvm.gen.kvm_run;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Why KVM_RUN returned, decoded from a kvm_run area: the Java form of kvm-ioctls' {@code VcpuExit}. It is a
 * reusable view, not a value: one per vCPU, made once over its kvm_run, and {@link #decode()} after each
 * KVM_RUN reads the exit into plain fields, so the exit loop allocates nothing per exit. What a kind carries
 * is read through the accessors named for it; the others are meaningless for that kind.
 *
 * <p>Everything in kvm_run is checked once, here, before anything acts on it: an I/O exit whose size is not
 * 1, 2 or 4, whose count is not positive, or whose data lies outside the area, and an MMIO exit whose length
 * is not 1 to 8, decode as {@link Kind#MALFORMED} (with the {@link #reason()} they came with), so the
 * {@code io*} and {@code mmio*} accessors of a well-formed exit never reach outside the area.
 *
 * <p>Confined to its vCPU's thread, like kvm_run itself.
 */
public final class VcpuExit {
    /** The exits jvmm tells apart; anything else is {@link #UNKNOWN}. */
    public enum Kind {
        /** Port I/O read (KVM_EXIT_IO, direction in): {@link #ioCount()} items to fill with {@link #setIoData}. */
        IO_IN,
        /** Port I/O write (KVM_EXIT_IO, direction out): {@link #ioCount()} items read with {@link #ioData}. */
        IO_OUT,
        /** MMIO read (KVM_EXIT_MMIO): fill with {@link #setMmioData}. */
        MMIO_READ,
        /** MMIO write (KVM_EXIT_MMIO): the value is {@link #mmioData()}. */
        MMIO_WRITE,
        /** KVM_EXIT_HLT: only without an in-kernel irqchip. */
        HLT,
        /** KVM_EXIT_SHUTDOWN: a triple fault. */
        SHUTDOWN,
        /** KVM_EXIT_SYSTEM_EVENT: see {@link #systemEvent()}. */
        SYSTEM_EVENT,
        /** KVM_EXIT_INTERNAL_ERROR: see {@link #internalSuberror()} and {@link #internalData}. */
        INTERNAL_ERROR,
        /** KVM_EXIT_FAIL_ENTRY: see {@link #failEntryReason()}. */
        FAIL_ENTRY,
        /** KVM_EXIT_IRQ_WINDOW_OPEN: the guest can take an interrupt now. */
        IRQ_WINDOW_OPEN,
        /** KVM_EXIT_INTR: a signal arrived (a kick); nothing to do but enter again. */
        INTR,
        /** An I/O or MMIO exit whose fields are out of range (see the class comment); {@link #reason()} says which. */
        MALFORMED,
        /** Any other exit reason; {@link #reason()} is the raw KVM_EXIT_* value. */
        UNKNOWN
    }

    /** kvm_run.system_event.type. */
    public enum SystemEvent {
        SHUTDOWN,
        RESET,
        CRASH,
        /** A type jvmm does not know; {@link #systemEventType()} is its number. */
        OTHER
    }

    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private static final long EXIT_REASON = kvm_run.exit_reason$offset();
    private static final long IO = kvm_run.io$offset();
    private static final long IO_DIRECTION = IO + kvm_run.io.direction$offset();
    private static final long IO_SIZE = IO + kvm_run.io.size$offset();
    private static final long IO_PORT = IO + kvm_run.io.port$offset();
    private static final long IO_COUNT = IO + kvm_run.io.count$offset();
    private static final long IO_DATA_OFFSET = IO + kvm_run.io.data_offset$offset();
    private static final long MMIO = kvm_run.mmio$offset();
    private static final long MMIO_ADDR = MMIO + kvm_run.mmio.phys_addr$offset();
    private static final long MMIO_DATA = MMIO + kvm_run.mmio.data$offset();
    private static final long MMIO_LEN = MMIO + kvm_run.mmio.len$offset();
    private static final long MMIO_IS_WRITE = MMIO + kvm_run.mmio.is_write$offset();
    private static final long SYSTEM_EVENT_TYPE = kvm_run.system_event$offset() + kvm_run.system_event.type$offset();
    private static final long INTERNAL = kvm_run.internal$offset();
    private static final long INTERNAL_SUBERROR = INTERNAL + kvm_run.internal.suberror$offset();
    private static final long INTERNAL_NDATA = INTERNAL + kvm_run.internal.ndata$offset();
    private static final long INTERNAL_DATA = INTERNAL + kvm_run.internal.data$offset();
    /** kvm_run.internal.data has 16 slots; ndata is clamped to them. */
    public static final int MAX_INTERNAL_DATA = 16;

    private static final long FAIL_ENTRY_REASON =
            kvm_run.fail_entry$offset() + kvm_run.fail_entry.hardware_entry_failure_reason$offset();
    private static final long FAIL_ENTRY_CPU = kvm_run.fail_entry$offset() + kvm_run.fail_entry.cpu$offset();

    static final int EXIT_IO = KvmHeaders.KVM_EXIT_IO();
    static final int EXIT_MMIO = KvmHeaders.KVM_EXIT_MMIO();
    static final int EXIT_HLT = KvmHeaders.KVM_EXIT_HLT();
    static final int EXIT_SHUTDOWN = KvmHeaders.KVM_EXIT_SHUTDOWN();
    static final int EXIT_SYSTEM_EVENT = KvmHeaders.KVM_EXIT_SYSTEM_EVENT();
    static final int EXIT_INTERNAL_ERROR = KvmHeaders.KVM_EXIT_INTERNAL_ERROR();
    static final int EXIT_FAIL_ENTRY = KvmHeaders.KVM_EXIT_FAIL_ENTRY();
    static final int EXIT_IRQ_WINDOW_OPEN = KvmHeaders.KVM_EXIT_IRQ_WINDOW_OPEN();
    static final int EXIT_INTR = KvmHeaders.KVM_EXIT_INTR();
    private static final int IO_OUT = KvmHeaders.KVM_EXIT_IO_OUT();
    private static final int EVENT_SHUTDOWN = KvmHeaders.KVM_SYSTEM_EVENT_SHUTDOWN();
    private static final int EVENT_RESET = KvmHeaders.KVM_SYSTEM_EVENT_RESET();
    private static final int EVENT_CRASH = KvmHeaders.KVM_SYSTEM_EVENT_CRASH();

    private final MemorySegment run;
    private Kind kind = Kind.UNKNOWN;
    private int reason;
    private int port;
    private int size;
    private int count;
    private long dataOffset;
    private long address;

    private VcpuExit(MemorySegment run) {
        this.run = run;
    }

    /** A view over a kvm_run area (a vCPU's mmap, or any segment laid out like one, in tests). */
    public static VcpuExit over(MemorySegment run) {
        if (run.byteSize() < kvm_run.sizeof())
            throw new IllegalArgumentException(
                    "a kvm_run area needs " + kvm_run.sizeof() + " bytes, this one has " + run.byteSize());
        return new VcpuExit(run);
    }

    /** Reads the exit KVM_RUN just left in the area; the accessors then describe it until the next decode. */
    public Kind decode() {
        int r = run.get(U32, EXIT_REASON);
        reason = r;
        Kind k;
        if (r == EXIT_IO) k = decodeIo();
        else if (r == EXIT_MMIO) k = decodeMmio();
        else if (r == EXIT_IRQ_WINDOW_OPEN) k = Kind.IRQ_WINDOW_OPEN;
        else if (r == EXIT_INTR) k = Kind.INTR;
        else if (r == EXIT_HLT) k = Kind.HLT;
        else if (r == EXIT_SHUTDOWN) k = Kind.SHUTDOWN;
        else if (r == EXIT_SYSTEM_EVENT) k = Kind.SYSTEM_EVENT;
        else if (r == EXIT_INTERNAL_ERROR) k = Kind.INTERNAL_ERROR;
        else if (r == EXIT_FAIL_ENTRY) k = Kind.FAIL_ENTRY;
        else k = Kind.UNKNOWN;
        kind = k;
        return k;
    }

    private Kind decodeIo() {
        port = run.get(U16, IO_PORT) & 0xffff;
        size = run.get(U8, IO_SIZE) & 0xff;
        count = run.get(U32, IO_COUNT);
        dataOffset = run.get(U64, IO_DATA_OFFSET);
        if (size != 1 && size != 2 && size != 4) return Kind.MALFORMED;
        // count and data_offset are unsigned in C: a huge count is negative here, a huge offset too
        if (count <= 0
                || dataOffset < 0
                || dataOffset > run.byteSize()
                || (long) count * size > run.byteSize() - dataOffset) return Kind.MALFORMED;
        return run.get(U8, IO_DIRECTION) == IO_OUT ? Kind.IO_OUT : Kind.IO_IN;
    }

    private Kind decodeMmio() {
        address = run.get(U64, MMIO_ADDR);
        size = run.get(U32, MMIO_LEN);
        if (size < 1 || size > 8) return Kind.MALFORMED;
        return run.get(U8, MMIO_IS_WRITE) != 0 ? Kind.MMIO_WRITE : Kind.MMIO_READ;
    }

    /** What the last {@link #decode()} found. */
    public Kind kind() {
        return kind;
    }

    /** The raw KVM_EXIT_* value of the last decode (see {@link ExitReason#name}). */
    public int reason() {
        return reason;
    }

    /** IO_IN, IO_OUT: the port. */
    public int ioPort() {
        return port;
    }

    /** IO_IN, IO_OUT: the size of one item, 1, 2 or 4 bytes. */
    public int ioSize() {
        return size;
    }

    /** IO_IN, IO_OUT: how many items (more than one for string I/O, rep insb/outsb), at least 1. */
    public int ioCount() {
        return count;
    }

    /** IO_OUT: item i (0 <= i < ioCount()), zero-extended. */
    public long ioData(int i) {
        return readValue(ioItem(i), size);
    }

    /** IO_IN: sets item i (0 <= i < ioCount()) to the low ioSize() bytes of value. */
    public void setIoData(int i, long value) {
        writeValue(ioItem(i), size, value);
    }

    private long ioItem(int i) {
        if (i < 0 || i >= count || (kind != Kind.IO_IN && kind != Kind.IO_OUT))
            throw new IndexOutOfBoundsException("I/O item " + i + " of a " + kind + " exit with " + count + " items");
        return dataOffset + (long) i * size;
    }

    /** MMIO_READ, MMIO_WRITE: the guest-physical address. */
    public long mmioAddress() {
        return address;
    }

    /** MMIO_READ, MMIO_WRITE: the access length, 1 to 8 bytes. */
    public int mmioLength() {
        return size;
    }

    /** MMIO_WRITE: the value written, zero-extended. */
    public long mmioData() {
        checkMmio();
        return readValue(MMIO_DATA, size);
    }

    /** MMIO_READ: sets the value the guest reads to the low mmioLength() bytes of value. */
    public void setMmioData(long value) {
        checkMmio();
        writeValue(MMIO_DATA, size, value);
    }

    private void checkMmio() {
        if (kind != Kind.MMIO_READ && kind != Kind.MMIO_WRITE)
            throw new IllegalStateException("MMIO data of a " + kind + " exit");
    }

    /** SYSTEM_EVENT: its type, as far as jvmm knows it. */
    public SystemEvent systemEvent() {
        int t = systemEventType();
        if (t == EVENT_SHUTDOWN) return SystemEvent.SHUTDOWN;
        if (t == EVENT_RESET) return SystemEvent.RESET;
        if (t == EVENT_CRASH) return SystemEvent.CRASH;
        return SystemEvent.OTHER;
    }

    /** SYSTEM_EVENT: the raw KVM_SYSTEM_EVENT_* type. */
    public int systemEventType() {
        return run.get(U32, SYSTEM_EVENT_TYPE);
    }

    /** INTERNAL_ERROR: the KVM_INTERNAL_ERROR_* suberror. */
    public int internalSuberror() {
        return run.get(U32, INTERNAL_SUBERROR);
    }

    /** INTERNAL_ERROR: how many data words there are, clamped to 0..{@value #MAX_INTERNAL_DATA}. */
    public int internalDataCount() {
        int n = run.get(U32, INTERNAL_NDATA);
        return n < 0 ? 0 : Math.min(n, MAX_INTERNAL_DATA); // a huge unsigned ndata is negative here
    }

    /** INTERNAL_ERROR: data word i (0 <= i < internalDataCount()). */
    public long internalData(int i) {
        if (i < 0 || i >= internalDataCount())
            throw new IndexOutOfBoundsException("internal error data " + i + " of " + internalDataCount());
        return run.get(U64, INTERNAL_DATA + 8L * i);
    }

    /** FAIL_ENTRY: the hardware's entry failure reason. */
    public long failEntryReason() {
        return run.get(U64, FAIL_ENTRY_REASON);
    }

    /** FAIL_ENTRY: the physical CPU it failed on. */
    public int failEntryCpu() {
        return run.get(U32, FAIL_ENTRY_CPU);
    }

    /** MALFORMED: the fields that made it so, for a report. Allocates; not for the hot path. */
    public String describeMalformed() {
        if (reason == EXIT_IO)
            return String.format(
                    "KVM_EXIT_IO with port 0x%x, size %d, count %d, data_offset 0x%x in a %d-byte kvm_run",
                    port, size, Integer.toUnsignedLong(count), dataOffset, run.byteSize());
        if (reason == EXIT_MMIO)
            return String.format("KVM_EXIT_MMIO at 0x%x with length %d", address, Integer.toUnsignedLong(size));
        return "exit " + ExitReason.name(reason);
    }

    private long readValue(long offset, int n) {
        return switch (n) {
            case 1 -> run.get(U8, offset) & 0xffL;
            case 2 -> run.get(U16, offset) & 0xffffL;
            case 4 -> run.get(U32, offset) & 0xffff_ffffL;
            case 8 -> run.get(U64, offset);
            default -> {
                long v = 0;
                for (int i = 0; i < n; i++) v |= (run.get(U8, offset + i) & 0xffL) << (8 * i);
                yield v;
            }
        };
    }

    private void writeValue(long offset, int n, long value) {
        switch (n) {
            case 1 -> run.set(U8, offset, (byte) value);
            case 2 -> run.set(U16, offset, (short) value);
            case 4 -> run.set(U32, offset, (int) value);
            case 8 -> run.set(U64, offset, value);
            default -> {
                for (int i = 0; i < n; i++) run.set(U8, offset + i, (byte) (value >>> (8 * i)));
            }
        }
    }
}
