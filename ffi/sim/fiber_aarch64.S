// Fiber context switch, AArch64 (AAPCS64).
// Frame (160 bytes): x19..x28, x29, x30, d8..d15. FPCR is not switched:
// kernel code cannot change it (see fiber_x86_64.S).
#if defined(__aarch64__)
	.text
	.globl	mb_fiber_switch
	.hidden	mb_fiber_switch
	.type	mb_fiber_switch, %function
mb_fiber_switch:
	sub	sp, sp, #160
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #160
	ret
	.size	mb_fiber_switch, .-mb_fiber_switch

// Entered by `ret` from a prepared frame: x19 = fn, x20 = arg.
	.globl	mb_fiber_trampoline
	.hidden	mb_fiber_trampoline
	.type	mb_fiber_trampoline, %function
mb_fiber_trampoline:
	mov	x29, #0
	mov	x0, x20
	blr	x19
	brk	#0
	.size	mb_fiber_trampoline, .-mb_fiber_trampoline
#endif
	.section .note.GNU-stack,"",%progbits
