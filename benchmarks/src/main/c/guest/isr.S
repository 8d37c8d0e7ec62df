/*
 * Interrupt entry points of the benchmark guest (32-bit, flat). They never IRET: KVM's instruction
 * emulator, which runs kernel-mode code on this host, implements IRET only in real mode. An interrupt can
 * only arrive in the irq benchmark's "sti; hlt", so a handler drops its frame and resumes after the hlt,
 * with interrupts off again (the interrupt gate cleared IF), as "sti; hlt; cli" would.
 */
	.text
	.code32
	.globl isr_wake
isr_wake:                        /* the irqfd benchmark's MSI: count it and EOI the local APIC */
	incl irq_count
	movl $0, 0xfee000b0
	addl $12, %esp               /* EIP, CS, EFLAGS of the interrupted hlt */
	jmp irq_resume
	.globl isr_spurious
isr_spurious:                    /* LAPIC spurious vector: no EOI, not counted */
	addl $12, %esp
	jmp irq_resume
	.section .note.GNU-stack, "", @progbits
