package dev.jvmm.boot.loader;

import dev.jvmm.core.x86.EntryState;

/** A kernel placed in guest memory: how to enter it and what was loaded. */
public record LoadedKernel(EntryState entry, String description, long kernelEnd) {}
