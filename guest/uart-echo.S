# minikvm-guest: echoes input lines upper-cased through the COM1 UART (polled), until "quit" or 5 lines
	# Reads the console through the emulated 16550A, the way a BIOS-era
	# driver does without interrupts: spin on LSR bit 0 (data ready), then
	# read RBR. Each line starts with a "> " prompt; each key is echoed
	# upper-cased as it comes (a raw terminal echoes nothing itself), and
	# the line's end as "\n", so "hello\nquit\n" prints "> HELLO\n> QUIT\n".
	# It halts after a line that is exactly "quit", or after the 5th line.
	#
	# A line ends at LF, at CR (Enter on a raw terminal), or when 80 bytes
	# have come; an LF straight after a CR is dropped, so CR LF is one end.
	# If input ends mid-line the guest keeps waiting, and minikvm reports
	# that.
	.code16
	.text
	.globl	_start

	.set	COM1_DATA, 0x3f8	# RBR on read, THR on write
	.set	COM1_LSR, 0x3fd
	.set	LSR_DR, 0x01		# bit 0: a received byte is waiting
	.set	LSR_THRE, 0x20		# bit 5: THR can take a byte
	.set	MAX_LINE, 80
	.set	MAX_LINES, 5

_start:
	movb	$MAX_LINES, lines_left
	movb	$0, after_cr

read_line:
	mov	$'>', %al
	call	uart_putc
	mov	$' ', %al
	call	uart_putc
	mov	$line, %di		# DI = where the next byte goes
read_byte:
	call	uart_getc
	cmp	$'\n', %al
	jne	1f
	cmpb	$0, after_cr		# the LF of a CR LF pair: already ended
	movb	$0, after_cr
	jne	read_byte
	jmp	got_line
1:	movb	$0, after_cr
	cmp	$'\r', %al
	jne	2f
	movb	$1, after_cr
	jmp	got_line
2:	mov	%al, (%di)		# kept as typed, for the "quit" check
	inc	%di
	cmp	$'a', %al		# only a..z change; everything else passes
	jb	3f
	cmp	$'z', %al
	ja	3f
	sub	$'a' - 'A', %al
3:	call	uart_putc
	cmp	$line + MAX_LINE, %di
	jne	read_byte

got_line:
	mov	%di, line_end
	mov	$'\n', %al
	call	uart_putc

	# Was it exactly "quit"? Compare the length, then the four bytes.
	mov	line_end, %ax
	sub	$line, %ax
	cmp	$4, %ax
	jne	6f
	cmpl	$0x74697571, line	# "quit", little-endian
	je	done
6:	decb	lines_left
	jnz	read_line
done:
	hlt

	# Waits for a received byte and returns it in AL; clobbers DX.
uart_getc:
	mov	$COM1_LSR, %dx
1:	in	(%dx), %al
	test	$LSR_DR, %al
	jz	1b
	mov	$COM1_DATA, %dx
	in	(%dx), %al
	ret

	# Sends AL once THR is empty; clobbers AH and DX.
uart_putc:
	mov	%al, %ah
	mov	$COM1_LSR, %dx
1:	in	(%dx), %al
	test	$LSR_THRE, %al
	jz	1b
	mov	%ah, %al
	mov	$COM1_DATA, %dx
	out	%al, (%dx)
	ret

lines_left:
	.byte	0
after_cr:
	.byte	0
line_end:
	.word	0
line:
	.space	MAX_LINE
