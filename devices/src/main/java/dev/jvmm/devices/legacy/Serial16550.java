package dev.jvmm.devices.legacy;

import dev.jvmm.core.bus.BusDevice;
import dev.jvmm.core.irq.IrqLine;
import dev.jvmm.core.snapshot.Snapshottable;
import dev.jvmm.core.snapshot.StateInput;
import dev.jvmm.core.snapshot.StateOutput;
import java.io.OutputStream;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A 16550A UART (a PC's COM port) as Linux's 8250 driver, earlyprintk=serial and simple polling guests
 * expect it.
 *
 * <p>Transmission is instant: a byte written to THR goes to the output at once, so LSR always shows THRE and
 * TEMT and the THR-empty interrupt reasserts right after each write. Output leaves through an
 * {@link OutputPump} (batched writes on another thread, lossless; {@link #flush()} before the VM exits).
 *
 * <p>Reception: {@link #receive} puts host input on "the wire", a backlog with a cap ({@link
 * #DEFAULT_INPUT_BACKLOG}) from which the 16-byte receive FIFO (one byte with the FIFO off) refills as the
 * guest reads, so a paste of many KiB is not lost. Input beyond the cap is dropped, counted, logged, and
 * shown to the guest as an overrun (LSR.OE). The character-timeout interrupt fires without the 4-character
 * delay of the real chip: input arrives in whole chunks, so when the FIFO holds fewer bytes than the trigger
 * level nothing more is on its way and waiting would only add latency.
 *
 * <p>The interrupt line is level: high while an enabled interrupt is pending, gated by MCR.OUT2 as on a PC
 * (and off in loopback mode, where the chip forces OUT2 inactive). It is changed only when its level changes.
 */
public final class Serial16550 implements BusDevice, AutoCloseable, Snapshottable {
    private static final Logger LOG = LoggerFactory.getLogger(Serial16550.class);

    /** COM1's port base and IRQ on a PC. */
    public static final int COM1_BASE = 0x3f8;

    public static final int COM1_IRQ = 4;
    /** Ports the UART claims from its base. */
    public static final int PORT_COUNT = 8;
    /** Host input held for the guest before new input is dropped. */
    public static final int DEFAULT_INPUT_BACKLOG = 1 << 20;

    static final int FIFO_SIZE = 16;

    // Register offsets.
    static final int RBR_THR_DLL = 0, IER_DLM = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

    // IER bits.
    static final int IER_RDA = 0x01, IER_THRE = 0x02, IER_RLS = 0x04, IER_MSI = 0x08;
    // IIR values (low nibble) and the FIFO-enabled bits.
    static final int IIR_NONE = 0x01, IIR_MSI = 0x00, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_RLS = 0x06, IIR_CTI = 0x0c;
    static final int IIR_FIFO_ENABLED = 0xc0;
    // FCR bits.
    static final int FCR_ENABLE = 0x01, FCR_CLEAR_RX = 0x02, FCR_CLEAR_TX = 0x04;
    // LCR bits.
    static final int LCR_DLAB = 0x80;
    // MCR bits.
    static final int MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
    // LSR bits.
    static final int LSR_DR = 0x01,
            LSR_OE = 0x02,
            LSR_PE = 0x04,
            LSR_FE = 0x08,
            LSR_BI = 0x10,
            LSR_THRE = 0x20,
            LSR_TEMT = 0x40;
    // MSR bits.
    static final int MSR_DCTS = 0x01,
            MSR_DDSR = 0x02,
            MSR_TERI = 0x04,
            MSR_DDCD = 0x08,
            MSR_CTS = 0x10,
            MSR_DSR = 0x20,
            MSR_RI = 0x40,
            MSR_DCD = 0x80;
    /** What the host side of the line shows when not in loopback: a connected, ready peer. */
    private static final int MSR_HOST_LINES = MSR_CTS | MSR_DSR | MSR_DCD;

    private static final int[] TRIGGER_LEVELS = {1, 4, 8, 14};

    private final IrqLine irq;
    private final OutputPump output;

    // Guarded by this.
    private int ier;
    private int lcr;
    private int mcr;
    private int scr;
    private int dll = 0x0c; // 9600 baud, as a PC BIOS leaves it
    private int dlm;
    private boolean fifoEnabled;
    private int triggerLevel = 1;
    private int lineErrors; // LSR OE/PE/FE/BI, cleared by reading LSR
    private int modemLines = MSR_HOST_LINES;
    private int modemDeltas;
    private boolean thrEmptyPending;
    private final byte[] rxFifo = new byte[FIFO_SIZE];
    private int rxHead;
    private int rxCount;
    private final ByteQueue backlog;
    private long droppedInput;
    private boolean dropping;
    private int roomWaiters;
    private boolean irqLevel;

    /** COM1-style UART raising irq, transmitting to out, with the default input backlog. */
    public Serial16550(IrqLine irq, OutputStream out) {
        this(irq, out, DEFAULT_INPUT_BACKLOG);
    }

    public Serial16550(IrqLine irq, OutputStream out, int inputBacklogBytes) {
        this.irq = Objects.requireNonNull(irq, "irq");
        this.output = new OutputPump("serial", out);
        this.backlog = new ByteQueue(inputBacklogBytes);
    }

    @Override
    public long read(long offset, int size) {
        // An access wider than a byte reaches consecutive registers, as the ISA bus splits it.
        long v = 0;
        for (int i = 0; i < size; i++) {
            long reg = offset + i;
            int b = reg >= 0 && reg < PORT_COUNT ? readRegister((int) reg) : 0xff;
            v |= (long) b << (8 * i);
        }
        return v;
    }

    @Override
    public void write(long offset, int size, long value) {
        for (int i = 0; i < size; i++) {
            long reg = offset + i;
            if (reg >= 0 && reg < PORT_COUNT) writeRegister((int) reg, (int) (value >>> (8 * i)) & 0xff);
        }
    }

    private int readRegister(int reg) {
        synchronized (this) {
            int v = switch (reg) {
                case RBR_THR_DLL -> (lcr & LCR_DLAB) != 0 ? dll : popReceived();
                case IER_DLM -> (lcr & LCR_DLAB) != 0 ? dlm : ier;
                case IIR_FCR -> {
                    int id = pendingInterrupt();
                    // Reading IIR acknowledges a THR-empty interrupt when that is what it reports.
                    if (id == IIR_THRE) thrEmptyPending = false;
                    yield id | (fifoEnabled ? IIR_FIFO_ENABLED : 0);
                }
                case LCR -> lcr;
                case MCR -> mcr;
                case LSR -> {
                    int lsr = (rxCount > 0 ? LSR_DR : 0) | LSR_THRE | LSR_TEMT | lineErrors;
                    lineErrors = 0;
                    yield lsr;
                }
                case MSR -> {
                    int msr = modemLines | modemDeltas;
                    modemDeltas = 0;
                    yield msr;
                }
                case SCR -> scr;
                default -> throw new IllegalArgumentException("register " + reg);
            };
            updateIrq();
            return v;
        }
    }

    private void writeRegister(int reg, int v) {
        boolean transmit = false;
        synchronized (this) {
            switch (reg) {
                case RBR_THR_DLL -> {
                    if ((lcr & LCR_DLAB) != 0) {
                        dll = v;
                    } else {
                        if ((mcr & MCR_LOOP) != 0) loopBack(v);
                        else transmit = true;
                        // The byte leaves at once, so THR is empty again: the interrupt reasserts.
                        thrEmptyPending = (ier & IER_THRE) != 0;
                    }
                }
                case IER_DLM -> {
                    if ((lcr & LCR_DLAB) != 0) {
                        dlm = v;
                    } else {
                        int next = v & 0x0f;
                        // Enabling the THR-empty interrupt while THR is empty (always, here) raises it.
                        if ((next & IER_THRE) != 0 && (ier & IER_THRE) == 0) thrEmptyPending = true;
                        if ((next & IER_THRE) == 0) thrEmptyPending = false;
                        ier = next;
                    }
                }
                case IIR_FCR -> writeFcr(v);
                case LCR -> lcr = v;
                case MCR -> writeMcr(v & 0x1f);
                case SCR -> scr = v;
                default -> {
                    // LSR and MSR are read-only (writing LSR is a factory test mode).
                }
            }
            updateIrq();
        }
        if (transmit) output.put((byte) v);
    }

    private void writeFcr(int v) {
        boolean enable = (v & FCR_ENABLE) != 0;
        if (enable != fifoEnabled) {
            // Switching the FIFOs on or off empties them.
            clearReceiveFifo();
            fifoEnabled = enable;
        }
        if (!enable) {
            triggerLevel = 1;
        } else {
            if ((v & FCR_CLEAR_RX) != 0) clearReceiveFifo();
            // FCR_CLEAR_TX: the transmit FIFO is always empty here.
            triggerLevel = TRIGGER_LEVELS[(v >> 6) & 3];
        }
        refillFromBacklog();
    }

    private void writeMcr(int next) {
        boolean wasLoop = (mcr & MCR_LOOP) != 0;
        mcr = next;
        int lines;
        if ((next & MCR_LOOP) != 0) {
            // Loopback: the modem outputs feed the modem inputs inside the chip.
            lines = ((next & MCR_RTS) != 0 ? MSR_CTS : 0)
                    | ((next & MCR_DTR) != 0 ? MSR_DSR : 0)
                    | ((next & MCR_OUT1) != 0 ? MSR_RI : 0)
                    | ((next & MCR_OUT2) != 0 ? MSR_DCD : 0);
        } else {
            lines = MSR_HOST_LINES;
        }
        int changed = lines ^ modemLines;
        if ((changed & MSR_CTS) != 0) modemDeltas |= MSR_DCTS;
        if ((changed & MSR_DSR) != 0) modemDeltas |= MSR_DDSR;
        if ((changed & MSR_DCD) != 0) modemDeltas |= MSR_DDCD;
        if ((modemLines & MSR_RI) != 0 && (lines & MSR_RI) == 0) modemDeltas |= MSR_TERI;
        modemLines = lines;
        // Leaving loopback reconnects the line: waiting host input flows in again.
        if (wasLoop && (next & MCR_LOOP) == 0) refillFromBacklog();
    }

    /** The highest-priority enabled interrupt's IIR code, or IIR_NONE. */
    private int pendingInterrupt() {
        if ((ier & IER_RLS) != 0 && lineErrors != 0) return IIR_RLS;
        if ((ier & IER_RDA) != 0 && rxCount > 0) return rxCount >= triggerLevel ? IIR_RDA : IIR_CTI;
        if ((ier & IER_THRE) != 0 && thrEmptyPending) return IIR_THRE;
        if ((ier & IER_MSI) != 0 && modemDeltas != 0) return IIR_MSI;
        return IIR_NONE;
    }

    private void updateIrq() {
        boolean level = pendingInterrupt() != IIR_NONE && (mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
        if (level != irqLevel) {
            irqLevel = level;
            irq.set(level); // under the lock, so concurrent changes reach the line in the order they happened
        }
    }

    private int fifoCapacity() {
        return fifoEnabled ? FIFO_SIZE : 1;
    }

    private int popReceived() {
        if (rxCount == 0) return 0;
        int b = rxFifo[rxHead] & 0xff;
        rxHead = (rxHead + 1) % FIFO_SIZE;
        rxCount--;
        refillFromBacklog();
        return b;
    }

    private void pushReceived(int b) {
        rxFifo[(rxHead + rxCount) % FIFO_SIZE] = (byte) b;
        rxCount++;
    }

    /** A byte the guest sent in loopback mode arrives at its own receiver. */
    private void loopBack(int b) {
        if (rxCount < fifoCapacity()) {
            pushReceived(b);
        } else {
            lineErrors |= LSR_OE;
            // Without the FIFO the new character overwrites the holding register; with it, it is lost.
            if (!fifoEnabled) rxFifo[rxHead] = (byte) b;
        }
    }

    private void clearReceiveFifo() {
        rxHead = 0;
        rxCount = 0;
    }

    private void refillFromBacklog() {
        if ((mcr & MCR_LOOP) != 0) return; // the line is disconnected in loopback
        int cap = fifoCapacity();
        boolean took = false;
        while (rxCount < cap && backlog.size() > 0) {
            pushReceived(backlog.poll());
            took = true;
        }
        if (took && roomWaiters > 0) notifyAll();
    }

    /**
     * Host input for the guest (keyboard, a pipe, a test). Never blocks; what does not fit the backlog is
     * dropped, counted, logged and reported to the guest as an overrun. Safe from any thread.
     */
    public void receive(byte[] data) {
        receive(data, 0, data.length);
    }

    /** As {@link #receive(byte[])}; returns how many bytes were accepted. */
    public synchronized int receive(byte[] data, int off, int len) {
        Objects.checkFromIndexSize(off, len, data.length);
        int taken = backlog.offer(data, off, len);
        refillFromBacklog();
        if (taken < len) {
            droppedInput += len - taken;
            lineErrors |= LSR_OE;
            if (!dropping) {
                dropping = true;
                LOG.warn(
                        "serial: the guest is not reading its input; {} byte(s) dropped (input backlog holds {} bytes)",
                        len - taken,
                        backlog.maxCapacity());
            }
        } else {
            dropping = false;
        }
        updateIrq();
        return taken;
    }

    /** Free space in the input backlog. */
    public synchronized int inputRoom() {
        return backlog.room();
    }

    /**
     * Waits until the input backlog has room for at least n bytes or the time is up, for a host input pump
     * that would rather wait than drop. Returns whether there is room.
     */
    public synchronized boolean awaitInputRoom(int n, long timeoutMillis) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
        roomWaiters++;
        try {
            while (backlog.room() < Math.min(n, backlog.maxCapacity())) {
                long left = deadline - System.nanoTime();
                if (left <= 0) return false;
                java.util.concurrent.TimeUnit.NANOSECONDS.timedWait(this, left);
            }
            return true;
        } finally {
            roomWaiters--;
        }
    }

    // ---- snapshots

    /** The state's layout: registers, the receive FIFO, then the host input not yet in it. */
    static final int STATE_VERSION = 1;

    @Override
    public String snapshotId() {
        return "serial@0x" + Integer.toHexString(COM1_BASE);
    }

    @Override
    public int snapshotVersion() {
        return STATE_VERSION;
    }

    /** Everything the guest printed before the snapshot reaches the console before it is taken. */
    @Override
    public void quiesce() {
        output.flush();
    }

    @Override
    public synchronized void saveState(StateOutput out) {
        out.u8(ier).u8(lcr).u8(mcr).u8(scr).u8(dll).u8(dlm);
        out.bool(fifoEnabled).u8(triggerLevel).u8(lineErrors).u8(modemLines).u8(modemDeltas);
        out.bool(thrEmptyPending);
        byte[] fifo = new byte[rxCount];
        for (int i = 0; i < rxCount; i++) fifo[i] = rxFifo[(rxHead + i) % FIFO_SIZE];
        out.bytes(fifo);
        // Host input the guest has not read yet (typed or pasted before the snapshot) is the guest's to read.
        out.bytes(backlog.toArray());
    }

    @Override
    public synchronized void restoreState(int version, StateInput in) {
        int nIer = in.u8("IER"), nLcr = in.u8("LCR"), nMcr = in.u8("MCR"), nScr = in.u8("SCR");
        int nDll = in.u8("DLL"), nDlm = in.u8("DLM");
        boolean nFifo = in.bool("FIFO enabled");
        int nTrigger = in.u8("trigger level");
        int nErrors = in.u8("line errors"), nLines = in.u8("modem lines"), nDeltas = in.u8("modem deltas");
        boolean nThre = in.bool("THR empty pending");
        byte[] fifo = in.bytes("receive FIFO", FIFO_SIZE);
        byte[] pending = in.bytes("input backlog", backlog.maxCapacity());
        in.expectEnd();
        if (java.util.Arrays.stream(TRIGGER_LEVELS).noneMatch(l -> l == nTrigger)
                || (nIer & ~0x0f) != 0
                || (nMcr & ~0x1f) != 0
                || fifo.length > (nFifo ? FIFO_SIZE : 1))
            throw new dev.jvmm.core.snapshot.SnapshotException(
                    dev.jvmm.core.snapshot.SnapshotException.Kind.CORRUPT,
                    in.where() + ": IER 0x" + Integer.toHexString(nIer) + ", MCR 0x" + Integer.toHexString(nMcr)
                            + ", trigger level " + nTrigger + ", " + fifo.length + " bytes in the receive FIFO"
                            + " are not a state a 16550A can be in");
        ier = nIer;
        lcr = nLcr;
        mcr = nMcr;
        scr = nScr;
        dll = nDll;
        dlm = nDlm;
        fifoEnabled = nFifo;
        triggerLevel = nTrigger;
        lineErrors = nErrors & (LSR_OE | LSR_PE | LSR_FE | LSR_BI);
        modemLines = nLines;
        modemDeltas = nDeltas & 0x0f;
        thrEmptyPending = nThre;
        rxHead = 0;
        rxCount = fifo.length;
        System.arraycopy(fifo, 0, rxFifo, 0, fifo.length);
        backlog.clear();
        backlog.offer(pending, 0, pending.length);
        // The line is driven to what the registers say, whatever the restored interrupt controller holds.
        irqLevel = pendingInterrupt() != IIR_NONE && (mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
        irq.set(irqLevel);
    }

    /** Host input bytes dropped because the backlog was full. */
    public synchronized long droppedInputBytes() {
        return droppedInput;
    }

    /** Writes all output so far to the stream; call before the VM's exit is reported. */
    public void flush() {
        output.flush();
    }

    /** Flushes and stops the output thread. */
    @Override
    public void close() {
        output.close();
    }
}
