# minikvm-guest: benchmark: 20,000 PUTCHAR hypercalls of '.', then EXIT
	# The hypercall twin of uart-bench.S: one I/O exit per byte, so the two
	# compare the host's hypercall path with its UART path. Output: 20,000
	# '.' bytes.
	.code16
	.text
	.globl	_start
_start:
	mov	$0x500, %dx
	mov	$0x01, %al		# PUTCHAR
	mov	$'.', %bl
	mov	$20000, %cx
1:	out	%al, (%dx)
	loop	1b
	mov	$0x00, %al		# EXIT
	out	%al, (%dx)
	jmp	.			# EXIT never returns
