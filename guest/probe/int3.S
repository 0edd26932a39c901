# minikvm-probe: int3 interception (KVM_GUESTDBG_USE_SW_BP)
	# Flat 32-bit protected mode at 0x1000, with the debugger's int3 at 0x1001:
	# the first stop must be a debug exit for vector 3.
	.code32
	.text
	.globl _start
_start:
	.org	0x1000
	nop
	int3
	hlt
