/* The 16550A both ways, with its interrupt checked at the LAPIC.
 *
 * The UART's IRQ 4 is routed through the IOAPIC to a vector; the guest keeps interrupts off (IF=0) and looks
 * at the LAPIC's IRR instead of taking the interrupt, which shows the line reached the in-kernel irqchip
 * without needing interrupt delivery and iret (emulated at CPL0 on hosts without VT-x/AMD-V).
 *
 * Protocol with the test (markers on debugcon): "ready1" -> the test sends a line; the guest answers
 * "echo: <LINE IN CAPITALS>\n" on the serial port. "ready2" -> the test sends a long line; the guest answers
 * "len=N sum=S\n" (S: byte sum mod 65536). The exit code is 0 when every check passed. */
#include "guest.h"

#define COM1 0x3f8
#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7
#define LSR_DR 0x01
#define LSR_THRE 0x20

#define LAPIC 0xfee00000u
#define IOAPIC 0xfec00000u
#define RX_VECTOR 0x34
#define TX_VECTOR 0x35

static u8 uart_in(int reg) { return inb(COM1 + reg); }
static void uart_out(int reg, u8 v) { outb(COM1 + reg, v); }

static void serial_putc(char c)
{
    while (!(uart_in(LSR) & LSR_THRE)) cpu_relax();
    uart_out(THR, (u8)c);
}

static void serial_puts(const char *s) { while (*s) serial_putc(*s++); }

static void serial_putu(u32 v)
{
    char buf[12];
    int n = 0;
    do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) serial_putc(buf[--n]);
}

static int serial_getc(void)
{
    while (!(uart_in(LSR) & LSR_DR)) cpu_relax();
    return uart_in(RBR);
}

static void ioapic_route_irq4(u8 vector)
{
    /* Redirection entry 4: fixed delivery, physical destination APIC 0, edge, active high, unmasked. */
    mmio_write32(IOAPIC, 0x10 + 2 * 4 + 1);
    mmio_write32(IOAPIC + 0x10, 0);
    mmio_write32(IOAPIC, 0x10 + 2 * 4);
    mmio_write32(IOAPIC + 0x10, vector);
}

static int lapic_irr(u8 vector)
{
    return (mmio_read32(LAPIC + 0x200 + (vector / 32) * 0x10) >> (vector % 32)) & 1;
}

static char line[256];

int guest_main(u32 magic, u32 info)
{
    (void)info;
    CHECK(magic == MULTIBOOT_BOOTLOADER_MAGIC, "magic %x", magic);

    /* The PIC would also see IRQ 4 (KVM routes ISA IRQs to both); keep it out of the way. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC, spurious vector 0xff */
    mmio_write32(LAPIC + 0x80, 0);     /* accept every priority */

    /* 115200 8N1, FIFO on, DTR|RTS|OUT2. */
    uart_out(IER, 0);
    uart_out(LCR, 0x80);
    uart_out(DLL, 1);
    uart_out(DLM, 0);
    uart_out(LCR, 0x03);
    uart_out(FCR, 0x07);
    uart_out(MCR, 0x0b);
    CHECK((uart_in(IIR) & 0xcf) == 0xc1, "IIR %x: FIFO enabled, nothing pending", uart_in(IIR));
    CHECK(uart_in(LCR) == 0x03, "LCR %x", uart_in(LCR));
    uart_out(SCR, 0xa5);
    CHECK(uart_in(SCR) == 0xa5, "scratch");

    /* The loopback test of Linux's 8250 probe. */
    uart_out(MCR, 0x1a);
    CHECK((uart_in(MSR) & 0xf0) == 0x90, "loopback MSR");
    uart_out(THR, 'L');
    CHECK(uart_in(LSR) & LSR_DR, "looped byte received");
    CHECK(uart_in(RBR) == 'L', "looped byte");
    uart_out(MCR, 0x0b);
    (void)uart_in(MSR);

    /* RX: the data-available interrupt reaches the LAPIC when the host's bytes arrive. */
    ioapic_route_irq4(RX_VECTOR);
    uart_out(IER, 0x01);
    CHECK(!lapic_irr(RX_VECTOR), "no RX interrupt before input");
    puts("ready1\n");
    int n = 0, c;
    while ((c = serial_getc()) != '\n' && n < (int)sizeof(line) - 1) {
        if (n == 0) {
            CHECK(lapic_irr(RX_VECTOR), "RX interrupt pending at the LAPIC");
        }
        line[n++] = (char)c;
    }
    line[n] = 0;
    CHECK((uart_in(IIR) & 0x0f) == 0x01, "IIR %x: no interrupt once drained", uart_in(IIR));
    uart_out(IER, 0);

    /* TX: enabling the THR-empty interrupt with THR empty raises it; reading IIR acknowledges it. */
    ioapic_route_irq4(TX_VECTOR);
    CHECK(!lapic_irr(TX_VECTOR), "no TX interrupt yet");
    uart_out(IER, 0x02);
    CHECK(lapic_irr(TX_VECTOR), "THRE interrupt pending at the LAPIC");
    u8 iir = uart_in(IIR);
    CHECK(iir == 0xc2, "IIR %x: THR empty", iir);
    iir = uart_in(IIR);
    CHECK(iir == 0xc1, "IIR %x: acknowledged", iir);
    uart_out(IER, 0);

    serial_puts("echo: ");
    for (int i = 0; i < n; i++) {
        char ch = line[i];
        serial_putc(ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch);
    }
    serial_putc('\n');

    /* A long paste: nothing may be lost while the guest drains it byte by byte. */
    puts("ready2\n");
    u32 len = 0, sum = 0;
    while ((c = serial_getc()) != '\n') {
        len++;
        sum = (sum + (u32)c) & 0xffff;
    }
    serial_puts("len=");
    serial_putu(len);
    serial_puts(" sum=");
    serial_putu(sum);
    serial_putc('\n');
    CHECK((uart_in(LSR) & 0x02) == 0, "no overrun");
    return guest_result();
}
