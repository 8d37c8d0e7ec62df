package dev.jvmm.devices.legacy;

import dev.jvmm.core.irq.IrqLine;
import java.util.ArrayList;
import java.util.List;

/** An IrqLine that records every level it is driven to (and can pass them on to a real line). */
final class RecordingIrqLine implements IrqLine {
    private final List<Boolean> transitions = new ArrayList<>();
    private final IrqLine next;

    RecordingIrqLine() {
        this(high -> {});
    }

    RecordingIrqLine(IrqLine next) {
        this.next = next;
    }

    @Override
    public synchronized void set(boolean high) {
        transitions.add(high);
        next.set(high);
    }

    synchronized List<Boolean> transitions() {
        return List.copyOf(transitions);
    }

    synchronized boolean level() {
        return !transitions.isEmpty() && transitions.get(transitions.size() - 1);
    }

    synchronized void clear() {
        transitions.clear();
    }
}
