/* Every vCPU starts here: reports its local APIC id (LAPIC register 0x20, bits 31:24) then halts for good. */
	.code32
	.globl _start
_start:
	mov 0xfee00020, %eax
	shr $24, %eax
	mov $0xf0, %dx
	outb %al, %dx
	cli
1:	hlt
	jmp 1b
