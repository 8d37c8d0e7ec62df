/*
 * Counts in guest memory forever, taking each next count as a ticket from the test's ticket device (IN from port
 * 0xf0, which hands out 1, 2, 3, ...), and writes every 256th count to port 0xf4. A ticket that is not the count
 * plus one is reported on port 0xf8 and the guest stops there. The snapshot tests pause it, save it with the ticket
 * device's state, and check that a restored copy goes on with no reset, gap or repeat: in the reports, in memory,
 * and in the tickets, which also catch an IN whose data was still pending in KVM at the pause (a restore that
 * re-executes the IN would skip a ticket). The count lives in a register between stores, so registers must come
 * back as well as memory. Flat 32-bit protected mode at 0x10000, no stack, interrupts off.
 */
#define COUNTER ((volatile unsigned int *)0x20000)
#define TICKET_PORT 0xf0
#define REPORT_PORT 0xf4
#define ERROR_PORT 0xf8

static inline void outl(unsigned short port, unsigned int v) {
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline unsigned int inl(unsigned short port) {
    unsigned int v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

__attribute__((noreturn)) void _start(void) {
    unsigned int n = *COUNTER;
    for (;;) {
        unsigned int t = inl(TICKET_PORT);
        if (t != n + 1) {
            outl(ERROR_PORT, t);
            for (;;) __asm__ volatile("hlt");
        }
        n = t;
        *COUNTER = n;
        if ((n & 0xff) == 0) outl(REPORT_PORT, n);
    }
}
