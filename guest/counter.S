# minikvm-guest: counts 0 to 9, one digit a line, on the COM1 serial port (polls the line status like a real driver)
	# Unlike hello.S this guest knows nothing about hypercalls: it talks to
	# an emulated 16550A UART, exactly as it would on a PC. Every `in` and
	# `out` below is an I/O exit that minikvm's UART model answers.
	#
	# For the debugger: `digit` holds the number being printed (0..9, not
	# its ASCII code), so `watch digit` stops once per line, and
	# `print_digit` is where each digit goes out.
	.code16
	.text
	.globl	_start, digit, print_digit

	.set	COM1_THR, 0x3f8		# transmit holding register (write)
	.set	COM1_LSR, 0x3fd		# line status register
	.set	LSR_THRE, 0x20		# bit 5: THR empty, ready for a byte

_start:
print_digit:
	mov	digit, %al
	add	$'0', %al		# the number becomes its ASCII digit
	call	uart_putc
	mov	$'\n', %al
	call	uart_putc
	incb	digit			# kept in memory, not a register, so gdb can watch it
	cmpb	$10, digit
	jne	print_digit
	hlt

	# Sends AL through the UART. A real 16550A can be busy shifting out the
	# previous byte, so a driver must wait for THR-empty before writing;
	# minikvm's model is always ready, but the guest cannot know that.
uart_putc:
	mov	%al, %ah		# the `in` below needs AL
	mov	$COM1_LSR, %dx
1:	in	(%dx), %al
	test	$LSR_THRE, %al
	jz	1b
	mov	%ah, %al
	mov	$COM1_THR, %dx
	out	%al, (%dx)
	ret

digit:
	.byte	0			# starts at 0 because the file is loaded fresh each run
