package dev.jvmm.devices.legacy;

import dev.jvmm.core.bus.BusDevice;
import java.time.Clock;
import java.time.DateTimeException;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The MC146818 real-time clock and its CMOS RAM at ports 0x70 (index) and 0x71 (data): claim both as one
 * two-port range at {@link #INDEX_PORT}.
 *
 * <p>The time registers show the host clock in UTC plus an offset the guest sets by writing them (hwclock,
 * NTP's 11-minute sync): in BCD or binary and 12- or 24-hour form as status register B asks. Status A's UIP
 * bit is set in the last 244 µs of each second, as the chip's update cycle is, so drivers that wait for it
 * read consistent values. Status D reports valid RAM. Periodic, alarm and update interrupts (IRQ 8) are not
 * generated: status C reads 0.
 *
 * <p>The memory-size bytes follow QEMU's pc_cmos_init, which firmware and some boot code read: 0x15/0x16 base
 * memory in KiB (at most 640), 0x17/0x18 and 0x30/0x31 KiB above 1 MiB (capped at 0xffff), 0x34/0x35 RAM
 * between 16 MiB and 4 GiB in 64 KiB units, 0x5b-0x5d RAM above 4 GiB in 64 KiB units, 0x5f the vCPU count
 * minus one.
 */
public final class CmosRtc implements BusDevice {
    private static final Logger LOG = LoggerFactory.getLogger(CmosRtc.class);
    public static final int INDEX_PORT = 0x70;
    public static final int PORT_COUNT = 2;

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
    static final int B_SET = 0x80, B_UIE = 0x10, B_BINARY = 0x04, B_24H = 0x02;
    static final int D_VRT = 0x80;
    static final int HOUR_PM = 0x80;
    /** The update cycle's length, during which UIP is set (the chip's 244 µs before the seconds change). */
    static final long UPDATE_NANOS = 244_000;

    private static final long KIB = 1024, MIB = 1024 * KIB;

    private final Clock clock;
    // Guarded by this.
    private final byte[] ram = new byte[128];
    private int index;
    private Duration offset = Duration.ZERO;
    /** While B.SET holds the clock, the time as the guest edits it; applied when SET is cleared. */
    private LocalDateTime held;

    /**
     * An RTC with the host clock and memory bytes for a guest with ramBelow4g bytes of RAM below 4 GiB,
     * ramAbove4g above, and cpus vCPUs.
     */
    public CmosRtc(long ramBelow4g, long ramAbove4g, int cpus) {
        this(Clock.systemUTC(), ramBelow4g, ramAbove4g, cpus);
    }

    CmosRtc(Clock clock, long ramBelow4g, long ramAbove4g, int cpus) {
        if (ramBelow4g < 0 || ramAbove4g < 0 || cpus < 1)
            throw new IllegalArgumentException("RAM " + ramBelow4g + "/" + ramAbove4g + " bytes, " + cpus + " vCPUs");
        this.clock = clock;
        ram[STATUS_A] = 0x26; // 32.768 kHz time base, 1.024 kHz periodic rate
        ram[STATUS_B] = B_24H; // BCD, 24-hour: what a PC BIOS leaves
        ram[STATUS_D] = (byte) D_VRT;
        setMemorySizes(ramBelow4g, ramAbove4g, cpus);
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
            case STATUS_C -> 0; // no interrupt flags: none are generated
            case STATUS_D -> D_VRT;
            default -> ram[reg] & 0xff;
        };
    }

    private void writeRegister(int reg, int v) {
        switch (reg) {
            case SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> setTimeField(reg, v);
            case STATUS_A -> ram[STATUS_A] = (byte) (v & 0x7f); // UIP is read-only
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
}
