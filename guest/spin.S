# minikvm-guest: prints "spinning" and then loops forever (for --timeout and for stopping a guest)
	# The endless loop makes no exits at all, so only something outside the
	# vCPU (a timeout, Ctrl-A x, a signal, gdb) can stop it. The message
	# first tells a test that the guest really started.
	.code16
	.text
	.globl	_start
_start:
	mov	$0x500, %dx
	mov	$msg, %si
next:
	mov	(%si), %bl
	test	%bl, %bl
	jz	spin
	mov	$0x01, %al		# PUTCHAR
	out	%al, (%dx)
	inc	%si
	jmp	next
spin:
	jmp	spin
msg:
	.asciz	"spinning\n"
