package dev.jvmm.devices.virtio;

/** What a guest driver does with a virtio device, whatever the transport: tests of devices use this. */
public interface TestDriver extends AutoCloseable {
    int deviceId();

    long deviceFeatures();

    /** Writes the accepted features and FEATURES_OK; true if the device kept FEATURES_OK. */
    boolean negotiate(long features);

    int queueMaxSize(int index);

    void setupQueue(int index, DriverQueue q);

    void driverOk();

    int status();

    void writeStatus(int status);

    void notifyQueue(int index);

    /** Waits for a used-buffer interrupt for the queue and acknowledges it; false on timeout. */
    boolean awaitQueueInterrupt(int index, long millis) throws InterruptedException;

    /** Waits for a configuration-change interrupt and acknowledges it; false on timeout. */
    boolean awaitConfigInterrupt(long millis) throws InterruptedException;

    /** Reads device configuration; 8 bytes as two 4-byte reads, low half first, as a driver must. */
    default long readConfig(int offset, int size) {
        if (size == 8) return (readConfigAt(offset, 4) & 0xffffffffL) | readConfigAt(offset + 4, 4) << 32;
        return readConfigAt(offset, size);
    }

    /** One read of 1, 2 or 4 bytes of device configuration through the transport. */
    long readConfigAt(int offset, int size);

    /** What the device lives in (a VM, buses): closing the driver closes it. */
    AutoCloseable owner();

    /** Resets the device and waits for status 0. */
    default void reset() {
        writeStatus(0);
        if (status() != 0) throw new AssertionError("status not 0 after reset");
    }

    /** ACKNOWLEDGE, DRIVER, features, queues as given, DRIVER_OK. */
    default void init(long features, DriverQueue... queues) {
        reset();
        writeStatus(DeviceStatus.ACKNOWLEDGE);
        writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        if (!negotiate(features)) throw new AssertionError("FEATURES_OK refused for 0x" + Long.toHexString(features));
        for (int i = 0; i < queues.length; i++) if (queues[i] != null) setupQueue(i, queues[i]);
        driverOk();
    }

    /** Polls the used ring until it holds {@code count} unconsumed entries; false on timeout. */
    static boolean awaitUsed(DriverQueue q, int count, long millis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + millis;
        while (q.pendingUsed() < count) {
            if (System.currentTimeMillis() > deadline) return false;
            Thread.sleep(1);
        }
        return true;
    }

    @Override
    default void close() {
        try {
            owner().close();
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }
}
