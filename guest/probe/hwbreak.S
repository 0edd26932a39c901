# minikvm-probe: hardware breakpoints (DR0-DR3)
	# Real mode at 0, with an execution breakpoint in DR0 at 2: the first stop
	# must be a debug exit at IP 2.
	.code16
	.text
	.globl _start
_start:
	nop
	nop
	nop
	hlt
