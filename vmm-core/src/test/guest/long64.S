/* 64-bit long mode at 0x10000: a 64-bit MMIO write and read above RAM, then hlt. */
	.code64
	.globl _start
_start:
	movabs $0x1122334455667788, %rax
	movabs %rax, 0xd0000000
	movabs 0xd0000008, %rax
	mov $0xf4, %dx
	outl %eax, %dx           /* low half of what was read */
	shr $32, %rax
	outl %eax, %dx           /* high half */
	mov $0xf0, %dx
	mov $'L', %al
	outb %al, %dx
	hlt
