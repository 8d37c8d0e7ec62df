/* 32-bit protected mode at 0x10000: string I/O, 32-bit MMIO above RAM, then hlt. */
	.code32
	.globl _start
_start:
	mov $msg, %esi
	mov $msg_len, %ecx
	mov $0xf0, %dx
	rep outsb                /* "hello" as one string I/O exit (or several) */
	movl $0x12345678, 0xd0000000
	movl 0xd0000004, %eax
	mov $0xf4, %dx
	outl %eax, %dx
	hlt
msg:	.ascii "hello"
	msg_len = . - msg
