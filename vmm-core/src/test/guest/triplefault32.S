/* Loads an empty IDT and raises #UD: no handler, no double-fault handler, so the CPU shuts down. */
	.code32
	.globl _start
_start:
	lidt idt_empty
	ud2
	.align 8
idt_empty:
	.word 0
	.long 0
