package dev.jvmm.agent;

import java.nio.charset.StandardCharsets;

/**
 * A finished command: its exit code (as a shell reports it: 128 + the signal for one killed by a signal) and
 * everything it wrote to stdout and stderr.
 */
public record ExecResult(int exitCode, byte[] stdoutBytes, byte[] stderrBytes) {
    /** stdout as UTF-8 text. */
    public String stdout() {
        return new String(stdoutBytes, StandardCharsets.UTF_8);
    }

    /** stderr as UTF-8 text. */
    public String stderr() {
        return new String(stderrBytes, StandardCharsets.UTF_8);
    }

    public boolean succeeded() {
        return exitCode == 0;
    }

    @Override
    public String toString() {
        return "ExecResult[exitCode=" + exitCode + ", stdout=" + stdoutBytes.length + " bytes, stderr="
                + stderrBytes.length + " bytes]";
    }
}
