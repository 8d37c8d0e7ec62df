package dev.jvmm.core;

import dev.jvmm.kvm.Cap;
import dev.jvmm.kvm.Errno;
import dev.jvmm.kvm.KvmIoctls;
import dev.jvmm.kvm.Libc;
import dev.jvmm.kvm.OwnedFd;
import dev.jvmm.kvm.SyscallException;
import dev.jvmm.kvm.gen.kvm_cpuid2;
import dev.jvmm.kvm.gen.kvm_cpuid_entry2;
import dev.jvmm.kvm.gen.kvm_msr_list;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/** The /dev/kvm system fd: one method per system ioctl; every one throws ClosedFdException after close(). */
public final class Kvm implements AutoCloseable {
    public static final String DEVICE = "/dev/kvm";
    private static final int API_VERSION = 12;

    private final OwnedFd fd;

    Kvm(OwnedFd fd) {
        this.fd = fd;
    }

    /** Opens /dev/kvm and checks the API version; failures carry the remedy a person needs. */
    public static Kvm open() {
        int fd;
        try {
            fd = Libc.open(DEVICE, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        } catch (SyscallException e) {
            throw KvmUnavailableException.of(DEVICE, e);
        }
        Kvm kvm = new Kvm(new OwnedFd(fd, "Kvm (" + DEVICE + ")"));
        int version = kvm.apiVersion();
        if (version != API_VERSION) {
            kvm.close();
            throw new IllegalStateException("KVM API version is " + version + ", jvmm needs " + API_VERSION);
        }
        return kvm;
    }

    /** True when /dev/kvm exists and this process may open it. */
    public static boolean isAvailable() {
        try (Kvm ignored = open()) {
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * True where this host's KVM is kvm_pvm, which emulates guest kernel code instruction by instruction (some
     * instructions missing): a distribution kernel stops in its early boot there, so no whole Linux runs.
     */
    public static boolean emulatesGuestKernel() {
        return java.nio.file.Files.isDirectory(java.nio.file.Path.of("/sys/module/kvm_pvm"));
    }

    public int apiVersion() {
        return Libc.ioctl(fd.get(), "KVM_GET_API_VERSION", KvmIoctls.KVM_GET_API_VERSION, 0);
    }

    /** KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific positive value. */
    public int checkExtension(Cap capability) {
        return Libc.ioctl(fd.get(), "KVM_CHECK_EXTENSION", KvmIoctls.KVM_CHECK_EXTENSION, capability.number());
    }

    /** The most vCPUs a VM may have (KVM_CAP_MAX_VCPUS, or the recommended count where that is absent). */
    public int maxVcpus() {
        int max = checkExtension(Cap.MAX_VCPUS);
        return max > 0 ? max : checkExtension(Cap.NR_VCPUS);
    }

    public int vcpuMmapSize() {
        return Libc.ioctl(fd.get(), "KVM_GET_VCPU_MMAP_SIZE", KvmIoctls.KVM_GET_VCPU_MMAP_SIZE, 0);
    }

    /** KVM_GET_SUPPORTED_CPUID: every leaf this host's KVM can expose. */
    public List<CpuidEntry> supportedCpuid() {
        for (int nent = 128; ; nent *= 2) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment c = arena.allocate(kvm_cpuid2.sizeof() + nent * kvm_cpuid_entry2.sizeof(), 8);
                kvm_cpuid2.nent(c, nent);
                int r = Libc.ioctlRaw(fd.get(), KvmIoctls.KVM_GET_SUPPORTED_CPUID, c);
                if (r == -Errno.E2BIG && nent < 4096) continue;
                if (r < 0) throw new SyscallException("ioctl(KVM_GET_SUPPORTED_CPUID)", -r);
                return Cpuid.read(c);
            }
        }
    }

    /** KVM_GET_MSR_INDEX_LIST: the MSRs saved and restored for a guest. */
    public int[] msrIndexList() {
        for (int n = 64; ; n *= 2) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment l = arena.allocate(kvm_msr_list.sizeof() + 4L * n, 4);
                kvm_msr_list.nmsrs(l, n);
                int r = Libc.ioctlRaw(fd.get(), KvmIoctls.KVM_GET_MSR_INDEX_LIST, l);
                if (r == -Errno.E2BIG && n < 65536) continue;
                if (r < 0) throw new SyscallException("ioctl(KVM_GET_MSR_INDEX_LIST)", -r);
                int count = kvm_msr_list.nmsrs(l);
                int[] out = new int[count];
                MemorySegment.copy(l, ValueLayout.JAVA_INT, kvm_msr_list.indices$offset(), out, 0, count);
                return out;
            }
        }
    }

    public Vm createVm() {
        int vmFd = Libc.ioctl(fd.get(), "KVM_CREATE_VM", KvmIoctls.KVM_CREATE_VM, 0);
        return new Vm(this, new OwnedFd(vmFd, "Vm"));
    }

    @Override
    public void close() {
        fd.close();
    }

    /** Reading and writing kvm_cpuid2 buffers. */
    static final class Cpuid {
        private Cpuid() {}

        static List<CpuidEntry> read(MemorySegment c) {
            int n = kvm_cpuid2.nent(c);
            List<CpuidEntry> out = new ArrayList<>(n);
            MemorySegment entries = c.asSlice(kvm_cpuid2.entries$offset());
            for (int i = 0; i < n; i++) {
                MemorySegment e = kvm_cpuid_entry2.asSlice(entries, i);
                out.add(new CpuidEntry(
                        kvm_cpuid_entry2.function(e),
                        kvm_cpuid_entry2.index(e),
                        kvm_cpuid_entry2.flags(e),
                        kvm_cpuid_entry2.eax(e),
                        kvm_cpuid_entry2.ebx(e),
                        kvm_cpuid_entry2.ecx(e),
                        kvm_cpuid_entry2.edx(e)));
            }
            return out;
        }

        static MemorySegment write(Arena arena, List<CpuidEntry> entries) {
            MemorySegment c = arena.allocate(kvm_cpuid2.sizeof() + entries.size() * kvm_cpuid_entry2.sizeof(), 8);
            kvm_cpuid2.nent(c, entries.size());
            MemorySegment all = c.asSlice(kvm_cpuid2.entries$offset());
            for (int i = 0; i < entries.size(); i++) {
                CpuidEntry x = entries.get(i);
                MemorySegment e = kvm_cpuid_entry2.asSlice(all, i);
                kvm_cpuid_entry2.function(e, x.function());
                kvm_cpuid_entry2.index(e, x.index());
                kvm_cpuid_entry2.flags(e, x.flags());
                kvm_cpuid_entry2.eax(e, x.eax());
                kvm_cpuid_entry2.ebx(e, x.ebx());
                kvm_cpuid_entry2.ecx(e, x.ecx());
                kvm_cpuid_entry2.edx(e, x.edx());
            }
            return c;
        }
    }
}
