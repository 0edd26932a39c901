# minikvm-probe: single-step (KVM_GUESTDBG_SINGLESTEP)
	# Real mode at 0, single-stepped: the first stop must be a debug exit at IP 1.
	.code16
	.text
	.globl _start
_start:
	nop
	nop
	hlt
