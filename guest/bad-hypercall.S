# minikvm-guest: makes hypercall 0x7f, which does not exist, so minikvm stops it with an error
	# The host must refuse an unknown hypercall loudly (naming 0x7f and the
	# CS:IP of the `out`) rather than ignore it: a silent no-op would hide
	# a guest bug.
	.code16
	.text
	.globl	_start
_start:
	mov	$0x500, %dx
	mov	$0x7f, %al
	out	%al, (%dx)
	hlt				# not reached: the host stops the vCPU at the `out`
