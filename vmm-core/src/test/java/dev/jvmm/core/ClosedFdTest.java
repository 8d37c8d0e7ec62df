package dev.jvmm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.jvmm.core.event.EventFd;
import dev.jvmm.core.testing.RequiresKvm;
import dev.jvmm.kvm.Cap;
import dev.jvmm.kvm.ClosedFdException;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.OwnedFd;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Every ioctl wrapper of a closed Kvm, Vm or Vcpu (and every call on a closed EventFd) fails with
 * ClosedFdException naming the object, before any system call: the fd number it had is by then held by another
 * open file here, and an ioctl on it would have failed differently (ENOTTY) or, worse, succeeded on the wrong file.
 */
class ClosedFdTest {
    /** Public methods that read no fd: accessors of plain values, and close() itself. */
    private static final Set<String> NO_FD = Set.of("close", "id", "kvm", "equals", "hashCode", "toString");

    private final Arena arena = Arena.ofShared();
    private final List<EventFd> open = new ArrayList<>();

    @AfterEach
    void closeAll() {
        for (EventFd e : open) e.close();
        arena.close();
    }

    private EventFd eventFd() {
        EventFd e = new EventFd(true);
        open.add(e);
        return e;
    }

    /** An fd number to wrap: an eventfd, which answers every KVM ioctl with ENOTTY. */
    private static OwnedFd plainFd(String owner) {
        return new OwnedFd(Libc.eventfd(0, Libc.EFD_CLOEXEC), owner);
    }

    /** A page standing in for a vCPU's kvm_run area (the Vcpu unmaps it on close). */
    private static MemorySegment runArea() {
        return Libc.mmap(
                MemorySegment.NULL,
                4096,
                Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS,
                -1,
                0);
    }

    /** Takes the lowest free fd numbers, which are the ones just closed, so a stray ioctl would land on these. */
    private void recycleFreedNumbers() {
        for (int i = 0; i < 4; i++) eventFd();
    }

    private Object argumentFor(Class<?> type) {
        if (type == int.class) return 0;
        if (type == long.class) return 0L;
        if (type == boolean.class) return false;
        if (type == int[].class) return new int[] {0x10};
        if (type == long[].class) return new long[0];
        if (type == MemorySegment.class) return arena.allocate(64 << 10, 8);
        if (type == List.class) return List.of();
        if (type == Map.class) return Map.of(0x10, 0L);
        if (type == Cap.class) return Cap.MAX_VCPUS;
        if (type == EventFd.class) return eventFd();
        if (type == IoEventAddress.class) return IoEventAddress.pio(0x10);
        if (type == Datamatch.class) return Datamatch.anyValue(1);
        throw new AssertionError("ClosedFdTest has no argument for a " + type.getName() + "; add one");
    }

    /** Calls every public method of a closed object that reads its fd; returns how many it checked. */
    private int assertEveryCallFailsClearly(Object closed, String owner) throws Exception {
        int checked = 0;
        List<Method> methods = new ArrayList<>(List.of(closed.getClass().getMethods()));
        methods.sort(Comparator.comparing(Method::getName));
        for (Method m : methods) {
            if (Modifier.isStatic(m.getModifiers())
                    || m.getDeclaringClass() == Object.class
                    || NO_FD.contains(m.getName())) continue;
            Object[] args = new Object[m.getParameterCount()];
            for (int i = 0; i < args.length; i++) args[i] = argumentFor(m.getParameterTypes()[i]);
            String call = closed.getClass().getSimpleName() + "." + m.getName();
            try {
                m.invoke(closed, args);
                fail(call + " on a closed " + owner + " returned normally");
            } catch (InvocationTargetException e) {
                ClosedFdException c = assertInstanceOf(ClosedFdException.class, e.getCause(), call);
                assertEquals(owner, c.owner(), call);
                assertTrue(c.getMessage().startsWith(owner + " is closed"), c.getMessage());
            }
            checked++;
        }
        return checked;
    }

    private void assertEveryCallFailsClearly(Kvm kvm, Vm vm, Vcpu vcpu) throws Exception {
        assertEquals(7, assertEveryCallFailsClearly(kvm, "Kvm (/dev/kvm)"));
        assertEquals(22, assertEveryCallFailsClearly(vm, "Vm"));
        assertEquals(29, assertEveryCallFailsClearly(vcpu, "Vcpu 0"));
    }

    @Test
    void everyWrapperOnClosedObjectsFailsNamingThemWithoutAnIoctl() throws Exception {
        Kvm kvm = new Kvm(plainFd("Kvm (/dev/kvm)"));
        Vm vm = new Vm(kvm, plainFd("Vm"));
        Vcpu vcpu = new Vcpu(0, plainFd("Vcpu 0"), runArea());
        EventFd event = new EventFd(true);
        vcpu.close();
        vm.close();
        kvm.close();
        event.close();
        recycleFreedNumbers();

        assertEveryCallFailsClearly(kvm, vm, vcpu);
        assertEquals(3, assertEveryCallFailsClearly(event, "EventFd"));
    }

    @Test
    void closingTwiceIsHarmless() {
        Vcpu vcpu = new Vcpu(1, plainFd("Vcpu 1"), runArea());
        vcpu.close();
        recycleFreedNumbers();
        vcpu.close(); // neither a second munmap nor a close of the recycled number
        for (EventFd e : open) e.signal();
        EventFd event = new EventFd(true);
        event.close();
        event.close();
    }

    @Test
    @RequiresKvm
    void everyWrapperOnClosedKvmObjectsFailsNamingThem() throws Exception {
        Kvm kvm = Kvm.open();
        Vm vm = kvm.createVm();
        Vcpu vcpu = vm.createVcpu(0);
        vcpu.close();
        vm.close();
        kvm.close();
        recycleFreedNumbers();

        assertEveryCallFailsClearly(kvm, vm, vcpu);
    }

    @Test
    void ioEventArgumentsRejectWhatKvmWould() {
        assertEquals(
                new IoEventAddress(dev.jvmm.core.event.IoEventRegistry.Space.PIO, 0x3f8), IoEventAddress.pio(0x3f8));
        assertThrows(IllegalArgumentException.class, () -> IoEventAddress.pio(0x10000));
        assertEquals(0, Datamatch.none().length());
        assertTrue(Datamatch.of(0x1234, 2).value().isPresent());
        assertThrows(IllegalArgumentException.class, () -> Datamatch.anyValue(3));
        assertThrows(IllegalArgumentException.class, () -> Datamatch.of(1, 0)); // KVM: EINVAL
    }
}
