package dev.jvmm.devices.block.qcow2;

import dev.jvmm.devices.block.BlockBackend;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/** A raw file read-only, as the bottom of a backing chain (or the source of a conversion). */
public final class RawReader implements BlockBackend {
    private final HostFile file;
    private final long size;

    public RawReader(Path path) throws IOException {
        this.file = new HostFile(path, true);
        this.size = file.length();
    }

    @Override public long size() { return size; }
    @Override public boolean readOnly() { return true; }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        if (offset < 0 || offset + dst.byteSize() > size) {
            throw new IOException(file.path + ": read [" + offset + ", +" + dst.byteSize() + ") past size " + size);
        }
        file.read(offset, dst);
    }

    @Override public void write(long offset, MemorySegment src) throws IOException { throw readOnlyError(); }
    @Override public void flush() { }
    @Override public void discard(long offset, long length) throws IOException { throw readOnlyError(); }
    @Override public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException { throw readOnlyError(); }

    private IOException readOnlyError() {
        return new IOException(file.path + ": raw backing file is read-only");
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
