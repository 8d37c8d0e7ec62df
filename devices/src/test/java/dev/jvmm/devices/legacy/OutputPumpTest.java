package dev.jvmm.devices.legacy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class OutputPumpTest {
    /** Counts write calls and is slow, to make the buffer fill. */
    static final class SlowStream extends OutputStream {
        final ByteArrayOutputStream data = new ByteArrayOutputStream();
        final AtomicInteger writes = new AtomicInteger();
        final long delayMillis;

        SlowStream(long delayMillis) {
            this.delayMillis = delayMillis;
        }

        @Override
        public synchronized void write(int b) {
            writes.incrementAndGet();
            data.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            try {
                Thread.sleep(delayMillis);
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            synchronized (this) {
                writes.incrementAndGet();
                data.write(b, off, len);
            }
        }
    }

    @Test
    void aSlowStreamGetsEveryByteInOrderInFewWrites() {
        SlowStream s = new SlowStream(2);
        byte[] sent = new byte[100_000];
        for (int i = 0; i < sent.length; i++) sent[i] = (byte) (i * 7);
        try (OutputPump pump = new OutputPump("t", s, 1024)) {
            for (byte b : sent) pump.put(b);
            pump.flush();
            assertEquals(sent.length, pump.bytesWritten());
        }
        assertArrayEquals(sent, s.data.toByteArray());
        assertTrue(s.writes.get() < sent.length / 100, "batched: " + s.writes.get() + " writes");
    }

    @Test
    void closeWritesWhatIsLeftAndLaterBytesStillArrive() {
        SlowStream s = new SlowStream(0);
        OutputPump pump = new OutputPump("t", s);
        for (byte b : "abc".getBytes()) pump.put(b);
        pump.close();
        pump.put((byte) 'd');
        assertEquals("abcd", s.data.toString());
    }

    @Test
    void closeReleasesAProducerStuckOnAStreamThatNeverDrains() throws Exception {
        CountDownLatch never = new CountDownLatch(1);
        OutputStream stuck = new OutputStream() {
            @Override
            public void write(int b) {}

            @Override
            public void write(byte[] b, int off, int len) {
                try {
                    never.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        OutputPump pump = new OutputPump("t", stuck, 16);
        CountDownLatch done = new CountDownLatch(1);
        Thread producer = Thread.ofPlatform().start(() -> {
            for (int i = 0; i < 1000; i++) pump.put((byte) 'x');
            done.countDown();
        });
        Thread.sleep(100);
        Thread closer = Thread.ofPlatform().start(pump::close);
        assertTrue(done.await(20, TimeUnit.SECONDS), "producer released");
        assertTrue(pump.bytesDiscarded() > 0);
        never.countDown();
        closer.join();
        producer.join();
    }

    @Test
    void aFailingStreamDoesNotHangTheDevice() {
        OutputStream broken = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("EPIPE");
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                throw new IOException("EPIPE");
            }
        };
        try (OutputPump pump = new OutputPump("t", broken, 16)) {
            for (int i = 0; i < 1000; i++) pump.put((byte) 'x');
            pump.flush();
        }
    }
}
