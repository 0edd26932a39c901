# minikvm-probe: 32-bit protected mode, paging off
	# Started in flat 32-bit protected mode (CR0 = PE | ET) at 0x1000.
	# The probe expects 0x12345678 on port 0x10.
	.code32
	.text
	.globl _start
_start:
	.org	0x1000
	mov	$0x12345678, %eax
	out	%eax, $0x10
	hlt
