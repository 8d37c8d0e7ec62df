package dev.jvmm.devices.net.user;

import static dev.jvmm.devices.net.user.Inet.GUEST;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class EchoFlowsTest {
    static final long SECOND = 1_000_000_000L;
    final List<Long> closed = new ArrayList<>();
    final EchoFlows flows = new EchoFlows(3, 2, 30 * SECOND, f -> closed.add(f.socket));

    @Test
    void flowsAreFoundByGuestIdentifierAndBySocket() {
        EchoFlows.Flow a = flows.add(GUEST, 0x4242, 10, 0);
        EchoFlows.Flow b = flows.add(GUEST, 0x4243, 11, 0);
        EchoFlows.Flow c = flows.add(Inet.ip(10, 0, 2, 16), 0x4242, 12, 0);
        assertSame(a, flows.get(GUEST, 0x4242));
        assertSame(b, flows.get(GUEST, 0x4243));
        assertSame(c, flows.get(Inet.ip(10, 0, 2, 16), 0x4242));
        assertSame(b, flows.bySocket(11));
        assertNull(flows.get(GUEST, 0x4244));
        assertNull(flows.bySocket(99));
        assertEquals(0x4242, a.guestId);
        assertEquals(GUEST, a.guestIp);
        assertEquals(3, flows.size());
        assertTrue(closed.isEmpty());
    }

    @Test
    void aFullTableEvictsTheLeastRecentlyUsedAndClosesItsSocket() {
        flows.add(GUEST, 1, 101, 0);
        flows.add(GUEST, 2, 102, 0);
        flows.add(GUEST, 3, 103, 0);
        flows.get(GUEST, 1); // now 2 is the least recently used
        flows.add(GUEST, 4, 104, 0);
        assertEquals(List.of(102L), closed);
        assertNull(flows.get(GUEST, 2));
        assertNull(flows.bySocket(102));
        assertEquals(3, flows.size());
        flows.add(GUEST, 5, 105, 0);
        assertEquals(List.of(102L, 103L), closed);
    }

    @Test
    void reAddingAnIdentifierReplacesAndClosesTheOldSocket() {
        flows.add(GUEST, 7, 1, 0);
        EchoFlows.Flow again = flows.add(GUEST, 7, 2, 0);
        assertEquals(List.of(1L), closed);
        assertSame(again, flows.get(GUEST, 7));
        assertNull(flows.bySocket(1));
        assertEquals(1, flows.size());
    }

    @Test
    void peersAreBoundedPerFlow() {
        EchoFlows.Flow f = flows.add(GUEST, 7, 1, 0);
        int a = Inet.ip(192, 0, 2, 1), b = Inet.ip(192, 0, 2, 2), c = Inet.ip(192, 0, 2, 3);
        assertFalse(f.hasPeer(a));
        assertTrue(f.addPeer(a));
        assertTrue(f.addPeer(a), "a known peer is no new one");
        assertTrue(f.addPeer(b));
        assertFalse(f.addPeer(c), "two peers per flow in this table");
        assertTrue(f.hasPeer(a) && f.hasPeer(b));
        assertFalse(f.hasPeer(c));
    }

    @Test
    void idleFlowsExpireAndUsedOnesStay() {
        EchoFlows.Flow old = flows.add(GUEST, 1, 1, 0);
        EchoFlows.Flow used = flows.add(GUEST, 2, 2, 0);
        used.lastUsed = 20 * SECOND;
        flows.expire(30 * SECOND);
        assertTrue(closed.isEmpty(), "exactly the idle time is not yet past it");
        flows.expire(31 * SECOND);
        assertEquals(List.of(1L), closed);
        assertNull(flows.get(GUEST, 1));
        assertNull(flows.bySocket(1));
        assertSame(used, flows.get(GUEST, 2));
        assertSame(old.socket, 1L);
        flows.expire(51 * SECOND);
        assertEquals(List.of(1L, 2L), closed);
        assertEquals(0, flows.size());
    }

    @Test
    void expiryHandlesTheNanoTimeWrap() {
        long start = Long.MAX_VALUE - 5 * SECOND;
        flows.add(GUEST, 1, 1, start);
        flows.expire(start + 10 * SECOND); // overflows to negative: still 10 s later
        assertTrue(closed.isEmpty());
        flows.expire(start + 40 * SECOND);
        assertEquals(List.of(1L), closed);
    }

    @Test
    void clearClosesEverything() {
        flows.add(GUEST, 1, 1, 0);
        flows.add(GUEST, 2, 2, 0);
        flows.clear();
        assertEquals(2, closed.size());
        assertEquals(0, flows.size());
        assertNull(flows.bySocket(2));
    }
}
