# minikvm-guest: exercises every hypercall: PUTCHAR a banner, GETCHAR a line and echo it, then EXIT
	# Output, byte for byte:
	#   "hypercall test: PUTCHAR works, reading a line with GETCHAR\n"
	# then the line (up to LF, CR or 80 bytes, none of which is echoed) as
	# "echo: <line>\n", each byte echoed as it comes, and EXIT.
	#
	# GETCHAR answers 0xFF when no byte is waiting: at once on a terminal,
	# where the student has not typed yet. So the guest asks again until a
	# byte comes; if input has ended, minikvm stops the wait (status 5).
	.code16
	.text
	.globl	_start

	.set	HC_PORT, 0x500
	.set	HC_EXIT, 0x00
	.set	HC_PUTCHAR, 0x01
	.set	HC_GETCHAR, 0x02
	.set	NONE, 0xff		# GETCHAR's "nothing waiting"
	.set	MAX_LINE, 80

_start:
	mov	$banner, %si
	call	print_str

	call	getchar_wait
	mov	%al, %ah		# print_str clobbers AL
	mov	$s_echo, %si
	call	print_str
	mov	%ah, %al
	mov	$MAX_LINE, %cx		# counts the bytes still allowed
echo:
	cmp	$'\n', %al
	je	end_line
	cmp	$'\r', %al		# a terminal in raw mode sends CR for Enter
	je	end_line
	mov	%al, %bl
	call	putchar
	dec	%cx
	jz	end_line
	call	getchar_wait
	jmp	echo
end_line:
	mov	$'\n', %bl
	call	putchar

exit:
	mov	$HC_PORT, %dx
	mov	$HC_EXIT, %al
	out	%al, (%dx)
	jmp	.			# EXIT never returns

	# GETCHAR until a byte comes (0xFF: nothing waiting yet).
getchar_wait:
	call	getchar
	cmp	$NONE, %al
	je	getchar_wait
	ret

	# GETCHAR: the `out` asks the host for a byte, the `in` collects it
	# (in AL). Two steps, because an `out` cannot return a value.
getchar:
	mov	$HC_PORT, %dx
	mov	$HC_GETCHAR, %al
	out	%al, (%dx)
	in	(%dx), %al
	ret

	# Prints the NUL-terminated string at SI; clobbers AL, BL, DX, SI.
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

banner:
	.asciz	"hypercall test: PUTCHAR works, reading a line with GETCHAR\n"
s_echo:
	.asciz	"echo: "
