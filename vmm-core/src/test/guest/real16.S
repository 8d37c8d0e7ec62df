/* Real mode at 0000:1000: port I/O out and in, MMIO at 0x90000 (not RAM), then hlt. */
	.code16
	.globl _start
_start:
	mov $0xf0, %dx
	mov $'R', %al
	outb %al, %dx            /* port write: 'R' */
	inb %dx, %al             /* port read: the test device answers */
	inc %al
	outb %al, %dx            /* echo answer + 1 */
	mov $0x9000, %ax
	mov %ax, %ds
	movw $0xbeef, 0x0        /* 16-bit MMIO write at 0x90000 */
	movw 0x4, %ax            /* 16-bit MMIO read at 0x90004 */
	mov $0xf2, %dx
	outw %ax, %dx            /* report it */
	hlt
