package dev.jvmm.core.x86;

/**
 * Where and how a vCPU starts: the CPU mode, the instruction pointer, and the registers a boot protocol
 * passes arguments in. {@link X86Cpu#apply} turns it into register, segment and (for long mode) page-table
 * state.
 */
public record EntryState(Mode mode, long ip, int realModeSegment, long rsp, long rax, long rbx, long rsi) {
    public enum Mode {
        /** 16-bit real mode at realModeSegment:ip. */
        REAL,
        /** 32-bit flat protected mode, paging off. */
        PROTECTED,
        /** 64-bit long mode with the first 4 GiB identity-mapped. */
        LONG
    }

    public static EntryState realMode(int segment, int offset) {
        return new EntryState(Mode.REAL, offset & 0xffff, segment & 0xffff, 0, 0, 0, 0);
    }

    public static EntryState protectedMode(long eip) {
        return new EntryState(Mode.PROTECTED, eip, 0, 0, 0, 0, 0);
    }

    public static EntryState longMode(long rip) {
        return new EntryState(Mode.LONG, rip, 0, 0, 0, 0, 0);
    }

    public EntryState withRsp(long v) {
        return new EntryState(mode, ip, realModeSegment, v, rax, rbx, rsi);
    }

    public EntryState withRax(long v) {
        return new EntryState(mode, ip, realModeSegment, rsp, v, rbx, rsi);
    }

    public EntryState withRbx(long v) {
        return new EntryState(mode, ip, realModeSegment, rsp, rax, v, rsi);
    }

    public EntryState withRsi(long v) {
        return new EntryState(mode, ip, realModeSegment, rsp, rax, rbx, v);
    }
}
