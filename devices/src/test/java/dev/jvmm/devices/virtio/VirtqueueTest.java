package dev.jvmm.devices.virtio;

import static dev.jvmm.devices.virtio.DriverQueue.Buf.in;
import static dev.jvmm.devices.virtio.DriverQueue.Buf.out;
import static dev.jvmm.devices.virtio.VirtqueueException.Kind.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.jvmm.core.memory.GuestMemory;
import dev.jvmm.devices.virtio.VirtqueueException.Kind;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class VirtqueueTest {
    static final long FEATURES =
            VirtioFeatures.bit(VirtioFeatures.VERSION_1) | VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC);
    static final long FEATURES_EVENT_IDX = FEATURES | VirtioFeatures.bit(VirtioFeatures.EVENT_IDX);

    GuestRam ram;
    DriverQueue dq;
    Virtqueue q;
    DescriptorChain chain;

    @BeforeEach
    void setUp() {
        ram = new GuestRam();
        dq = new DriverQueue(ram, 16);
        q = new Virtqueue(16);
        chain = new DescriptorChain(16);
    }

    @AfterEach
    void tearDown() {
        ram.close();
    }

    void activate(long features) {
        q.setSize(dq.size);
        q.setDescAddress(dq.desc);
        q.setDriverAddress(dq.avail);
        q.setDeviceAddress(dq.used);
        q.setReady(true);
        q.activate(ram.memory, features);
    }

    VirtqueueException popFails(Kind kind) {
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> q.pop(chain));
        assertEquals(kind, e.kind(), e.getMessage());
        assertTrue(q.isBroken(), "queue is broken after " + e.getMessage());
        assertFalse(q.pop(chain), "a broken queue yields nothing more");
        assertFalse(q.hasAvailable());
        return e;
    }

    @Test
    void popsChainsWithReadableThenWritableBuffers() {
        activate(FEATURES);
        long a = ram.alloc(100, 8), b = ram.alloc(200, 8), c = ram.alloc(1, 1);
        ram.memory.write(a, "hello".getBytes());
        assertFalse(q.pop(chain));
        int head = dq.add(in(a, 100), out(b, 200), out(c, 1));
        assertTrue(q.hasAvailable());
        assertTrue(q.pop(chain));
        assertEquals(head, chain.head());
        assertEquals(1, chain.readableCount());
        assertEquals(2, chain.writableCount());
        assertEquals(100, chain.readableLength());
        assertEquals(201, chain.writableLength());
        byte[] got = new byte[5];
        chain.readFrom(0, java.lang.foreign.MemorySegment.ofArray(got), 0, 5);
        assertEquals("hello", new String(got));
        // A write spanning both writable buffers lands in guest memory at the right places.
        byte[] data = new byte[201];
        data[199] = 7;
        data[200] = 9;
        chain.writeTo(0, java.lang.foreign.MemorySegment.ofArray(data), 0, 201);
        assertEquals(7, ram.memory.readByte(b + 199));
        assertEquals(9, ram.memory.readByte(c));
        assertFalse(q.pop(chain));
    }

    @Test
    void addUsedPublishesElementAndIndex() {
        activate(FEATURES);
        int head = dq.add(out(ram.alloc(8, 8), 8));
        assertTrue(q.pop(chain));
        q.addUsed(chain.head(), 5);
        assertEquals(1, dq.usedIdx());
        int[] e = dq.takeUsed();
        assertEquals(head, e[0]);
        assertEquals(5, e[1]);
    }

    @Test
    void indicesWrapAt65536() {
        dq = new DriverQueue(ram, 4);
        q = new Virtqueue(4);
        chain = new DescriptorChain(4);
        activate(FEATURES);
        long buf = ram.alloc(8, 8);
        for (int i = 0; i < 70_000; i++) {
            int head = dq.add(out(buf, 8));
            assertTrue(q.pop(chain));
            assertEquals(head, chain.head());
            q.addUsed(head, i & 0xff);
            assertEquals(head, dq.takeUsed()[0]);
        }
        assertEquals(70_000 & 0xffff, dq.usedIdx());
    }

    @Test
    void indirectTableAfterDirectDescriptors() {
        activate(FEATURES);
        long hdr = ram.alloc(16, 8), data = ram.alloc(512, 8), status = ram.alloc(1, 1);
        long table = ram.alloc(32, 16);
        dq.setDescAt(table, data, 512, Virtqueue.DESC_F_WRITE | Virtqueue.DESC_F_NEXT, 1);
        dq.setDescAt(table + 16, status, 1, Virtqueue.DESC_F_WRITE, 0);
        // Descriptor 0 (direct, readable) -> descriptor 1 (indirect table) : allowed by the spec.
        dq.setDesc(0, hdr, 16, Virtqueue.DESC_F_NEXT, 1);
        dq.setDesc(1, table, 32, Virtqueue.DESC_F_INDIRECT | Virtqueue.DESC_F_WRITE, 0); // WRITE ignored here
        dq.publish(0);
        assertTrue(q.pop(chain));
        assertEquals(1, chain.readableCount());
        assertEquals(2, chain.writableCount());
        assertEquals(513, chain.writableLength());
    }

    @Test
    void indirectOnlyChain() {
        activate(FEATURES);
        long table = ram.alloc(48, 16);
        int head = dq.indirectChain(
                table, in(ram.alloc(16, 8), 16), out(ram.alloc(4096, 8), 4096), out(ram.alloc(1, 1), 1));
        dq.publish(head);
        assertTrue(q.pop(chain));
        assertEquals(16, chain.readableLength());
        assertEquals(4097, chain.writableLength());
    }

    /**
     * Taking a chain, direct and indirect, and copying into and out of it allocate nothing: a device's hot path
     * (virtio-net fills 16 receive buffers per 64 KiB frame) makes no garbage per descriptor.
     */
    @Test
    void poppingAndCopyingAllocateNothing() {
        activate(FEATURES);
        long hdr = ram.alloc(16, 8), data = ram.alloc(4096, 8), status = ram.alloc(1, 1);
        int direct = dq.chain(in(hdr, 16), out(data, 4096), out(status, 1));
        int indirect = dq.indirectChain(ram.alloc(48, 16), in(hdr, 16), out(data, 4096), out(status, 1));
        java.lang.foreign.MemorySegment app = java.lang.foreign.MemorySegment.ofArray(new byte[4097]);
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long before = 0;
        int rounds = 20_000;
        for (int i = 0; i < 2 * rounds; i++) {
            if (i == rounds) before = threads.getCurrentThreadAllocatedBytes(); // the first half warms up
            dq.publish((i & 1) == 0 ? direct : indirect);
            if (!q.pop(chain)) fail("chain " + i + " not taken");
            chain.readFrom(0, app, 0, 16);
            chain.writeTo(0, app, 0, 4097);
            chain.writeByte(4096, (byte) 1);
            q.addUsed(chain.head(), 4097);
        }
        long perChain = (threads.getCurrentThreadAllocatedBytes() - before) / rounds;
        assertEquals(0, perChain, "bytes allocated per chain taken and filled");
    }

    // --- malformed rings and chains ---------------------------------------------------------------------------

    @Test
    void descriptorLoopIsDetected() {
        activate(FEATURES);
        long b = ram.alloc(8, 8);
        dq.setDesc(0, b, 8, Virtqueue.DESC_F_NEXT, 1);
        dq.setDesc(1, b, 8, Virtqueue.DESC_F_NEXT, 2);
        dq.setDesc(2, b, 8, Virtqueue.DESC_F_NEXT, 0);
        dq.publish(0);
        popFails(DESCRIPTOR_LOOP);
    }

    @Test
    void selfLoopIsDetected() {
        activate(FEATURES);
        dq.setDesc(5, ram.alloc(8, 8), 8, Virtqueue.DESC_F_NEXT, 5);
        dq.publish(5);
        popFails(DESCRIPTOR_LOOP);
    }

    @Test
    void loopInsideIndirectTableIsDetected() {
        activate(FEATURES);
        long table = ram.alloc(32, 16), b = ram.alloc(8, 8);
        dq.setDescAt(table, b, 8, Virtqueue.DESC_F_NEXT, 1);
        dq.setDescAt(table + 16, b, 8, Virtqueue.DESC_F_NEXT, 0);
        dq.setDesc(0, table, 32, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(DESCRIPTOR_LOOP);
    }

    @Test
    void chainLongerThanTheQueueIsRefused() {
        // 12 direct buffers followed by an indirect table of 8: 20 buffers in a queue of 16.
        activate(FEATURES);
        long b = ram.alloc(8, 8), table = ram.alloc(16 * 8, 16);
        for (int i = 0; i < 12; i++) dq.setDesc(i, b, 8, Virtqueue.DESC_F_NEXT, i + 1);
        dq.setDesc(12, table, 16 * 8, Virtqueue.DESC_F_INDIRECT, 0);
        for (int i = 0; i < 8; i++) dq.setDescAt(table + 16L * i, b, 8, i < 7 ? Virtqueue.DESC_F_NEXT : 0, i + 1);
        dq.publish(0);
        popFails(CHAIN_TOO_LONG);
    }

    @Test
    void indirectTableLargerThanQueueIsRefused() {
        activate(FEATURES);
        long table = ram.alloc(16 * 32, 16);
        dq.setDesc(0, table, 16 * 32, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(INDIRECT_TABLE_TOO_LONG);
    }

    @Test
    void nextIndexBeyondTheTable() {
        activate(FEATURES);
        dq.setDesc(0, ram.alloc(8, 8), 8, Virtqueue.DESC_F_NEXT, 16);
        dq.publish(0);
        popFails(NEXT_INDEX_OUT_OF_RANGE);
    }

    @Test
    void nextIndexBeyondTheIndirectTable() {
        activate(FEATURES);
        long table = ram.alloc(32, 16);
        dq.setDescAt(table, ram.alloc(8, 8), 8, Virtqueue.DESC_F_NEXT, 2);
        dq.setDesc(0, table, 32, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(NEXT_INDEX_OUT_OF_RANGE);
    }

    @Test
    void headIndexBeyondTheRing() {
        activate(FEATURES);
        dq.setAvailEntry(0, 16);
        dq.setAvailIdx(1);
        popFails(HEAD_INDEX_OUT_OF_RANGE);
    }

    @Test
    void availableIndexRunningAheadByMoreThanTheQueue() {
        activate(FEATURES);
        dq.setAvailIdx(17);
        popFails(AVAIL_INDEX_OUT_OF_RANGE);
    }

    @Test
    void availableIndexGoingBackwardsIsAJumpAhead() {
        activate(FEATURES);
        dq.add(out(ram.alloc(8, 8), 8));
        assertTrue(q.pop(chain));
        dq.setAvailIdx(0); // "un-exposing" a buffer: 65535 entries ahead
        popFails(AVAIL_INDEX_OUT_OF_RANGE);
    }

    @Test
    void bufferOutsideRam() {
        activate(FEATURES);
        dq.add(out(ram.end(), 8));
        popFails(BUFFER_OUTSIDE_MEMORY);
    }

    @Test
    void bufferRunningPastTheEndOfRam() {
        activate(FEATURES);
        dq.add(out(ram.end() - 8, 16));
        popFails(BUFFER_OUTSIDE_MEMORY);
    }

    @Test
    void bufferWhoseEndWrapsAround() {
        activate(FEATURES);
        dq.setDesc(0, -4096L, 0x2000, Virtqueue.DESC_F_WRITE, 0);
        dq.publish(0);
        popFails(BUFFER_OUTSIDE_MEMORY);
    }

    @Test
    void indirectTableOutsideRam() {
        activate(FEATURES);
        dq.setDesc(0, ram.end() - 16, 32, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(INDIRECT_TABLE_OUTSIDE_MEMORY);
    }

    @Test
    void indirectWithoutTheFeature() {
        activate(VirtioFeatures.bit(VirtioFeatures.VERSION_1));
        dq.setDesc(0, ram.alloc(16, 16), 16, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(INDIRECT_NOT_NEGOTIATED);
    }

    @Test
    void nestedIndirectTable() {
        activate(FEATURES);
        long outer = ram.alloc(16, 16), inner = ram.alloc(16, 16);
        dq.setDescAt(inner, ram.alloc(8, 8), 8, 0, 0);
        dq.setDescAt(outer, inner, 16, Virtqueue.DESC_F_INDIRECT, 0);
        dq.setDesc(0, outer, 16, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(INDIRECT_NESTED);
    }

    @Test
    void indirectWithNext() {
        activate(FEATURES);
        long table = ram.alloc(16, 16);
        dq.setDescAt(table, ram.alloc(8, 8), 8, 0, 0);
        dq.setDesc(0, table, 16, Virtqueue.DESC_F_INDIRECT | Virtqueue.DESC_F_NEXT, 1);
        dq.publish(0);
        popFails(INDIRECT_WITH_NEXT);
    }

    @Test
    void indirectTableLengthNotAMultipleOf16() {
        activate(FEATURES);
        dq.setDesc(0, ram.alloc(32, 16), 24, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(INDIRECT_TABLE_BAD_LENGTH);
    }

    @Test
    void emptyIndirectTable() {
        activate(FEATURES);
        dq.setDesc(0, ram.alloc(16, 16), 0, Virtqueue.DESC_F_INDIRECT, 0);
        dq.publish(0);
        popFails(INDIRECT_TABLE_BAD_LENGTH);
    }

    @Test
    void readableAfterWritable() {
        activate(FEATURES);
        dq.add(out(ram.alloc(8, 8), 8), in(ram.alloc(8, 8), 8));
        popFails(READABLE_AFTER_WRITABLE);
    }

    @Test
    void chainOfMoreThan4GiB() {
        try (GuestMemory big =
                GuestMemory.allocate(List.of(new GuestMemory.Layout(0, 5L << 30)), GuestMemory.Options.DEFAULT)) {
            DriverQueue d = new DriverQueue(big, 16, 0x1000, 0x2000, 0x3000);
            q.setDescAddress(d.desc);
            q.setDriverAddress(d.avail);
            q.setDeviceAddress(d.used);
            q.setReady(true);
            q.activate(big, FEATURES);
            d.setDesc(0, 0x10000, 0xC0000000L, Virtqueue.DESC_F_NEXT, 1);
            d.setDesc(1, 0x10000, 0xC0000000L, 0, 0);
            d.publish(0);
            VirtqueueException e = assertThrows(VirtqueueException.class, () -> q.pop(chain));
            assertEquals(CHAIN_TOO_LARGE, e.kind(), e.getMessage());
        }
    }

    // --- layout checks at activation ----------------------------------------------------------------------------

    VirtqueueException activationFails(long desc, long avail, long used, int size, Kind kind) {
        q.setSize(size);
        q.setDescAddress(desc);
        q.setDriverAddress(avail);
        q.setDeviceAddress(used);
        q.setReady(true);
        VirtqueueException e = assertThrows(VirtqueueException.class, () -> q.activate(ram.memory, FEATURES));
        assertEquals(kind, e.kind(), e.getMessage());
        assertFalse(q.isActive());
        assertFalse(q.pop(chain));
        return e;
    }

    @Test
    void misalignedRings() {
        activationFails(dq.desc + 8, dq.avail, dq.used, 16, RING_MISALIGNED);
        activationFails(dq.desc, dq.avail + 1, dq.used, 16, RING_MISALIGNED);
        activationFails(dq.desc, dq.avail, dq.used + 2, 16, RING_MISALIGNED);
    }

    @Test
    void ringsOutsideRam() {
        activationFails(ram.end() - 16, dq.avail, dq.used, 16, RING_OUTSIDE_MEMORY);
        activationFails(dq.desc, 0, dq.used, 16, RING_OUTSIDE_MEMORY);
        activationFails(dq.desc, dq.avail, ram.end() + 0x1000, 16, RING_OUTSIDE_MEMORY);
    }

    @Test
    void overlappingRings() {
        activationFails(dq.desc, dq.avail, dq.avail + 4, 16, RINGS_OVERLAP);
        activationFails(dq.desc, dq.avail, dq.desc + 64, 16, RINGS_OVERLAP);
        activationFails(dq.desc, dq.desc + 32, dq.used, 16, RINGS_OVERLAP);
    }

    @Test
    void badQueueSizes() {
        activationFails(dq.desc, dq.avail, dq.used, 0, BAD_QUEUE_SIZE);
        VirtqueueException e = activationFails(dq.desc, dq.avail, dq.used, 12, BAD_QUEUE_SIZE);
        assertTrue(e.getMessage().contains("queue size 12"), "the message names the value: " + e.getMessage());
        activationFails(dq.desc, dq.avail, dq.used, 32, BAD_QUEUE_SIZE);
    }

    // --- notification suppression ------------------------------------------------------------------------------

    @Test
    void noInterruptFlagSuppressesNotificationsWithoutEventIdx() {
        activate(FEATURES);
        long b = ram.alloc(8, 8);
        dq.add(out(b, 8));
        q.pop(chain);
        q.addUsed(chain.head(), 0);
        assertTrue(q.needsNotification());
        assertFalse(q.needsNotification(), "nothing new used");
        dq.setAvailFlags(Virtqueue.AVAIL_F_NO_INTERRUPT);
        dq.add(out(b, 8));
        q.pop(chain);
        q.addUsed(chain.head(), 0);
        assertFalse(q.needsNotification());
    }

    @Test
    void usedEventDecidesWithEventIdx() {
        activate(FEATURES_EVENT_IDX);
        long b = ram.alloc(8, 8);
        dq.setAvailFlags(Virtqueue.AVAIL_F_NO_INTERRUPT); // must be ignored with EVENT_IDX
        dq.setUsedEvent(2); // notify when used idx passes 2, i.e. reaches 3
        for (int i = 0; i < 2; i++) {
            dq.add(out(b, 8));
            q.pop(chain);
            q.addUsed(chain.head(), 0);
            if (i == 0) assertTrue(q.needsNotification(), "the first notification is always sent");
            else assertFalse(q.needsNotification(), "used idx 2 has not passed used_event 2");
        }
        dq.add(out(b, 8));
        q.pop(chain);
        q.addUsed(chain.head(), 0);
        assertTrue(q.needsNotification(), "used idx 3 passed used_event 2");
        dq.add(out(b, 8));
        q.pop(chain);
        q.addUsed(chain.head(), 0);
        assertFalse(q.needsNotification());
    }

    @Test
    void noNotificationWhenNothingWasUsed() {
        activate(FEATURES_EVENT_IDX);
        assertFalse(q.needsNotification());
        q = new Virtqueue(16);
        activate(FEATURES);
        assertFalse(q.needsNotification());
    }

    @Test
    void enableNotificationPublishesAvailEventAndRechecks() {
        activate(FEATURES_EVENT_IDX);
        long b = ram.alloc(8, 8);
        dq.add(out(b, 8));
        q.pop(chain);
        assertFalse(q.enableNotification());
        assertEquals(1, dq.availEvent(), "driver asked to notify when it publishes entry 1");
        dq.add(out(b, 8));
        assertTrue(q.enableNotification(), "a buffer that arrived meanwhile is seen");
    }

    @Test
    void usedFlagsSuppressDriverNotificationsWithoutEventIdx() {
        activate(FEATURES);
        q.disableNotification();
        assertEquals(1, dq.usedFlags());
        assertFalse(q.enableNotification());
        assertEquals(0, dq.usedFlags());
    }

    @Test
    void resetForgetsEverything() {
        activate(FEATURES);
        dq.add(out(ram.alloc(8, 8), 8));
        q.pop(chain);
        q.reset();
        assertFalse(q.isActive());
        assertFalse(q.isReady());
        assertEquals(16, q.size());
        assertEquals(0, q.descAddress());
        assertFalse(q.pop(chain));
    }
}
