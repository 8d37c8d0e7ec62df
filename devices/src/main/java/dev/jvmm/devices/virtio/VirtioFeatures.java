package dev.jvmm.devices.virtio;

/** Device-independent feature bits (virtio 1.2, chapter "Reserved Feature Bits"). */
public final class VirtioFeatures {
    public static final int INDIRECT_DESC = 28;
    public static final int EVENT_IDX = 29;
    public static final int VERSION_1 = 32;
    public static final int ACCESS_PLATFORM = 33;
    public static final int RING_PACKED = 34;
    public static final int IN_ORDER = 35;

    private VirtioFeatures() {}

    public static long bit(int feature) {
        return 1L << feature;
    }

    public static boolean has(long features, int feature) {
        return (features & (1L << feature)) != 0;
    }
}
