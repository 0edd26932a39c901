# minikvm-probe: data breakpoints (DR0-DR3 on writes)
	# Real mode at 0, with a one-byte write watchpoint on 0x100 (DR0): the
	# write must stop with a debug exit before the hlt.
	.code16
	.text
	.globl _start
_start:
	movb	$1, 0x100
	hlt
