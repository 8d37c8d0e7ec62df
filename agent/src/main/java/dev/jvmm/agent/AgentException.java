package dev.jvmm.agent;

import java.io.IOException;

/** The agent refused or failed a request and said why (a file it cannot open, a command it cannot start). */
public final class AgentException extends IOException {
    private static final long serialVersionUID = 1L;

    public AgentException(String message) {
        super(message);
    }
}
