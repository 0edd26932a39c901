# minikvm-guest: prints the multiplication table 2 x 1 .. 9 x 9 through PUTCHAR, then the EXIT hypercall
	# Shows the EXIT hypercall (AL = 0) as the other way to end a guest,
	# and some 8086 arithmetic: `mul` for the product, `div` to turn it
	# into decimal digits. One line per product: "7 x 8 = 56".
	.code16
	.text
	.globl	_start

	.set	HC_PORT, 0x500
	.set	HC_EXIT, 0x00
	.set	HC_PUTCHAR, 0x01

_start:
	mov	$2, %cl			# CL = left factor, 2..9
row:
	mov	$1, %ch			# CH = right factor, 1..9
line:
	mov	%cl, %al
	call	print_num
	mov	$s_times, %si
	call	print_str
	mov	%ch, %al
	call	print_num
	mov	$s_equals, %si
	call	print_str
	mov	%cl, %al
	mul	%ch			# AX = AL * CH; at most 81, so AL holds it
	call	print_num
	mov	$'\n', %bl
	call	putchar
	inc	%ch
	cmp	$10, %ch
	jne	line
	inc	%cl
	cmp	$10, %cl
	jne	row

	mov	$HC_PORT, %dx
	mov	$HC_EXIT, %al
	out	%al, (%dx)
	jmp	.			# EXIT never returns; should a host let it, spin
					# here (a visible hang) rather than run the data

	# Prints AL (0..99) in decimal. `div` by a byte splits AX into
	# AL = quotient (the tens) and AH = remainder (the units).
print_num:
	xor	%ah, %ah
	mov	$10, %bh
	div	%bh
	mov	%ah, %bh		# keep the units: putchar clobbers AX
	test	%al, %al		# no leading zero for 1..9
	jz	1f
	mov	%al, %bl
	add	$'0', %bl
	call	putchar
1:	mov	%bh, %bl
	add	$'0', %bl
	jmp	putchar			# tail call: putchar's ret returns for us

	# Prints the NUL-terminated string at SI.
print_str:
	mov	(%si), %bl
	test	%bl, %bl
	jz	1f
	call	putchar
	inc	%si
	jmp	print_str
1:	ret

	# PUTCHAR hypercall for the byte in BL; clobbers AL and DX.
putchar:
	mov	$HC_PORT, %dx
	mov	$HC_PUTCHAR, %al
	out	%al, (%dx)
	ret

s_times:
	.asciz	" x "
s_equals:
	.asciz	" = "
