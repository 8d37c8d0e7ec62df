package dev.jvmm.devices.legacy;

import dev.jvmm.core.ExitStatus;
import dev.jvmm.core.VmControl;
import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.snapshot.SnapshotException;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The PC keyboard controller (i8042), without a keyboard or mouse behind it: enough for Linux's i8042 driver
 * to probe the controller cleanly and for the reset paths (command 0xFE, and the output port's reset bit)
 * that Linux uses with reboot=k. A reset ends the run with {@link ExitStatus.Reset}.
 *
 * <p>Bytes sent to the keyboard or the mouse get the controller's answer for a device that does not
 * respond: 0xFE with the time-out status bit, so a driver's probe fails at once instead of waiting.
 * The data port (0x60) and the status/command port (0x64) are two one-byte claims: register
 * {@link #dataPort()} and {@link #commandPort()}.
 */
public final class I8042 implements Snapshottable {
    private static final Logger LOG = LoggerFactory.getLogger(I8042.class);
    public static final int DATA_PORT = 0x60;
    public static final int COMMAND_PORT = 0x64;
    public static final int KEYBOARD_IRQ = 1;
    public static final int AUX_IRQ = 12;

    // Status register.
    static final int STR_OBF = 0x01,
            STR_IBF = 0x02,
            STR_SYS = 0x04,
            STR_CMD = 0x08,
            STR_UNLOCKED = 0x10,
            STR_AUXDATA = 0x20,
            STR_TIMEOUT = 0x40;
    // Command byte (controller RAM byte 0).
    static final int CTR_KBDINT = 0x01,
            CTR_AUXINT = 0x02,
            CTR_SYS = 0x04,
            CTR_KBDDIS = 0x10,
            CTR_AUXDIS = 0x20,
            CTR_XLATE = 0x40;
    // Output port.
    static final int OUT_RESET = 0x01, OUT_A20 = 0x02, OUT_KBD_OBF = 0x10, OUT_AUX_OBF = 0x20;
    /** What a device that does not answer leaves in the output buffer. */
    static final int NO_DEVICE = 0xfe;
    /** Bytes the controller queues for the guest before dropping (a real one holds one; a guest may not read). */
    static final int OUTPUT_QUEUE = 16;

    private final VmControl control;
    private final IrqLine keyboardIrq;
    private final IrqLine auxIrq;
    private final BusDevice dataPort = new Port(false);
    private final BusDevice commandPort = new Port(true);

    // Guarded by this.
    private final byte[] ram = new byte[32]; // ram[0] is the command byte
    private int outputPort = OUT_RESET | OUT_A20;
    private int pendingCommand = -1; // a command waiting for its data byte
    private boolean lastWriteWasCommand;
    // Output queue: value | FROM_AUX | TIMED_OUT per entry.
    private static final int FROM_AUX = 0x100, TIMED_OUT = 0x200;
    private final int[] queue = new int[OUTPUT_QUEUE];
    private int queueHead;
    private int queueCount;
    private int lastRead;
    private boolean keyboardLevel;
    private boolean auxLevel;

    /** A controller without interrupt lines (polling guests, the reset path). */
    public I8042(VmControl control) {
        this(control, high -> {}, high -> {});
    }

    /** A controller raising IRQ 1 for keyboard-side and IRQ 12 for mouse-side data, as enabled by the guest. */
    public I8042(VmControl control, IrqLine keyboardIrq, IrqLine auxIrq) {
        this.control = Objects.requireNonNull(control, "control");
        this.keyboardIrq = Objects.requireNonNull(keyboardIrq, "keyboardIrq");
        this.auxIrq = Objects.requireNonNull(auxIrq, "auxIrq");
        // As firmware leaves it: translation on, POST passed, keyboard interrupt enabled.
        ram[0] = (byte) (CTR_XLATE | CTR_SYS | CTR_KBDINT);
    }

    /** The device to register at port 0x60 (one byte). */
    public BusDevice dataPort() {
        return dataPort;
    }

    /** The device to register at port 0x64 (one byte). */
    public BusDevice commandPort() {
        return commandPort;
    }

    private final class Port implements BusDevice {
        private final boolean command;

        Port(boolean command) {
            this.command = command;
        }

        @Override
        public long read(long offset, int size) {
            // Only the first byte is this port; the rest of a wider read floats.
            long rest = size >= 8 ? -1L << 8 : ((1L << (8 * size)) - 1) & ~0xffL;
            if (offset != 0) return size >= 8 ? -1L : (1L << (8 * size)) - 1;
            return rest | (command ? readStatus() : readData());
        }

        @Override
        public void write(long offset, int size, long value) {
            if (offset != 0) return;
            if (command) writeCommand((int) value & 0xff);
            else writeData((int) value & 0xff);
        }
    }

    synchronized int readStatus() {
        int s = STR_UNLOCKED | (ram[0] & CTR_SYS) | (lastWriteWasCommand ? STR_CMD : 0);
        if (queueCount > 0) {
            int head = queue[queueHead];
            s |= STR_OBF;
            if ((head & FROM_AUX) != 0) s |= STR_AUXDATA;
            if ((head & TIMED_OUT) != 0) s |= STR_TIMEOUT;
        }
        // STR_IBF stays clear: every write is handled before the guest can look again.
        return s;
    }

    synchronized int readData() {
        if (queueCount > 0) {
            lastRead = queue[queueHead] & 0xff;
            queueHead = (queueHead + 1) % OUTPUT_QUEUE;
            queueCount--;
            updateIrqs();
        }
        // An empty output buffer still holds its last byte.
        return lastRead;
    }

    void writeCommand(int cmd) {
        boolean reset = false;
        synchronized (this) {
            lastWriteWasCommand = true;
            pendingCommand = -1;
            if (cmd >= 0x20 && cmd <= 0x3f) {
                output(ram[cmd & 0x1f] & 0xff, false, false);
            } else if ((cmd >= 0x60 && cmd <= 0x7f) || cmd == 0xd1 || cmd == 0xd2 || cmd == 0xd3 || cmd == 0xd4) {
                pendingCommand = cmd;
            } else if (cmd >= 0xf0) {
                // Pulse output-port lines for 6 µs; a clear bit 0 selects the CPU reset line.
                reset = (cmd & 0x01) == 0;
            } else {
                switch (cmd) {
                    case 0xa7 -> ram[0] |= CTR_AUXDIS;
                    case 0xa8 -> ram[0] &= ~CTR_AUXDIS;
                    case 0xa9 -> output(0x00, false, false); // mouse interface test: no error
                    case 0xaa -> output(0x55, false, false); // controller self-test passed
                    case 0xab -> output(0x00, false, false); // keyboard interface test: no error
                    case 0xad -> ram[0] |= CTR_KBDDIS;
                    case 0xae -> ram[0] &= ~CTR_KBDDIS;
                    case 0xc0 -> output(0x00, false, false); // input port: nothing strapped
                    case 0xd0 -> output(currentOutputPort(), false, false);
                    case 0xdd -> outputPort &= ~OUT_A20;
                    case 0xdf -> outputPort |= OUT_A20;
                    default -> LOG.debug("i8042: unsupported command 0x{}", Integer.toHexString(cmd));
                }
            }
            updateIrqs();
        }
        if (reset) requestReset("command 0x" + Integer.toHexString(cmd));
    }

    void writeData(int value) {
        boolean reset = false;
        synchronized (this) {
            lastWriteWasCommand = false;
            int cmd = pendingCommand;
            pendingCommand = -1;
            if (cmd >= 0x60 && cmd <= 0x7f) {
                ram[cmd & 0x1f] = (byte) value;
            } else if (cmd == 0xd1) {
                // A20 is always on under KVM; the bit is kept so a read-back matches.
                outputPort = value & ~(OUT_KBD_OBF | OUT_AUX_OBF);
                reset = (value & OUT_RESET) == 0;
            } else if (cmd == 0xd2) {
                output(value, false, false); // as if the keyboard had sent it
            } else if (cmd == 0xd3) {
                output(value, true, false); // as if the mouse had sent it
            } else if (cmd == 0xd4) {
                output(NO_DEVICE, true, true); // to the mouse: nobody answers
            } else {
                // To the keyboard; sending to it enables its interface, as on the real controller.
                ram[0] &= ~CTR_KBDDIS;
                output(NO_DEVICE, false, true);
            }
            updateIrqs();
        }
        if (reset) requestReset("output port write 0x" + Integer.toHexString(value));
    }

    private void requestReset(String why) {
        LOG.debug("i8042: guest reset via {}", why);
        control.requestExit(new ExitStatus.Reset());
    }

    private int currentOutputPort() {
        int v = outputPort & ~(OUT_KBD_OBF | OUT_AUX_OBF);
        if (queueCount > 0) v |= (queue[queueHead] & FROM_AUX) != 0 ? OUT_AUX_OBF : OUT_KBD_OBF;
        return v;
    }

    private void output(int value, boolean aux, boolean timedOut) {
        if (queueCount == OUTPUT_QUEUE) return; // the guest is not reading; a real controller would hold off too
        queue[(queueHead + queueCount) % OUTPUT_QUEUE] = value | (aux ? FROM_AUX : 0) | (timedOut ? TIMED_OUT : 0);
        queueCount++;
    }

    private void updateIrqs() {
        boolean kbd = false, aux = false;
        if (queueCount > 0) {
            boolean fromAux = (queue[queueHead] & FROM_AUX) != 0;
            kbd = !fromAux && (ram[0] & CTR_KBDINT) != 0;
            aux = fromAux && (ram[0] & CTR_AUXINT) != 0;
        }
        if (kbd != keyboardLevel) {
            keyboardLevel = kbd;
            keyboardIrq.set(kbd);
        }
        if (aux != auxLevel) {
            auxLevel = aux;
            auxIrq.set(aux);
        }
    }

    // ---- snapshots

    static final int STATE_VERSION = 1;

    @Override
    public String snapshotId() {
        return "i8042";
    }

    @Override
    public int snapshotVersion() {
        return STATE_VERSION;
    }

    @Override
    public synchronized void saveState(StateOutput out) {
        out.raw(ram)
                .u8(outputPort)
                .u16(pendingCommand + 1)
                .bool(lastWriteWasCommand)
                .u8(lastRead);
        out.u8(queueCount);
        for (int i = 0; i < queueCount; i++) out.u16(queue[(queueHead + i) % OUTPUT_QUEUE]);
    }

    @Override
    public synchronized void restoreState(int version, StateInput in) {
        byte[] nRam = in.raw("controller RAM", ram.length);
        int nOut = in.u8("output port");
        int nPending = in.u16("pending command") - 1;
        boolean nLastCmd = in.bool("last write was a command");
        int nLastRead = in.u8("last byte read");
        int n = in.u8("output queue length");
        if (n > OUTPUT_QUEUE || nPending > 0xff)
            throw new SnapshotException(
                    SnapshotException.Kind.CORRUPT,
                    in.where() + ": " + n + " queued bytes (at most " + OUTPUT_QUEUE + "), pending command "
                            + nPending);
        int[] q = new int[n];
        for (int i = 0; i < n; i++) {
            q[i] = in.u16("output queue entry");
            if ((q[i] & ~(0xff | FROM_AUX | TIMED_OUT)) != 0)
                throw new SnapshotException(
                        SnapshotException.Kind.CORRUPT,
                        in.where() + ": output queue entry 0x" + Integer.toHexString(q[i]) + " has unknown bits");
        }
        in.expectEnd();
        System.arraycopy(nRam, 0, ram, 0, ram.length);
        outputPort = nOut;
        pendingCommand = nPending;
        lastWriteWasCommand = nLastCmd;
        lastRead = nLastRead;
        queueHead = 0;
        queueCount = n;
        System.arraycopy(q, 0, queue, 0, n);
        // The lines are driven to what the queue says, whatever the restored interrupt controller holds.
        keyboardLevel = !(queueCount > 0 && (queue[0] & FROM_AUX) == 0 && (ram[0] & CTR_KBDINT) != 0);
        auxLevel = !(queueCount > 0 && (queue[0] & FROM_AUX) != 0 && (ram[0] & CTR_AUXINT) != 0);
        updateIrqs();
    }
}
