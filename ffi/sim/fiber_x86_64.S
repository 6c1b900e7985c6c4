// Fiber context switch, x86-64 System V.
// Frame (low to high): r15 r14 r13 r12 rbx rbp return-address
// MXCSR and the x87 control word are not switched: kernel code cannot change
// them (the shim offers no floating-point environment functions), and
// ldmxcsr/fldcw cost more than the rest of the switch together.
#if defined(__x86_64__)
	.text
	.globl	mb_fiber_switch
	.hidden	mb_fiber_switch
	.type	mb_fiber_switch, @function
mb_fiber_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	mb_fiber_switch, .-mb_fiber_switch

// Entered by `ret` from a prepared frame: r12 = fn, r13 = arg; rsp is
// 16-byte aligned here, so the call below keeps the ABI's alignment.
	.globl	mb_fiber_trampoline
	.hidden	mb_fiber_trampoline
	.type	mb_fiber_trampoline, @function
mb_fiber_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r13, %rdi
	callq	*%r12
	ud2
	.cfi_endproc
	.size	mb_fiber_trampoline, .-mb_fiber_trampoline
#endif
	.section .note.GNU-stack,"",@progbits
