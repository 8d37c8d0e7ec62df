package dev.jvmm.devices.block;

import java.nio.file.Path;

/**
 * The child process of {@link ImageLockTest}: opens an image as a guest's disk would (read-write unless told
 * "ro"), prints "OPEN" (or the error's message), and holds it until its standard input ends.
 */
public final class LockHolder {
    public static void main(String[] args) throws Exception {
        boolean readOnly = args.length > 1 && args[1].equals("ro");
        try (BlockBackend b = DiskImage.open(Path.of(args[0]), DiskImage.Options.DEFAULT.withReadOnly(readOnly))) {
            System.out.println("OPEN");
            System.out.flush();
            System.in.read();
        } catch (Exception e) {
            System.out.println("FAILED " + e.getMessage());
        }
    }
}
