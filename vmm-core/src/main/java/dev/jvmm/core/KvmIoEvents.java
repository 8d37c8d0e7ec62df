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
        IoEventAddress at = new IoEventAddress(space, address);
        Datamatch match = Datamatch.anyValue(length);
        vm.ioeventfd(event, at, match);
        return new Registration() {
            private boolean closed;

            @Override
            public synchronized void close() {
                if (closed) return;
                closed = true;
                vm.ioeventfdDeassign(event, at, match);
            }
        };
    }
}
