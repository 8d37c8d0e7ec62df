/* The first bytes of the flat image: a jump to the multiboot entry, so a VMM that loads bench.bin at 1 MiB
 * starts it at its first byte, while QEMU loads bench.elf by its multiboot header and ELF entry. */
	.section .text.entry, "ax"
	.code32
	jmp _start
	.section .note.GNU-stack, "", @progbits
