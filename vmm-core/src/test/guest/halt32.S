/* Tells the test it runs, then halts with interrupts off (only stop() can end it). */
	.code32
	.globl _start
_start:
	mov $0xf0, %dx
	mov $'H', %al
	outb %al, %dx
	cli
1:	hlt
	jmp 1b
