/* Multiboot v1 header and 32-bit entry: set a stack, call guest_main(magic, info), then exit with its value. */
	.section .multiboot, "a"
	.align 4
	.long 0x1BADB002            /* magic */
	.long 0x00000003            /* flags: page-align modules, want memory info */
	.long -(0x1BADB002 + 0x00000003)

	.text
	.globl _start
_start:
	cli
	mov $stack_top, %esp
	push %ebx                   /* multiboot info */
	push %eax                   /* multiboot magic */
	call guest_main
	push %eax
	call guest_exit
1:	hlt
	jmp 1b

	.bss
	.align 16
stack_bottom:
	.skip 65536
stack_top:
	.section .note.GNU-stack, "", @progbits
