package dev.jvmm.core;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.event.IoEventRegistry;

/** ioeventfd registration on a KVM VM. */
final class KvmIoEvents implements IoEventRegistry {
    private final Vm vm;

    KvmIoEvents(Vm vm) {
        this.vm = vm;
    }

    @Override
    public Registration register(Space space, long address, int length, EventFd event) {
        boolean pio = space == Space.PIO;
        vm.ioeventfd(event.fd(), address, length, pio, null, false);
        return new Registration() {
            private boolean closed;

            @Override
            public synchronized void close() {
                if (closed) return;
                closed = true;
                vm.ioeventfd(event.fd(), address, length, pio, null, true);
            }
        };
    }
}
