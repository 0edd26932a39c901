# minikvm-probe: real mode (16-bit): a 16-bit register reaches the probe port
	# Started in real mode at 0 (CS base 0). The probe expects 0x1234 on port 0x10.
	.code16
	.text
	.globl _start
_start:
	mov	$0x1234, %ax
	out	%ax, $0x10
	hlt
