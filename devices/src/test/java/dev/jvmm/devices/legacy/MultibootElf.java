package dev.jvmm.devices.legacy;

import dev.jvmm.core.memory.GuestMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Just enough of a multiboot loader for the test guests: copies an ELF32's PT_LOAD segments, returns the entry. */
final class MultibootElf {
    private MultibootElf() {}

    static long load(GuestMemory memory, byte[] elf) {
        ByteBuffer b = ByteBuffer.wrap(elf).order(ByteOrder.LITTLE_ENDIAN);
        if (elf.length < 52 || b.getInt(0) != 0x464c457f || elf[4] != 1 || elf[5] != 1)
            throw new IllegalArgumentException("not a little-endian ELF32 file");
        long entry = Integer.toUnsignedLong(b.getInt(24));
        int phoff = b.getInt(28);
        int phentsize = Short.toUnsignedInt(b.getShort(42));
        int phnum = Short.toUnsignedInt(b.getShort(44));
        for (int i = 0; i < phnum; i++) {
            int ph = phoff + i * phentsize;
            if (b.getInt(ph) != 1) continue; // PT_LOAD
            int offset = b.getInt(ph + 4);
            long paddr = Integer.toUnsignedLong(b.getInt(ph + 12));
            int filesz = b.getInt(ph + 16);
            int memsz = b.getInt(ph + 20);
            memory.write(paddr, elf, offset, filesz);
            memory.fill(paddr + filesz, memsz - filesz, (byte) 0);
        }
        return entry;
    }
}
