package dev.jvmm.devices.net.user;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.SocketException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class HostAddressesTest {
    @Test
    void thisHostsInterfacesIncludeLoopback() throws Exception {
        HostAddresses live = HostAddresses.live();
        assertTrue(live.test(Inet.LOOPBACK), "lo's 127.0.0.1");
        for (int ip : HostAddresses.interfaces()) assertTrue(live.test(ip), Inet.text(ip));
        assertFalse(live.test(Inet.ip(198, 51, 100, 254)), "an address of TEST-NET-2 no host should carry");
    }

    @Test
    void theListIsReadAgainOnceASecondOldAndKeptWhenReadingFails() {
        AtomicLong now = new AtomicLong();
        AtomicInteger reads = new AtomicInteger();
        int a = Inet.ip(192, 168, 1, 5), b = Inet.ip(172, 17, 0, 1);
        HostAddresses h = new HostAddresses(
                () -> switch (reads.incrementAndGet()) {
                    case 1 -> new int[] {a};
                    case 2 -> new int[] {b, a};
                    default -> throw new SocketException("no netlink");
                },
                now::get);
        assertTrue(h.test(a));
        assertFalse(h.test(b));
        now.addAndGet(HostAddresses.REFRESH_NANOS - 1);
        assertFalse(h.test(b), "not read again within a second");
        assertEquals(1, reads.get());
        now.addAndGet(1);
        assertTrue(h.test(b), "a container bridge that came up meanwhile");
        now.addAndGet(HostAddresses.REFRESH_NANOS);
        assertTrue(h.test(a), "a failed read keeps the last list");
        assertEquals(3, reads.get());
    }
}
