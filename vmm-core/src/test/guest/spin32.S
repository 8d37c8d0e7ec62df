/* Tells the test it runs, then spins in kernel mode forever. */
	.code32
	.globl _start
_start:
	mov $0xf0, %dx
	mov $'S', %al
	outb %al, %dx
	cli
1:	jmp 1b
