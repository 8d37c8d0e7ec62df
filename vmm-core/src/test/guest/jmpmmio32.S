/* Jumps into a guest-physical address with no RAM behind it: KVM cannot fetch an instruction there. */
	.code32
	.globl _start
_start:
	mov $0xd0000000, %eax
	jmp *%eax
