package dev.jvmm.devices.legacy;

import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import java.time.Clock;
import java.time.DateTimeException;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The MC146818 real-time clock and its CMOS RAM at ports 0x70 (index) and 0x71 (data): claim both as one
 * two-port range at {@link #INDEX_PORT}.
 *
 * <p>The time registers show the host clock in UTC plus an offset the guest sets by writing them (hwclock,
 * NTP's 11-minute sync): in BCD or binary and 12- or 24-hour form as status register B asks. Status A's UIP
 * bit is set in the last 244 µs of each second, as the chip's update cycle is, so drivers that wait for it
 * read consistent values. Status D reports valid RAM.
 *
 * <p>Status C latches the chip's three events until the guest reads it: the periodic flag at the rate status A's
 * low bits select, the update-ended flag at each second of the guest's clock, and the alarm flag when the time
 * matches the alarm registers (a byte of 0xc0-0xff matches anything). Those enabled in status B raise IRQ 8,
 * held high until status C is read, as Linux's rtc-cmos expects for hwclock's clock-tick wait and for wake
 * alarms. Flags are worked out from the clock when read; a timer thread exists only while an interrupt is enabled,
 * and wakes only for the next enabled event.
 *
 * <p>The memory-size bytes follow QEMU's pc_cmos_init, which firmware and some boot code read: 0x15/0x16 base
 * memory in KiB (at most 640), 0x17/0x18 and 0x30/0x31 KiB above 1 MiB (capped at 0xffff), 0x34/0x35 RAM
 * between 16 MiB and 4 GiB in 64 KiB units, 0x5b-0x5d RAM above 4 GiB in 64 KiB units, 0x5f the vCPU count
 * minus one.
 */
public final class CmosRtc implements BusDevice, AutoCloseable, Snapshottable {
    private static final Logger LOG = LoggerFactory.getLogger(CmosRtc.class);
    public static final int INDEX_PORT = 0x70;
    public static final int PORT_COUNT = 2;
    /** The ISA interrupt of a PC's RTC (Linux's rtc-cmos assumes it where ACPI names none). */
    public static final int IRQ = 8;

    static final int SECONDS = 0x00,
            SECONDS_ALARM = 0x01,
            MINUTES = 0x02,
            MINUTES_ALARM = 0x03,
            HOURS = 0x04,
            HOURS_ALARM = 0x05,
            DAY_OF_WEEK = 0x06,
            DAY_OF_MONTH = 0x07,
            MONTH = 0x08,
            YEAR = 0x09;
    static final int STATUS_A = 0x0a, STATUS_B = 0x0b, STATUS_C = 0x0c, STATUS_D = 0x0d;
    static final int CENTURY = 0x32;
    static final int A_UIP = 0x80;
    static final int B_SET = 0x80, B_PIE = 0x40, B_AIE = 0x20, B_UIE = 0x10, B_BINARY = 0x04, B_24H = 0x02;
    static final int C_IRQF = 0x80, C_PF = 0x40, C_AF = 0x20, C_UF = 0x10;
    static final int EVENTS = C_PF | C_AF | C_UF; // the same bits enable them in status B
    /** An alarm byte with both top bits set matches every value. */
    static final int ALARM_ANY = 0xc0;

    static final int D_VRT = 0x80;
    static final int HOUR_PM = 0x80;
    /** The update cycle's length, during which UIP is set (the chip's 244 µs before the seconds change). */
    static final long UPDATE_NANOS = 244_000;

    private static final long KIB = 1024, MIB = 1024 * KIB;
    private static final long SECOND_NANOS = 1_000_000_000L, DAY_SECONDS = 86_400;

    private final Clock clock;
    private final IrqLine irq;
    // Guarded by this.
    private final byte[] ram = new byte[128];
    private int index;
    /** Guest time minus host time: whole seconds, as the guest can only set whole seconds. */
    private Duration offset = Duration.ZERO;
    /** While B.SET holds the clock, the time as the guest edits it; applied when SET is cleared. */
    private LocalDateTime held;
    /** The status C bits latched since the guest last read it. */
    private int flags;

    private boolean irqHigh;
    /** The guest-clock second whose update cycle was last accounted for in {@link #flags}. */
    private long lastUpdateSecond;
    /** When the next periodic flag is due, in host-clock nanoseconds since the epoch (0: no periodic rate). */
    private long nextPeriodicNanos;

    private ScheduledExecutorService timer;
    private ScheduledFuture<?> wakeup;
    private boolean closed;
    /** Held for a snapshot: no timer runs and the line does not move until resumed. */
    private boolean quiesced;

    /**
     * An RTC with the host clock and memory bytes for a guest with ramBelow4g bytes of RAM below 4 GiB,
     * ramAbove4g above, and cpus vCPUs.
     */
    public CmosRtc(IrqLine irq, long ramBelow4g, long ramAbove4g, int cpus) {
        this(Clock.systemUTC(), irq, ramBelow4g, ramAbove4g, cpus);
    }

    CmosRtc(Clock clock, IrqLine irq, long ramBelow4g, long ramAbove4g, int cpus) {
        if (ramBelow4g < 0 || ramAbove4g < 0 || cpus < 1)
            throw new IllegalArgumentException("RAM " + ramBelow4g + "/" + ramAbove4g + " bytes, " + cpus + " vCPUs");
        this.clock = clock;
        this.irq = Objects.requireNonNull(irq, "irq");
        ram[STATUS_A] = 0x26; // 32.768 kHz time base, 1.024 kHz periodic rate
        ram[STATUS_B] = B_24H; // BCD, 24-hour: what a PC BIOS leaves
        ram[STATUS_D] = (byte) D_VRT;
        setMemorySizes(ramBelow4g, ramAbove4g, cpus);
        lastUpdateSecond = guestSecond(hostNanos());
        nextPeriodicNanos = hostNanos() + periodNanos();
    }

    private void setMemorySizes(long below4g, long above4g, int cpus) {
        long base = Math.min(below4g / KIB, 640);
        setWord(0x15, base);
        long extended = below4g > MIB ? Math.min((below4g - MIB) / KIB, 0xffff) : 0;
        setWord(0x17, extended);
        setWord(0x30, extended);
        long above16m = below4g > 16 * MIB ? Math.min((below4g - 16 * MIB) / (64 * KIB), 0xffff) : 0;
        setWord(0x34, above16m);
        long high = above4g / (64 * KIB);
        ram[0x5b] = (byte) high;
        ram[0x5c] = (byte) (high >> 8);
        ram[0x5d] = (byte) (high >> 16);
        ram[0x5f] = (byte) (Math.min(cpus, 256) - 1);
    }

    private void setWord(int at, long v) {
        ram[at] = (byte) v;
        ram[at + 1] = (byte) (v >> 8);
    }

    @Override
    public synchronized long read(long offset, int size) {
        long v = 0;
        for (int i = 0; i < size; i++) {
            long port = offset + i;
            int b = port == 1 ? readRegister(index) : 0xff; // the index port is write-only
            v |= (long) b << (8 * i);
        }
        return v;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        for (int i = 0; i < size; i++) {
            long port = offset + i;
            int b = (int) (value >>> (8 * i)) & 0xff;
            // Bit 7 of the index port masks NMIs on a PC; it is not part of the address.
            if (port == 0) index = b & 0x7f;
            else if (port == 1) writeRegister(index, b);
        }
    }

    private int readRegister(int reg) {
        return switch (reg) {
            case SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> encodeTime(reg, now());
            case STATUS_A -> (ram[STATUS_A] & 0x7f) | (updateInProgress() ? A_UIP : 0);
            case STATUS_C -> readStatusC();
            case STATUS_D -> D_VRT;
            default -> ram[reg] & 0xff;
        };
    }

    private void writeRegister(int reg, int v) {
        switch (reg) {
            case SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> setTimeField(reg, v);
            case STATUS_A -> writeStatusA(v);
            case STATUS_B -> writeStatusB(v);
            case STATUS_C, STATUS_D -> {} // read-only
            default -> ram[reg] = (byte) v;
        }
    }

    private void writeStatusB(int v) {
        boolean wasSet = (ram[STATUS_B] & B_SET) != 0;
        boolean set = (v & B_SET) != 0;
        if (set) v &= ~B_UIE; // setting SET clears UIE on the chip
        if (set && !wasSet) {
            held = now();
        } else if (!set && wasSet) {
            applyTime(held);
            held = null;
        }
        ram[STATUS_B] = (byte) v;
        updateInterrupt();
    }

    private void writeStatusA(int v) {
        int oldRate = ram[STATUS_A] & 0x0f;
        ram[STATUS_A] = (byte) (v & 0x7f); // UIP is read-only
        if ((v & 0x0f) != oldRate) {
            latchEvents(hostNanos()); // what the old rate produced stays latched
            long period = periodNanos();
            nextPeriodicNanos = period == 0 ? 0 : hostNanos() + period;
        }
        updateInterrupt();
    }

    private int readStatusC() {
        latchEvents(hostNanos());
        int v = flags;
        if ((v & ram[STATUS_B] & EVENTS) != 0) v |= C_IRQF;
        flags = 0; // reading acknowledges every event
        updateInterrupt();
        return v;
    }

    /** The periodic interrupt's period for status A's rate bits (0: none), as the chip's 32.768 kHz divider gives. */
    private long periodNanos() {
        int rate = ram[STATUS_A] & 0x0f;
        if (rate == 0) return 0;
        if (rate <= 2) rate += 7; // rates 1 and 2 repeat 8 and 9 (256 and 128 Hz)
        return (SECOND_NANOS << rate) / 65536;
    }

    /** Sets the flags of the events that happened up to host time now. */
    private void latchEvents(long now) {
        long second = guestSecond(now);
        if (held != null) {
            lastUpdateSecond = second; // SET stops the update cycle: no update, no alarm
        } else if (second > lastUpdateSecond) {
            flags |= C_UF;
            if (alarmRangMatches(lastUpdateSecond + 1, second)) flags |= C_AF;
            lastUpdateSecond = second;
        }
        long period = periodNanos();
        if (period != 0 && nextPeriodicNanos != 0 && now >= nextPeriodicNanos) {
            flags |= C_PF;
            nextPeriodicNanos += ((now - nextPeriodicNanos) / period + 1) * period;
        }
    }

    /** Whether the alarm matches the guest time at any second from first to last (guest epoch seconds). */
    private boolean alarmRangMatches(long first, long last) {
        // The alarm compares hours, minutes and seconds only, so every value it can match recurs within a day.
        for (long s = Math.max(first, last - DAY_SECONDS + 1); s <= last; s++) {
            LocalDateTime t = LocalDateTime.ofEpochSecond(s, 0, ZoneOffset.UTC);
            if (alarmField(SECONDS_ALARM, SECONDS, t)
                    && alarmField(MINUTES_ALARM, MINUTES, t)
                    && alarmField(HOURS_ALARM, HOURS, t)) return true;
        }
        return false;
    }

    private boolean alarmField(int alarmReg, int timeReg, LocalDateTime t) {
        int alarm = ram[alarmReg] & 0xff;
        return (alarm & ALARM_ANY) == ALARM_ANY || alarm == encodeTime(timeReg, t);
    }

    /**
     * Drives IRQ 8 from the latched flags and the enables, and arms the timer for the next enabled event. The line
     * stays high from the first enabled event until status C is read, as the chip's IRQ output does.
     */
    private void updateInterrupt() {
        if (closed || quiesced) return;
        long now = hostNanos();
        latchEvents(now);
        int enabled = ram[STATUS_B] & EVENTS;
        boolean high = (flags & enabled) != 0;
        if (high != irqHigh) {
            irqHigh = high;
            irq.set(high); // under the lock, so the line follows the register's order
        }
        if (wakeup != null) {
            wakeup.cancel(false);
            wakeup = null;
        }
        if (high || enabled == 0) return; // nothing to signal before the guest reads status C
        long next = Long.MAX_VALUE;
        if ((enabled & (C_UF | C_AF)) != 0) next = nextSecondNanos(now);
        if ((enabled & C_PF) != 0 && nextPeriodicNanos != 0) next = Math.min(next, nextPeriodicNanos);
        if (next == Long.MAX_VALUE) return;
        if (timer == null) {
            timer = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "rtc timer");
                t.setDaemon(true);
                return t;
            });
        }
        wakeup = timer.schedule(this::tick, Math.max(0, next - now), TimeUnit.NANOSECONDS);
    }

    /** The timer's wake-up: latches what happened and raises the line for it. */
    synchronized void tick() {
        updateInterrupt();
    }

    /**
     * Host time (nanoseconds since the epoch) at which the guest's clock next starts a second: the offset is whole
     * seconds, so the guest's seconds start with the host's.
     */
    private static long nextSecondNanos(long now) {
        return now + (SECOND_NANOS - Math.floorMod(now, SECOND_NANOS));
    }

    /** The guest clock's second at a host time (the offset, up to thousands of years, kept out of nanoseconds). */
    private long guestSecond(long hostNanos) {
        return Math.floorDiv(hostNanos, SECOND_NANOS) + offset.getSeconds();
    }

    private long hostNanos() {
        Instant i = clock.instant();
        return i.getEpochSecond() * SECOND_NANOS + i.getNano();
    }

    /** The time the guest sees: the held time while SET is on, else the host clock plus the guest's offset. */
    private LocalDateTime now() {
        if (held != null) return held;
        return LocalDateTime.ofInstant(clock.instant().plus(offset), ZoneOffset.UTC);
    }

    private boolean updateInProgress() {
        if (held != null) return false; // SET stops the update cycle
        int nanos = clock.instant().plus(offset).getNano();
        return nanos >= 1_000_000_000 - UPDATE_NANOS;
    }

    private void applyTime(LocalDateTime t) {
        Instant host = clock.instant();
        // The new second starts now: drop the host's sub-second part from the offset's reference.
        offset = Duration.between(host.minusNanos(host.getNano()), t.withNano(0).toInstant(ZoneOffset.UTC));
        lastUpdateSecond = guestSecond(hostNanos()); // a new time is not an update cycle
    }

    private boolean binary() {
        return (ram[STATUS_B] & B_BINARY) != 0;
    }

    private boolean hours24() {
        return (ram[STATUS_B] & B_24H) != 0;
    }

    private int encodeTime(int reg, LocalDateTime t) {
        return switch (reg) {
            case SECONDS -> encode(t.getSecond());
            case MINUTES -> encode(t.getMinute());
            case HOURS -> {
                int h = t.getHour();
                if (hours24()) yield encode(h);
                int h12 = h % 12 == 0 ? 12 : h % 12;
                yield encode(h12) | (h >= 12 ? HOUR_PM : 0);
            }
            case DAY_OF_WEEK -> t.getDayOfWeek().getValue() % 7 + 1; // 1 = Sunday; the same in BCD
            case DAY_OF_MONTH -> encode(t.getDayOfMonth());
            case MONTH -> encode(t.getMonthValue());
            case YEAR -> encode(t.getYear() % 100);
            case CENTURY -> encode(t.getYear() / 100 % 100);
            default -> throw new IllegalArgumentException("register " + reg);
        };
    }

    private int encode(int v) {
        return binary() ? v : ((v / 10) << 4) | (v % 10);
    }

    /** The value of a BCD or binary byte, or -1 when it is not a valid number in that form. */
    private int decode(int v) {
        if (binary()) return v;
        int hi = v >> 4, lo = v & 0xf;
        return hi > 9 || lo > 9 ? -1 : hi * 10 + lo;
    }

    private void setTimeField(int reg, int v) {
        LocalDateTime t = now();
        LocalDateTime next;
        try {
            next = switch (reg) {
                case SECONDS -> t.withSecond(checked(decode(v)));
                case MINUTES -> t.withMinute(checked(decode(v)));
                case HOURS -> t.withHour(checked(decodeHour(v)));
                case DAY_OF_WEEK -> t; // derived from the date
                case DAY_OF_MONTH -> t.withDayOfMonth(checked(decode(v)));
                case MONTH -> t.withMonth(checked(decode(v)));
                case YEAR -> t.withYear(t.getYear() / 100 * 100 + checked(decode(v)));
                case CENTURY -> t.withYear(checked(decode(v)) * 100 + t.getYear() % 100);
                default -> throw new IllegalArgumentException("register " + reg);
            };
        } catch (DateTimeException e) {
            // A value no clock can show (BCD 0x99 seconds, 31 February): the chip would keep counting from
            // garbage; here the field keeps its value, which is at least a time.
            LOG.debug(
                    "rtc: ignored invalid value 0x{} for register 0x{}",
                    Integer.toHexString(v),
                    Integer.toHexString(reg));
            return;
        }
        if (held != null) held = next;
        else applyTime(next);
        updateInterrupt();
    }

    private int decodeHour(int v) {
        if (hours24()) return decode(v);
        int h = decode(v & 0x7f);
        if (h < 1 || h > 12) return -1;
        return h % 12 + ((v & HOUR_PM) != 0 ? 12 : 0);
    }

    private static int checked(int v) {
        if (v < 0) throw new DateTimeException("not a number");
        return v;
    }

    /** A byte of CMOS RAM as the guest would read it (for the machine builder's checks and tests). */
    public synchronized int readCmos(int reg) {
        if (reg < 0 || reg > 0x7f) throw new IllegalArgumentException("CMOS register 0x" + Integer.toHexString(reg));
        return readRegister(reg);
    }

    // ---- snapshots

    static final int STATE_VERSION = 1;

    @Override
    public String snapshotId() {
        return "rtc@0x" + Integer.toHexString(INDEX_PORT);
    }

    @Override
    public int snapshotVersion() {
        return STATE_VERSION;
    }

    @Override
    public synchronized void quiesce() {
        quiesced = true;
        if (wakeup != null) {
            wakeup.cancel(false);
            wakeup = null;
        }
    }

    @Override
    public synchronized void resumeAfterSnapshot() {
        quiesced = false;
        updateInterrupt();
    }

    /**
     * The guest clock is saved as its offset from the host's clock, so a restored guest reads the host's time plus
     * the same offset, as a PC's battery-backed clock goes on while the machine is off. The update cycle and the
     * periodic timer are saved relative to the moment of the snapshot.
     */
    @Override
    public synchronized void saveState(StateOutput out) {
        long now = hostNanos();
        latchEvents(now);
        out.raw(ram).u8(index).u64(offset.getSeconds()).u32(offset.getNano());
        out.bool(held != null);
        if (held != null) out.u64(held.toEpochSecond(ZoneOffset.UTC)).u32(held.getNano());
        out.u8(flags).bool(irqHigh);
        out.u64(guestSecond(now) - lastUpdateSecond);
        out.u64(nextPeriodicNanos == 0 ? -1 : nextPeriodicNanos - now);
    }

    @Override
    public synchronized void restoreState(int version, StateInput in) {
        byte[] nRam = in.raw("CMOS RAM", ram.length);
        int nIndex = in.u8("index");
        long offsetSeconds = in.u64("clock offset seconds");
        int offsetNanos = in.u32("clock offset nanoseconds");
        LocalDateTime nHeld = null;
        boolean hasHeld = in.bool("clock held");
        long heldSecond = hasHeld ? in.u64("held time") : 0;
        int heldNano = hasHeld ? in.u32("held time nanoseconds") : 0;
        int nFlags = in.u8("status C flags");
        boolean nIrq = in.bool("IRQ level");
        long sinceUpdate = in.u64("seconds since the last update cycle");
        long untilPeriodic = in.u64("nanoseconds to the periodic interrupt");
        in.expectEnd();
        try {
            if (offsetNanos < 0 || offsetNanos >= 1_000_000_000 || nIndex > 0x7f || (nFlags & ~EVENTS) != 0)
                throw new DateTimeException("out of range");
            if (hasHeld) nHeld = LocalDateTime.ofEpochSecond(heldSecond, heldNano, ZoneOffset.UTC);
            Instant.now(clock).plus(Duration.ofSeconds(offsetSeconds, offsetNanos)); // representable
        } catch (DateTimeException | ArithmeticException e) {
            throw new SnapshotException(
                    SnapshotException.Kind.CORRUPT,
                    in.where() + ": index 0x" + Integer.toHexString(nIndex) + ", clock offset " + offsetSeconds
                            + " s + " + offsetNanos + " ns, status C 0x" + Integer.toHexString(nFlags)
                            + (hasHeld ? ", held time " + heldSecond + " s" : "") + " are not an RTC's state");
        }
        System.arraycopy(nRam, 0, ram, 0, ram.length);
        index = nIndex;
        offset = Duration.ofSeconds(offsetSeconds, offsetNanos);
        held = nHeld;
        flags = nFlags;
        long now = hostNanos();
        lastUpdateSecond = guestSecond(now) - Math.max(0, Math.min(sinceUpdate, DAY_SECONDS));
        long period = periodNanos();
        nextPeriodicNanos = period == 0 || untilPeriodic == -1 ? 0 : now + Math.max(0, Math.min(untilPeriodic, period));
        irqHigh = nIrq;
        irq.set(nIrq); // whatever the restored interrupt controller holds
        updateInterrupt();
    }

    /** Stops the timer; the line is left as it is (the VM is going away). */
    @Override
    public synchronized void close() {
        closed = true;
        if (timer != null) timer.shutdownNow();
    }
}
