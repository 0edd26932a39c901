# minikvm-guest: benchmark: 20,000 '.' bytes written straight to the UART THR, then EXIT
	# Every `out` is one I/O exit. There is no LSR polling (minikvm's THR is
	# always empty), so the loop times exactly one exit per byte, with as
	# little guest work around it as possible. Output: 20,000 '.' bytes.
	.code16
	.text
	.globl	_start
_start:
	mov	$0x3f8, %dx		# COM1 THR
	mov	$'.', %al
	mov	$20000, %cx
1:	out	%al, (%dx)
	loop	1b
	mov	$0x500, %dx
	mov	$0x00, %al		# EXIT
	out	%al, (%dx)
	jmp	.			# EXIT never returns
