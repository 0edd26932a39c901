# minikvm-guest: prints the first 15 Fibonacci numbers, one a line, through PUTCHAR, then halts
	# 0 1 1 2 3 5 8 13 21 34 55 89 144 233 377: the numbers outgrow one
	# byte, so this guest prints 16-bit values in decimal, using the stack
	# to reverse the digits that repeated division produces.
	.code16
	.text
	.globl	_start

	.set	HC_PORT, 0x500
	.set	HC_PUTCHAR, 0x01

_start:
	xor	%si, %si		# SI = F(n), starting at F(0) = 0
	mov	$1, %di			# DI = F(n+1)
	mov	$15, %cx		# how many numbers; `loop` counts CX down
next:
	mov	%si, %ax
	call	print_dec
	mov	$'\n', %bl
	call	putchar
	mov	%si, %ax		# (F(n), F(n+1)) becomes (F(n+1), F(n) + F(n+1))
	add	%di, %ax
	mov	%di, %si
	mov	%ax, %di
	loop	next
	hlt

	# Prints AX in decimal. Dividing by 10 yields the lowest digit first,
	# so the digits are pushed and then popped in printing order.
	# Keeps CX, which the caller counts with; clobbers AX, BX, DX.
print_dec:
	push	%cx
	xor	%cx, %cx		# CX = digits pushed so far
	mov	$10, %bx
1:	xor	%dx, %dx		# a 16-bit `div` divides DX:AX, so clear DX
	div	%bx			# AX = AX / 10, DX = the digit
	push	%dx
	inc	%cx
	test	%ax, %ax
	jnz	1b
2:	pop	%bx
	add	$'0', %bl
	call	putchar
	loop	2b
	pop	%cx
	ret

	# PUTCHAR hypercall for the byte in BL; clobbers AL and DX.
putchar:
	mov	$HC_PORT, %dx
	mov	$HC_PUTCHAR, %al
	out	%al, (%dx)
	ret
